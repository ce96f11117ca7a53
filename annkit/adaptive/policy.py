"""Per-query effort policies: what they decide, how they search, how they are stored.

A policy file is one JSON document: a manifest (format version, kind, engine, the index it
belongs to, effort parameter and grid, calibration, feature names, seed) and a payload
(LightGBM's plain-text model and the coarse centroids) whose sha256 the manifest records.
Nothing in it is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.adaptive.features import (
    centroid_features,
    feature_names,
    first_stage_features,
    no_first_stage,
)
from annkit.adaptive.search import (
    effort_param_of,
    is_finite_number,
    search_with_efforts,
    snap_up,
)
from annkit.engines.base import Engine
from annkit.errors import InputError, ParamError
from annkit.files import write_text
from annkit.types import SearchResult

FORMAT = "annkit-policy"
FORMAT_VERSION = 2
KINDS = ("learned", "threshold")
#: kinds whose rule runs inside the search (annkit.adaptive.stopping): patience, and the
#: threshold rule resuming its first stage instead of searching again
STOPPING_KINDS = ("patience", "resume", "learned-resume", "darth", "ada-ef")
#: kinds whose effort comes from a LightGBM model
LEARNED_KINDS = ("learned", "learned-resume")
MAX_POLICY_BYTES = 64 << 20
STAGES = ("full", "probe", "none")
INSTALL_HINT = (
    "learned policies need lightgbm: pip install 'annkit[adapt]' (or use --kind threshold)"
)


class PolicyError(InputError):
    """A policy file is damaged, foreign to the index, or cannot be used."""


def query_hashes(queries: np.ndarray) -> list[str]:
    """A short hash (16 hex digits) of each query vector's float32 bytes: a policy keeps
    those of its training queries so that scoring it on them can be called in-sample."""
    rows = np.ascontiguousarray(queries, dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in rows]


def in_sample_count(policy: Policy, queries: np.ndarray) -> int | None:
    """How many of ``queries`` the policy was trained on (None when its file predates the
    training-query hashes)."""
    known = policy.training.get("query_hashes")
    if not known:
        return None
    trained = set(known)
    return sum(digest in trained for digest in query_hashes(queries))


def lightgbm_available() -> bool:
    """True when lightgbm can be imported."""
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return False
    return True


def require_lightgbm() -> Any:
    """The lightgbm module, or a one-line InputError saying how to install it."""
    try:
        import lightgbm
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return lightgbm


def index_identity(manifest: dict) -> dict:
    """What identifies an index bundle: engine, build params, metric, shape, dataset
    fingerprint and the sha256 of each payload file."""
    return {
        "engine": manifest["engine"],
        "build_params": dict(manifest["build_params"]),
        "metric": manifest["metric"],
        "dim": int(manifest["dim"]),
        "count": int(manifest["count"]),
        "dataset_fingerprint": manifest.get("dataset_fingerprint", ""),
        "payload_sha256": {name: entry["sha256"] for name, entry in manifest["files"].items()},
    }


@dataclass(frozen=True)
class FirstStage:
    """What a policy searches before deciding: ``full`` (k neighbours at grid effort
    ``effort``; its result stands when the decided effort is not larger), ``probe`` (``k``
    neighbours at a small ``effort``, for features only) or ``none`` (query-only features)."""

    kind: str
    effort: int = 0
    k: int = 0

    def to_dict(self) -> dict:
        return {"kind": self.kind, "effort": int(self.effort), "k": int(self.k)}


@dataclass
class Policy:
    """A per-query effort policy for one index.

    ``stage``: the first stage (see FirstStage); the final effort of every query is a grid
    value (>= the first stage's effort for a full first stage). learned: ``calibration``
    holds ``multiplier`` and ``label_target`` and ``model_text`` a LightGBM model
    predicting log2 of the least effort reaching ``label_target``. threshold:
    ``calibration`` holds ``feature``, ``threshold``, ``harder_above`` and the ``easy`` /
    ``hard`` efforts.
    """

    kind: str
    index: dict
    param: str
    grid: list[int]
    k: int
    stage: FirstStage
    calibration: dict
    centroids: np.ndarray
    seed: int = 0
    target: float | None = None
    model_text: str = ""
    training: dict = field(default_factory=dict)
    _booster: Any = field(default=None, repr=False, compare=False)

    @property
    def engine(self) -> str:
        return str(self.index["engine"])

    @property
    def n_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def first_effort(self) -> int:
        """The effort below which a query keeps its first-stage result (0: none)."""
        return int(self.stage.effort) if self.stage.kind == "full" else 0

    def feature_names(self) -> list[str]:
        return feature_names(self.n_centroids)

    def features(self, queries: np.ndarray, first: SearchResult | None) -> np.ndarray:
        """The feature matrix (nq, len(feature_names())) for queries after the first stage
        (``first`` None: no first stage)."""
        metric = str(self.index["metric"])
        staged = (
            no_first_stage(int(queries.shape[0])) if first is None else first_stage_features(first)
        )
        return np.hstack([staged, centroid_features(queries, self.centroids, metric)])

    def prepare(self) -> None:
        """Parse the model once (like loading an index: not part of any query's time)."""
        if self.kind in LEARNED_KINDS and self._booster is None:
            lightgbm = require_lightgbm()
            try:
                self._booster = lightgbm.Booster(model_str=self.model_text)
            except lightgbm.basic.LightGBMError:
                raise PolicyError(
                    "policy model text cannot be read by lightgbm; retrain it with annkit adapt"
                ) from None

    def predicted_log_effort(self, features: np.ndarray) -> np.ndarray:
        """learned: the model's output (nq,) before calibration: log2 effort (``effort``
        model) or the probability of missing the recall floor (``risk`` model)."""
        self.prepare()
        return np.asarray(self._booster.predict(features, num_threads=1), dtype=np.float64)

    @property
    def model(self) -> str:
        """learned: ``effort`` (regression of log2 least effort, scaled by a multiplier) or
        ``risk`` (a classifier of the first stage missing a recall floor; queries above a
        probability threshold are searched again at one hard effort)."""
        return str(self.calibration.get("model", "effort"))

    def final_efforts(self, features: np.ndarray) -> np.ndarray:
        """The effort (nq,) int64 grid values >= first_effort each query is searched at."""
        grid = np.asarray(self.grid, dtype=np.int64)
        if self.kind in LEARNED_KINDS and self.model == "risk":
            risky = self.predicted_log_effort(features) > float(self.calibration["threshold"])
            chosen = np.where(risky, int(self.calibration["hard"]), self.first_effort)
        elif self.kind in LEARNED_KINDS:
            raw = np.exp2(self.predicted_log_effort(features)) * float(
                self.calibration["multiplier"]
            )
            chosen = grid[snap_up(raw, self.grid)]
        else:
            column = self.feature_names().index(self.calibration["feature"])
            values = features[:, column]
            threshold = float(self.calibration["threshold"])
            harder = (
                (values > threshold) if self.calibration["harder_above"] else (values < threshold)
            )
            harder |= np.isnan(values)
            chosen = np.where(harder, int(self.calibration["hard"]), int(self.calibration["easy"]))
        return np.maximum(chosen, self.first_effort).astype(np.int64)

    def manifest(self) -> dict:
        """The JSON manifest (everything but the payload)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "engine": self.engine,
            "index": self.index,
            "param": self.param,
            "grid": [int(v) for v in self.grid],
            "k": int(self.k),
            "first_stage": self.stage.to_dict(),
            "target": self.target,
            "calibration": self.calibration,
            "features": self.feature_names(),
            "n_centroids": self.n_centroids,
            "seed": int(self.seed),
            "training": self.training,
        }

    def payload(self) -> dict:
        return {
            "model": self.model_text,
            "centroids": [[float(x) for x in row] for row in self.centroids],
        }


def _payload_sha256(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_policy(policy: Policy, path: str | Path) -> Path:
    """Write ``policy`` as one JSON file at ``path`` atomically (annkit.files.write_text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = policy.payload()
    document = {**policy.manifest(), "payload_sha256": _payload_sha256(payload), "payload": payload}
    write_text(path, json.dumps(document, indent=1, sort_keys=True))
    return path


def load_policy(path: str | Path, manifest: dict | None = None) -> Policy:
    """Read a policy file, verify its format and checksum and, when the index ``manifest``
    is given, that it belongs to that index. PolicyError (one line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"{path}: no such policy file")
    if path.stat().st_size > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: implausibly large policy file")

    def damaged(reason: str) -> PolicyError:
        return PolicyError(f"{path}: damaged policy file ({reason}); retrain it with annkit adapt")

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise damaged("not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PolicyError(f"{path}: not an annkit policy file")
    if document.get("format_version") != FORMAT_VERSION:
        raise PolicyError(
            f"{path}: policy format version {document.get('format_version')!r} "
            f"is not supported (this annkit reads {FORMAT_VERSION}); retrain it"
        )
    payload = document.get("payload")
    if not isinstance(payload, dict) or document.get("payload_sha256") != _payload_sha256(payload):
        raise damaged("checksum mismatch")
    try:
        policy = Policy(
            kind=str(document["kind"]),
            index=dict(document["index"]),
            param=str(document["param"]),
            grid=[int(v) for v in document["grid"]],
            k=int(document["k"]),
            stage=FirstStage(**document["first_stage"]),
            calibration=dict(document["calibration"]),
            centroids=np.asarray(payload["centroids"], dtype=np.float32).reshape(
                int(document["n_centroids"]), -1
            )
            if document["n_centroids"]
            else np.zeros((0, int(document["index"]["dim"])), dtype=np.float32),
            seed=int(document["seed"]),
            target=document.get("target"),
            model_text=str(payload["model"]),
            training=dict(document.get("training", {})),
        )
    except (KeyError, TypeError, ValueError):
        raise damaged("a manifest field is missing or has the wrong type") from None
    if (
        policy.kind not in (*KINDS, *STOPPING_KINDS)
        or list(document.get("features", [])) != policy.feature_names()
    ):
        raise damaged(f"unknown kind {policy.kind!r} or feature list")
    if policy.kind in LEARNED_KINDS and policy.model not in ("effort", "risk"):
        raise damaged(f"unknown learned model {policy.model!r}")
    if policy.kind == "patience" and not (
        isinstance(policy.calibration.get("ef"), int)
        and isinstance(policy.calibration.get("patience"), int)
        and policy.calibration["ef"] >= 1
        and policy.calibration["patience"] >= -1
    ):
        raise damaged("a patience policy needs an integer ef >= 1 and patience >= -1")
    if policy.kind == "darth" and not (
        is_finite_number(policy.calibration.get("threshold"))
        and isinstance(policy.calibration.get("checkpoints"), list)
        and policy.calibration["checkpoints"]
        and all(isinstance(c, int) and c >= 1 for c in policy.calibration["checkpoints"])
        and policy.calibration.get("last") in policy.calibration["checkpoints"]
        and isinstance(policy.calibration.get("first"), int)
    ):
        raise damaged("a darth policy needs a threshold and its checkpoints")
    if policy.kind == "ada-ef":
        from annkit.adaptive.ada_ef import check_ada_ef

        why = check_ada_ef(policy)
        if why is not None:
            raise damaged(why)
    if policy.kind == "learned-resume" and policy.stage.kind != "full":
        raise damaged("a learned-resume policy needs a full first stage")
    if policy.kind == "resume" and (
        policy.stage.kind != "full"
        or not is_finite_number(policy.calibration.get("threshold"))
        or policy.calibration.get("feature") not in policy.feature_names()
        or policy.calibration.get("easy") not in policy.grid
        or policy.calibration.get("hard") not in policy.grid
    ):
        raise damaged(
            "a resume policy needs a full first stage, a feature, a threshold and grid efforts"
        )
    if policy.model == "risk" and (
        policy.stage.kind != "full"
        or not is_finite_number(policy.calibration.get("threshold"))
        or policy.calibration.get("hard") not in policy.grid
    ):
        raise damaged("a risk model needs a full first stage, a threshold and a grid effort")
    if (
        policy.stage.kind not in STAGES
        or not policy.grid
        or (policy.stage.kind == "full" and policy.stage.effort not in policy.grid)
    ):
        raise damaged("first stage or effort grid")
    if manifest is not None:
        check_policy_index(policy, manifest, path)
    return policy


def check_policy_index(policy: Policy, manifest: dict, path: str | Path = "policy") -> None:
    """PolicyError unless ``policy`` was trained for the index with this ``manifest``."""
    mine, theirs = policy.index, index_identity(manifest)
    for key in (
        "engine",
        "build_params",
        "metric",
        "dim",
        "count",
        "dataset_fingerprint",
        "payload_sha256",
    ):
        if mine.get(key) != theirs.get(key):
            raise PolicyError(
                f"{path}: policy belongs to another index ({key} differs: trained for "
                f"{mine['engine']} {mine['count']} x {mine['dim']}); retrain it with annkit adapt"
            )


@dataclass(frozen=True)
class AdaptiveResult:
    """One adaptive search: ids / distances (nq, k), the final effort (nq,), which queries
    had a second stage, distance computations per stage and in total ((nq,) int64 or None
    when the engine cannot count) and the wall time in seconds of the whole search."""

    ids: np.ndarray
    distances: np.ndarray
    efforts: np.ndarray
    second_stage: np.ndarray
    computations: dict[str, np.ndarray | None]
    seconds: float

    @property
    def distance_computations(self) -> np.ndarray | None:
        """Per-query total over features, first and second stage (None if any is unknown)."""
        parts = list(self.computations.values())
        if any(part is None for part in parts):
            return None
        return np.sum(np.vstack(parts), axis=0).astype(np.int64)  # type: ignore[arg-type]

    @classmethod
    def resumed(
        cls,
        first: SearchResult,
        found: SearchResult,
        efforts: np.ndarray,
        first_effort: int,
        feature_cost: int,
        seconds: float,
    ) -> AdaptiveResult:
        """A search that ran a first stage at ``first_effort`` (result ``first``) and
        resumed the queries whose ``efforts`` are larger (final result ``found``, counted
        in total): the second stage's work is the total less the first's."""
        assert first.distance_computations is not None
        assert found.distance_computations is not None
        return cls(
            ids=found.ids,
            distances=found.distances,
            efforts=efforts,
            second_stage=efforts > first_effort,
            computations={
                "features": np.full(len(efforts), feature_cost, dtype=np.int64),
                "first": first.distance_computations,
                "second": found.distance_computations - first.distance_computations,
            },
            seconds=seconds,
        )


def check_policy_engine(engine: Engine, policy: Policy, k: int) -> str:
    """The engine's effort parameter; PolicyError / ParamError (one line) when ``policy``
    is for another engine or parameter or was trained for another k."""
    param = effort_param_of(engine)
    if param != policy.param or engine.name != policy.engine:
        raise PolicyError(
            f"policy is for {policy.engine} ({policy.param}), the index is {engine.name} ({param})"
        )
    if k != policy.k:
        raise ParamError(f"policy was trained for k={policy.k}; use -k {policy.k} or retrain")
    return param


def adaptive_search(
    engine: Engine, policy: Policy, queries: np.ndarray, k: int, *, count: bool = True
) -> AdaptiveResult:
    """Search ``queries`` (nq, d) with ``policy``: features, the first stage (a full search at
    the policy's first effort, a small probe, or none), then a search at the policy's effort
    for every query whose effort is not covered by a full first stage (that result replaces
    the first stage's). One thread; the engine's query params are restored.

    The timed pass runs with the engine's extra counting off (``Engine.uncounted``), so
    ``seconds`` is the search alone. When ``count`` and the engine counts, an untimed second
    pass counts each stage's distance computations: one-thread search is deterministic and
    no feature depends on the counts, so it makes the same choices (checked)."""
    param = check_policy_engine(engine, policy, k)
    if policy.kind in STOPPING_KINDS:  # decided inside annkit's own search, counted there
        from annkit.adaptive.stopping import stopping_search

        return stopping_search(engine, policy, np.ascontiguousarray(queries, np.float32), k)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    policy.prepare()
    with engine.uncounted():
        result = _adaptive_pass(engine, policy, queries, k, param)
    if count and engine.counts_distances:
        counted = _adaptive_pass(engine, policy, queries, k, param)
        if not np.array_equal(counted.efforts, result.efforts):
            raise RuntimeError("the counting pass chose other efforts than the timed pass")
        result = replace(result, computations=counted.computations)
    return result


def _adaptive_pass(
    engine: Engine, policy: Policy, queries: np.ndarray, k: int, param: str
) -> AdaptiveResult:
    """One adaptive search of ``queries`` (see :func:`adaptive_search`), timed."""
    n_queries = int(queries.shape[0])
    start = time.perf_counter()
    first: SearchResult | None = None
    if policy.stage.kind != "none":
        first = search_with_efforts(
            engine, queries, policy.stage.k, np.full(n_queries, policy.stage.effort), param
        )
    features = policy.features(queries, first)
    efforts = policy.final_efforts(features)
    if policy.stage.kind == "full":
        assert first is not None
        second = efforts > policy.stage.effort
        ids, distances = first.ids.copy(), first.distances.copy()
    else:
        second = np.ones(n_queries, dtype=bool)
        ids = np.full((n_queries, k), -1, dtype=np.int64)
        distances = np.full((n_queries, k), np.inf, dtype=np.float32)
    second_counts: np.ndarray | None = np.zeros(n_queries, dtype=np.int64)
    rows = np.flatnonzero(second)
    if rows.size:
        result = search_with_efforts(engine, queries[rows], k, efforts[rows], param)
        ids[rows], distances[rows] = result.ids, result.distances
        if result.distance_computations is None:
            second_counts = None
        else:
            assert second_counts is not None
            second_counts[rows] = result.distance_computations
    seconds = time.perf_counter() - start
    first_counts = (
        np.zeros(n_queries, dtype=np.int64) if first is None else first.distance_computations
    )
    return AdaptiveResult(
        ids=ids,
        distances=distances,
        efforts=efforts,
        second_stage=second,
        computations={
            "features": np.full(n_queries, policy.n_centroids, dtype=np.int64),
            "first": first_counts,
            "second": second_counts,
        },
        seconds=seconds,
    )
