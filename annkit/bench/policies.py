"""Per-query effort policies in a sweep: measuring them in the worker, and telling their
records apart from uniform ones in reports and plots.

A policy run is a record whose ``policy`` (:class:`annkit.types.PolicyRun`, kept in its
``query_params`` as ``policy``: the kind, learned or threshold; ``source``: the policy file
as written in the sweep, or "adapt": trained by the sweep, cross-fitted; ``target``: the
mean recall it was calibrated for) is set, and whose query params say what it did:
``mean_<effort param>`` and ``second_stage_share`` (plus ``max_<param>`` and ``first_stage``
for a file, ``folds`` for adapt). Its recall, p5, tail, slices, distance computations (the
policy's own work included) and QPS are measured like a uniform setting's.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bench.errors import SweepError
from annkit.bench.store import per_query_arrays
from annkit.errors import InputError
from annkit.measure import Measure
from annkit.types import NO_LATENCY, Evaluation, RunRecord

#: keys of an [[engine]] entry's ``adapt`` table (the options of ``annkit adapt``)
ADAPT_KEYS = ("target", "kinds", "folds", "grid", "seed", "centroids")
#: the policy kinds ``adapt`` trains by default (annkit.adaptive.policy.KINDS)
ADAPT_KINDS = ("learned", "threshold")
ADAPT_DEFAULTS = {"folds": 5, "seed": 0, "centroids": 32}

#: how ``adapt`` runs in a sweep tell a missing lightgbm (one line)
LIGHTGBM_HINT = (
    "learned policies need lightgbm: pip install 'annkit[adapt]' (or adapt = "
    '{ kinds = ["threshold"], ... })'
)


@dataclass(frozen=True)
class PolicySetting:
    """A per-query effort policy measured on a build beside its uniform query settings.

    ``source`` "file": the trained policy file ``path`` (``name`` as written, ``sha256`` of
    its bytes); "adapt": a ``kind`` policy for mean recall ``target`` trained by the sweep on
    the built index, cross-fitted over ``folds`` folds (no query is scored by a policy trained
    on it), on the effort ``grid`` (None: the engine's default grid), seeded by ``seed``, with
    ``centroids`` coarse centroids."""

    source: str
    kind: str
    target: float | None
    path: str | None = None
    name: str | None = None
    sha256: str | None = None
    folds: int | None = None
    grid: tuple[int, ...] | None = None
    seed: int = 0
    centroids: int = 32

    def describe(self) -> dict[str, Any]:
        """The query params a record of this policy starts from: ``policy`` (kind),
        ``source`` ("adapt" or the file as written), ``target`` (and ``folds`` for adapt)."""
        params: dict[str, Any] = {
            "policy": self.kind,
            "source": "adapt" if self.source == "adapt" else self.name,
            "target": self.target,
        }
        if self.source == "adapt":
            params["folds"] = self.folds
        return params

    def key(self) -> dict[str, Any]:
        """What identifies the run (its run id and cache key): the file's sha256, or every
        adapt setting."""
        if self.source == "file":
            return {"policy": self.kind, "policy_sha256": self.sha256}
        return {
            "policy": self.kind,
            "adapt": {
                "target": self.target,
                "folds": self.folds,
                "seed": self.seed,
                "centroids": self.centroids,
                "grid": "default" if self.grid is None else list(self.grid),
            },
        }

    def adapt_group(self) -> tuple | None:
        """adapt: the settings one ``adapt`` call trains all its runs' policies with (folds,
        grid, seed, centroids); None for a file."""
        if self.source != "adapt":
            return None
        return (self.folds, self.grid, self.seed, self.centroids)


def read_policy_file(path: Path, written: str) -> tuple[Any, PolicySetting]:
    """The policy in the file ``path`` (checked: format, checksum) and its PolicySetting;
    PolicyError (one line) for a missing, damaged or foreign file."""
    from annkit.adaptive.policy import load_policy

    policy = load_policy(path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return policy, PolicySetting(
        source="file",
        kind=policy.kind,
        target=policy.target,
        path=str(path.resolve()),
        name=written,
        sha256=sha256,
    )


def check_policy_k(policy: Any, k: int, written: str) -> None:
    """SweepError unless ``policy`` was trained for recall@``k``."""
    if int(policy.k) != int(k):
        raise SweepError(
            f"{written}: policy was trained for k={policy.k}, the sweep measures "
            f"k={k}; retrain it with annkit adapt -k {k}"
        )


def policy_fits_build(policy: Any, engine: str, resolved: dict[str, Any]) -> bool:
    """True when ``policy`` was trained for an index of ``engine`` with the build params
    ``resolved`` (params still None, derived from the data, match any value)."""
    trained = policy.index.get("build_params", {})
    return policy.engine == engine and all(
        value is None or trained.get(name) == value for name, value in resolved.items()
    )


def describe_policy_index(policy: Any) -> str:
    """``hnsw M=16 ef_construction=200 seed=100, 10000 x 384``."""
    index = policy.index
    params = " ".join(
        f"{name}={value}"
        for name, value in index.get("build_params", {}).items()
        if value is not None
    )
    return f"{index.get('engine')} {params}, {index.get('count')} x {index.get('dim')}".replace(
        "  ", " "
    )


def policy_dataset_problem(
    setting: PolicySetting, metric: str, dim: int, count: int, fingerprint: str
) -> str | None:
    """Why the policy file of ``setting`` cannot belong to an index over this dataset
    (metric, dim, count, dataset fingerprint), or None. Its payload can only be checked
    once the index is built (the run then fails with the reason)."""
    from annkit.adaptive.policy import load_policy

    assert setting.path is not None
    policy = load_policy(setting.path)
    index = policy.index
    for key, value in (
        ("metric", metric),
        ("dim", dim),
        ("count", count),
        ("dataset_fingerprint", fingerprint),
    ):
        theirs = index.get(key)
        if key == "dataset_fingerprint" and not theirs:
            continue
        if theirs != value:
            return (
                f"{setting.name}: policy belongs to another dataset ({key} differs: "
                f"trained for {describe_policy_index(policy)}); retrain "
                "it with annkit adapt on this sweep's index, or use adapt = { target = ... } "
                "in the [[engine]] entry"
            )
    return None


def adapt_settings(table: dict[str, Any], efforts: list[Any]) -> list[PolicySetting]:
    """One PolicySetting per kind and target of a checked ``adapt`` table. Without an
    explicit grid, the build's own effort values (``efforts``, from its query grid) with
    geometric midpoints are the grid when they hold at least two values; else None (the
    engine's default grid)."""
    grid = table["grid"]
    if grid is None:
        values = sorted({int(value) for value in efforts if isinstance(value, int)})
        if len(values) >= 2:
            from annkit.adaptive.search import refine_grid

            grid = tuple(refine_grid(values))
    return [
        PolicySetting(
            source="adapt",
            kind=kind,
            target=target,
            folds=table["folds"],
            grid=grid,
            seed=table["seed"],
            centroids=table["centroids"],
        )
        for kind in table["kinds"]
        for target in table["targets"]
    ]


def policy_kind(record: RunRecord) -> str | None:
    """The policy kind of a policy run (``learned``, ``threshold``), None for a uniform one."""
    return None if record.policy is None else record.policy.kind


def series_name(record: RunRecord, build_label: str = "") -> str:
    """The series a record is drawn and reported in: its engine for uniform settings (one
    frontier per engine); ``<engine> <build> + <kind> policy`` for the sweep's own
    (cross-fitted) policies of one index, ``... + <kind> policy (<file>)`` for a file's."""
    policy = record.policy
    if policy is None:
        return record.engine
    head = f"{record.engine} {build_label}".strip()
    tail = "" if policy.source in (None, "adapt") else f" ({policy.source})"
    return f"{head} + {policy.kind} policy{tail}"


def policy_text(record: RunRecord) -> str:
    """The query part of a policy run's setting name: ``learned policy, target 0.95, adapt
    5 folds: mean ef 41.3``."""
    policy = record.policy
    assert policy is not None
    parts = [f"{policy.kind} policy"]
    if policy.target is not None:
        parts.append(f"target {policy.target:g}")
    if policy.source == "adapt":
        parts.append(f"adapt {policy.folds} folds" if policy.folds else "adapt")
    elif policy.source:
        parts.append(policy.source)
    text = ", ".join(parts)
    means = [
        (name.removeprefix("mean_"), value)
        for name, value in record.query_params.items()
        if name.startswith("mean_") and isinstance(value, int | float)
    ]
    if means:
        name, value = means[0]
        text += f": mean {name} {value:,.1f}"
    return text


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure_policy_file(
    bundle: Any,
    dataset: Any,
    setting: PolicySetting,
    measure: Measure,
    truth: Any,
    profile: Any,
) -> Evaluation:
    """Evaluate the policy file of ``setting`` on ``bundle`` as ``measure`` says, with
    :func:`annkit.adaptive.evaluate.evaluate_policy` (the one scoring function of uniform
    settings too, so any recall rule works): its query params name the policy (kind, file,
    target) and what it did. InputError / PolicyError (one line) when the file moved,
    changed or belongs to another index."""
    from annkit.adaptive import check_policy_index, load_policy
    from annkit.adaptive.evaluate import evaluate_policy

    assert setting.path is not None and setting.name is not None
    path, name = Path(setting.path), setting.name
    if not path.is_file():
        raise InputError(f"{name}: no such policy file (moved since the sweep started?)")
    if _file_sha256(path) != setting.sha256:
        raise InputError(
            f"{name}: the policy file changed since the sweep started; run the sweep again"
        )
    policy = load_policy(path)
    check_policy_index(policy, bundle.manifest, name)
    evaluation = evaluate_policy(
        bundle, dataset, policy, measure=measure, truth=truth, profile=profile
    )
    measured = {key: value for key, value in evaluation.query_params.items() if key != "policy"}
    return replace(
        evaluation,
        query_params={"policy": policy.kind, "source": name, "target": policy.target, **measured},
    )


class AdaptRuns:
    """The ``adapt`` runs of one build in a worker job: each group of runs sharing folds,
    grid, seed and centroids (:meth:`PolicySetting.adapt_group`) is trained and scored by
    one :func:`annkit.adaptive.adapt` call (cross-fitted: no query is scored by a policy
    trained on it); then each run is that call's frontier point for its kind and target.
    adapt scores with the tolerant recall rule (a sweep refuses adapt runs under another)."""

    def __init__(
        self,
        bundle: Any,
        dataset: Any,
        k: int,
        true_distances: np.ndarray,
        profile: Any,
        settings: dict[str, PolicySetting],
    ) -> None:
        self.bundle = bundle
        self.dataset = dataset
        self.k = k
        self.true_distances = true_distances
        self.profile = profile
        self.settings = {
            run_id: setting for run_id, setting in settings.items() if setting.source == "adapt"
        }
        self.points: dict[str, tuple[RunRecord, dict] | BaseException] = {}

    def measure(self, run_id: str) -> tuple[RunRecord, dict]:
        """The record of the adapt run ``run_id`` (its policy kind at its target) and its
        per-query arrays (recall and distance computations, cross-fitted)."""
        if run_id not in self.points:
            self._train(self.settings[run_id].adapt_group())
        outcome = self.points[run_id]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _train(self, group: tuple | None) -> None:
        from annkit.adaptive import AdaptConfig, Goal, adapt
        from annkit.adaptive.policy import lightgbm_available

        members = {
            run_id: setting
            for run_id, setting in self.settings.items()
            if setting.adapt_group() == group and run_id not in self.points
        }
        if not lightgbm_available():
            for run_id, setting in members.items():
                if setting.kind == "learned":
                    self.points[run_id] = InputError(LIGHTGBM_HINT)
            members = {r: s for r, s in members.items() if s.kind != "learned"}
        if not members or group is None:
            return
        # the cheap kind first: adapt also fits its first kind on all queries (not scored)
        kinds = sorted(
            {setting.kind for setting in members.values()}, key=lambda kind: kind != "threshold"
        )
        targets = sorted({float(setting.target or 0.0) for setting in members.values()})
        folds, grid, seed, centroids = group
        config = AdaptConfig(
            k=self.k, folds=folds, seed=seed, n_centroids=centroids, kinds=tuple(kinds)
        )
        try:
            report = adapt(
                self.bundle,
                self.dataset,
                self.k,
                targets[0],
                config=config,
                goals=[Goal("recall", target) for target in targets],
                oracle_targets=(),
                grid=None if grid is None else list(grid),
                truth=self.true_distances,
                profile=self.profile,
            )
        except Exception as exc:  # noqa: BLE001 - each run records the failure
            for run_id in members:
                self.points[run_id] = exc
            return
        summary = report.to_dict()
        param = str(summary.get("param") or "effort")
        for run_id, setting in members.items():
            points = summary["frontiers"].get(setting.kind, [])
            position = targets.index(float(setting.target or 0.0))
            if len(points) != len(targets):
                self.points[run_id] = InputError(
                    f"adapt returned {len(points)} {setting.kind} points for {len(targets)} targets"
                )
                continue
            rows = report.per_query[setting.kind][position]
            self.points[run_id] = (
                self._record(run_id, points[position], setting, param),
                per_query_arrays(rows["recall"], rows["distance_computations"]),
            )

    def _record(self, run_id: str, point: dict, setting: PolicySetting, param: str) -> RunRecord:
        manifest = self.bundle.manifest
        qps = float(point["qps"])
        queries = int(self.dataset.n_queries)
        query_params: dict[str, Any] = {
            "policy": setting.kind,
            "source": "adapt",
            "target": float(setting.target or 0.0),
            "folds": int(setting.folds or 0),
        }
        if point.get("mean_effort") is not None:
            query_params[f"mean_{param}"] = round(float(point["mean_effort"]), 2)
        if point.get("second_stage_share") is not None:
            query_params["second_stage_share"] = round(float(point["second_stage_share"]), 4)
        return RunRecord.from_dict(
            {
                "run_id": run_id,
                "status": "ok",
                "engine": manifest["engine"],
                "build_params": dict(manifest["build_params"]),
                "query_params": query_params,
                "metric": self.dataset.metric,
                "dataset": self.dataset.name,
                "k": self.k,
                "mode": "batch",
                "queries": queries,
                "recall": float(point["recall"]),
                "qps": qps,
                "latency_ms": NO_LATENCY,
                "build_seconds": float(manifest["build_seconds"]),
                "index_bytes": self.bundle.index_bytes,
                "search_seconds": queries / qps if qps > 0 and math.isfinite(qps) else None,
                "runs": 1,
                "tail": point.get("tail"),
                "slices": point.get("slices"),
                "weighted_recall": point.get("weighted_recall"),
                "distance_computations": point.get("distance_computations"),
                "qps_runs": [qps],
                "timed_queries": queries,
                "max_runs": 1,
            }
        )
