"""Sweep files: a TOML description of engines x build params x query params on one dataset.

```toml
[bench]
dataset = "words-10k"   # bundled name or a path (relative to the sweep file)
k = 10
runs = 3                # repetitions per query setting; QPS = best run
mode = "batch"          # or "single"
timeout = 600           # optional, seconds per build or query run
[[engine]]
name = "hnsw"
build = { M = [8, 16, 32], ef_construction = [200] }
query = { ef = [10, 20, 40, 80, 160, 320] }
policy = ["hnsw16.policy.json"]        # optional: trained policy files (from annkit adapt)
adapt = { target = [0.95, 0.99] }       # optional: policies trained on the built index
```

Scalars or lists; lists expand to the cartesian product. Every value is checked against the
engine registry's :class:`~annkit.engines.base.ParamSpec` before anything runs, and every
error names the file, the line and the key.

``policy`` and ``adapt`` add per-query effort policies beside the uniform query settings
(:class:`PolicySetting`): each policy file is measured on the build it was trained for,
and ``adapt`` (keys ``target``, ``kinds``, ``folds``, ``grid``, ``seed``, ``centroids``)
trains cross-fitted policies on each build of the entry, one run per kind and target.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from annkit.engines.base import engine_names, get_engine
from annkit.errors import AnnkitError, InputError, ParamError
from annkit.evaluate import DEFAULT_QPS_TOLERANCE, MODES

DEFAULT_SWEEP_NAME = "default sweep"

#: the default sweep's TOML text (``annkit bench --print-default``), from the package file
DEFAULT_SWEEP = (resources.files("annkit.bench") / "default-sweep.toml").read_text(encoding="utf-8")

BENCH_KEYS = (
    "dataset",
    "queries",
    "groundtruth",
    "metric",
    "k",
    "runs",
    "mode",
    "timeout",
    "recall",
    "qps_tolerance",
)
#: how recall@k is scored (see annkit.metrics.RECALL_RULES)
RECALL_RULE_NAMES = ("tolerant", "strict")
ENGINE_KEYS = ("name", "build", "query", "policy", "adapt")
#: keys of an [[engine]] entry's ``adapt`` table (the options of ``annkit adapt``)
ADAPT_KEYS = ("target", "kinds", "folds", "grid", "seed", "centroids")
#: the policy kinds ``adapt`` trains by default (annkit.adaptive.policy.KINDS)
ADAPT_KINDS = ("learned", "threshold")
ADAPT_DEFAULTS = {"folds": 5, "seed": 0, "centroids": 32}


class SweepError(InputError):
    """A sweep file that cannot be read or fails validation (message names file and line)."""


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

    def to_job(self) -> dict[str, Any]:
        """The worker's description of this policy (plain values)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "target": self.target,
            "path": self.path,
            "name": self.name,
            "sha256": self.sha256,
            "folds": self.folds,
            "grid": None if self.grid is None else list(self.grid),
            "seed": self.seed,
            "centroids": self.centroids,
        }


@dataclass(frozen=True)
class QuerySetting:
    """One query setting of a build: its stable run id and resolved query params, or (with
    ``policy``) a per-query effort policy, whose ``params`` then describe it."""

    run_id: str
    params: dict[str, Any]
    policy: PolicySetting | None = None


@dataclass(frozen=True)
class BuildSetting:
    """One index to build, with every query setting to measure on it.

    ``params`` are the build params as written (coerced), ``resolved`` adds the engine's
    defaults (None for data-derived ones); ``resolved`` identifies the index.
    """

    engine: str
    params: dict[str, Any]
    resolved: dict[str, Any]
    queries: tuple[QuerySetting, ...]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: dataset, k, repetitions, mode and the expanded settings."""

    source: str
    text: str
    dataset: str
    k: int
    runs: int
    mode: str
    builds: tuple[BuildSetting, ...]
    timeout: float | None = None
    queries: str | None = None
    groundtruth: str | None = None
    metric: str | None = None
    base_dir: Path | None = None
    #: "tolerant" (ann-benchmarks, the default) or "strict" (id overlap with the true top-k)
    recall_rule: str = "tolerant"
    #: stop timing a setting once its two fastest runs agree within this fraction (0: always
    #: ``runs`` runs); see annkit.evaluate.timing_is_stable
    qps_tolerance: float = DEFAULT_QPS_TOLERANCE

    @property
    def n_runs(self) -> int:
        """Number of (build, query) settings."""
        return sum(len(build.queries) for build in self.builds)

    def run_ids(self) -> list[str]:
        return [query.run_id for build in self.builds for query in build.queries]

    @property
    def has_policies(self) -> bool:
        """True when some build measures a per-query effort policy."""
        return any(query.policy is not None for build in self.builds for query in build.queries)

    def with_policies(self, paths: list[str]) -> SweepSpec:
        """The same sweep with each trained policy file of ``paths`` (from the current
        folder) measured on the build it was trained for (``annkit bench --policy``);
        SweepError (one line) when no build of the sweep is that index."""
        builds = list(self.builds)
        for path in paths:
            policy, setting = read_policy_file(Path(path), path)
            check_policy_k(policy, self.k, path)
            matched = [
                position
                for position, build in enumerate(builds)
                if policy_fits_build(policy, build.engine, build.resolved)
            ]
            if not matched:
                raise SweepError(
                    f"{path}: no build of {self.source} is the index this policy was trained "
                    f"for ({describe_policy_index(policy)}); add that build to the sweep"
                )
            for position in matched:
                build = builds[position]
                run_id = make_run_id(build.engine, build.resolved, setting.key(), self.k, self.mode)
                if any(query.run_id == run_id for query in build.queries):
                    continue
                builds[position] = replace(
                    build,
                    queries=(
                        *build.queries,
                        QuerySetting(run_id=run_id, params=setting.describe(), policy=setting),
                    ),
                )
        return replace(self, builds=tuple(builds))

    def dataset_kwargs(self) -> dict[str, Any]:
        """Arguments for :func:`annkit.sources.open_dataset`, with paths resolved."""
        return {
            "data": self._locate(self.dataset),
            "queries": self._locate(self.queries),
            "groundtruth": self._locate(self.groundtruth),
            "metric": self.metric,
        }

    def _locate(self, value: str | None) -> str | None:
        """A relative path is taken from the sweep file's folder (never the current one);
        bundled dataset names stay names."""
        if value is None or self.base_dir is None or Path(value).is_absolute():
            return value
        from annkit.io import BUNDLED_DATASETS

        if value in BUNDLED_DATASETS:
            return value
        return str(self.base_dir / value)

    def with_dataset(self, dataset: str) -> SweepSpec:
        """The same grid on another dataset (a bundled name or a path from the current folder).

        Separate query / ground-truth files and the metric of the sweep file are dropped: they
        belong to its dataset."""
        return replace(
            self, dataset=dataset, queries=None, groundtruth=None, metric=None, base_dir=None
        )

    def with_recall_rule(self, rule: str) -> SweepSpec:
        """The same sweep scored under recall ``rule`` (tolerant or strict)."""
        if rule not in RECALL_RULE_NAMES:
            raise SweepError(f"unknown recall rule {rule!r}: use tolerant or strict")
        return replace(self, recall_rule=rule)

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same for resuming: settings, k, runs and mode (and the
        recall rule when strict: older folders, all tolerant, keep resuming)."""
        identity: dict[str, Any] = {
            "k": self.k,
            "runs": self.runs,
            "mode": self.mode,
            "run_ids": sorted(self.run_ids()),
        }
        if self.recall_rule != "tolerant":
            identity["recall_rule"] = self.recall_rule
        if self.qps_tolerance != DEFAULT_QPS_TOLERANCE:
            identity["qps_tolerance"] = self.qps_tolerance
        return identity


def make_run_id(engine: str, build_params: dict, query_params: dict, k: int, mode: str) -> str:
    """A stable key of one (build, query) setting: ``<engine>-<12 hex digits>``."""
    key = json.dumps(
        [engine, sorted(build_params.items()), sorted(query_params.items()), int(k), mode],
        sort_keys=True,
        default=str,
    )
    return f"{engine}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


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


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _strip_comment(line: str) -> str:
    in_string: str | None = None
    for position, char in enumerate(line):
        if in_string:
            if char == in_string:
                in_string = None
        elif char in "\"'":
            in_string = char
        elif char == "#":
            return line[:position]
    return line


class _Locator:
    """Finds the line of a key in the raw TOML text (tomllib reports none for valid files)."""

    def __init__(self, text: str) -> None:
        self.lines = [_strip_comment(line) for line in text.splitlines()]
        self.headers: list[tuple[int, bool, str]] = []  # (index, is_array, dotted name)
        for index, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match:
                name = re.sub(r"\s*\.\s*", ".", match.group(2)).replace('"', "").replace("'", "")
                self.headers.append((index, match.group(1) == "[[", name))

    def _span(self, start: int) -> int:
        for index, _, _ in self.headers:
            if index > start:
                return index
        return len(self.lines)

    def _find(self, key: str, start: int, stop: int) -> int | None:
        pattern = re.compile(
            rf"(?:^|[\s{{,.])(?:\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*[=.]"
        )
        for index in range(start, stop):
            if pattern.search(self.lines[index]):
                return index + 1
        return None

    def table(self, name: str) -> int | None:
        """1-based line of the header ``[name]``."""
        for index, is_array, header in self.headers:
            if header == name and not is_array:
                return index + 1
        return None

    def table_key(self, name: str, key: str) -> int | None:
        """Line of ``key`` inside the ``[name]`` table ("" = the top level, before any table)."""
        if not name:
            return self._find(key, 0, self.headers[0][0] if self.headers else len(self.lines))
        header = self.table(name)
        if header is not None:
            found = self._find(key, header, self._span(header - 1))
            if found is not None:
                return found
        return header

    def engine_block(self, position: int) -> tuple[int, int] | None:
        """0-based [start, stop) lines of the ``position``-th ``[[engine]]`` block."""
        starts = [index for index, is_array, name in self.headers if is_array and name == "engine"]
        if position >= len(starts):
            return None
        start = starts[position]
        stop = len(self.lines)
        for index, _, name in self.headers:
            if index > start and not name.startswith("engine."):
                stop = index
                break
        return start, stop

    def engine_key(self, position: int, key: str, within: str | None = None) -> int | None:
        """Line of ``key`` in the ``position``-th engine block (inside ``within`` = build or
        query when given); falls back to the section's line, then the block's header."""
        block = self.engine_block(position)
        if block is None:
            return None
        start, stop = block
        if within is not None:
            anchor = None
            for index in range(start, stop):
                line = self.lines[index]
                sub = _HEADER.match(line)
                if sub and sub.group(2).replace(" ", "") == f"engine.{within}":
                    anchor = index
                    break
                if not sub and re.search(rf"(?:^|[\s{{,]){within}\s*[=.]", line):
                    anchor = index
                    break
            if anchor is not None:
                found = self._find(key, anchor, stop)
                if found is not None:
                    # the key itself may be on the anchor line after "build ="
                    return found
                return anchor + 1
        found = self._find(key, start + 1, stop)
        return found if found is not None else start + 1


class _Reader:
    """Validates a parsed sweep document, raising SweepError with file and line."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.locator = _Locator(text)

    def fail(self, line: int | None, message: str) -> SweepError:
        where = f"{self.source} line {line}" if line else self.source
        return SweepError(f"{where}: {message}")

    def bench(self, table: Any) -> dict[str, Any]:
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise self.fail(self.locator.table_key("", "bench"), "'bench' must be a table [bench]")
        line = self.locator.table_key
        for key in table:
            if key not in BENCH_KEYS:
                raise self.fail(
                    line("bench", key),
                    f"unknown [bench] key {key!r} (known: {', '.join(BENCH_KEYS)})",
                )
        out: dict[str, Any] = {}
        for key in ("dataset", "queries", "groundtruth", "metric", "mode", "recall"):
            if key in table:
                if not isinstance(table[key], str) or not table[key].strip():
                    raise self.fail(line("bench", key), f"[bench] {key} must be a non-empty string")
                out[key] = table[key]
        for key, default in (("k", 10), ("runs", 3)):
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.fail(
                    line("bench", key), f"[bench] {key} must be an integer >= 1, got {value!r}"
                )
            out[key] = value
        out.setdefault("mode", "batch")
        out.setdefault("recall", "tolerant")
        if out["recall"] not in RECALL_RULE_NAMES:
            raise self.fail(
                line("bench", "recall"),
                "[bench] recall must be tolerant (ann-benchmarks) or strict (id "
                f"overlap), got {out['recall']!r}",
            )
        if out["mode"] not in MODES:
            raise self.fail(
                line("bench", "mode"),
                f"[bench] mode must be one of {', '.join(MODES)}, got {out['mode']!r}",
            )
        if "timeout" in table:
            value = table["timeout"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise self.fail(
                    line("bench", "timeout"),
                    f"[bench] timeout must be a number of seconds > 0, got {value!r}",
                )
            out["timeout"] = float(value)
        if "qps_tolerance" in table:
            value = table["qps_tolerance"]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise self.fail(
                    line("bench", "qps_tolerance"),
                    f"[bench] qps_tolerance must be a fraction in [0, 1), got {value!r}",
                )
            out["qps_tolerance"] = float(value)
        if "metric" in out:
            from annkit.types import normalize_metric

            try:
                out["metric"] = normalize_metric(out["metric"])
            except InputError as exc:
                raise self.fail(line("bench", "metric"), str(exc)) from None
        out.setdefault("dataset", "words-10k")
        return out

    def grid(
        self, position: int, engine: str, kind: str, table: Any, specs: dict
    ) -> list[dict[str, Any]]:
        """The cartesian product of one engine's build or query table, coerced."""
        locate = self.locator.engine_key
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise self.fail(
                locate(position, kind),
                f"engine {engine!r}: {kind} must be a table of parameters, "
                f"e.g. {kind} = {{ name = [1, 2] }}",
            )
        names = list(table)
        axes: list[list[Any]] = []
        for name in names:
            if name not in specs:
                known = ", ".join(sorted(specs)) or "none"
                raise self.fail(
                    locate(position, name, kind),
                    f"engine {engine!r} has no {kind} parameter {name!r} (known: {known})",
                )
            values = table[name] if isinstance(table[name], list) else [table[name]]
            if not values:
                raise self.fail(
                    locate(position, name, kind),
                    f"engine {engine!r}: {kind} parameter {name!r} has an empty "
                    "list (nothing to run)",
                )
            coerced = []
            for value in values:
                try:
                    item = specs[name].coerce(name, value)
                except ParamError as exc:
                    raise self.fail(
                        locate(position, name, kind), f"engine {engine!r}: {kind} {exc}"
                    ) from None
                if item not in coerced:
                    coerced.append(item)
            axes.append(coerced)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]

    def policy_files(
        self, position: int, engine: str, value: Any, k: int, base_dir: Path | None
    ) -> list[tuple[Any, PolicySetting]]:
        """The trained policy files of an entry's ``policy`` key (paths from the sweep
        file's folder), read and checked."""
        if value is None:
            return []
        line = self.locator.engine_key(position, "policy")
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(name, str) and name.strip() for name in names):
            raise self.fail(
                line,
                f"engine {engine!r}: policy must be a policy file or a list "
                'of them, e.g. policy = ["hnsw16.policy.json"]',
            )
        out = []
        for name in dict.fromkeys(names):
            path = Path(name)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                policy, setting = read_policy_file(path, name)
                check_policy_k(policy, k, name)
            except AnnkitError as exc:
                raise self.fail(line, f"engine {engine!r}: {exc}") from None
            if policy.engine != engine:
                raise self.fail(
                    line, f"engine {engine!r}: {name} is a policy for {policy.engine}, not {engine}"
                )
            out.append((policy, setting))
        return out

    def adapt_table(
        self, position: int, engine: str, table: Any, mode: str
    ) -> dict[str, Any] | None:
        """An entry's ``adapt`` table, checked: targets, kinds, folds, grid, seed, centroids."""
        if table is None:
            return None
        locate = self.locator.engine_key
        if not isinstance(table, dict):
            raise self.fail(
                locate(position, "adapt"),
                f"engine {engine!r}: adapt must be a table, e.g. "
                "adapt = { target = [0.95, 0.99] }",
            )
        for key in table:
            if key not in ADAPT_KEYS:
                raise self.fail(
                    locate(position, key, "adapt"),
                    f"engine {engine!r}: unknown adapt key {key!r} (known: "
                    f"{', '.join(ADAPT_KEYS)})",
                )
        if mode != "batch":
            raise self.fail(
                locate(position, "adapt"),
                "adapt scores its policies with batch searches: set mode = "
                '"batch" in [bench], or list trained policy files with policy = '
                "[...]",
            )

        def listed(key: str) -> list[Any]:
            value = table[key]
            return value if isinstance(value, list) else [value]

        def number(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        if "target" not in table:
            raise self.fail(
                locate(position, "adapt"),
                f"engine {engine!r}: adapt needs target = <mean recall@k> or a "
                "list of them, e.g. adapt = { target = [0.95, 0.99] }",
            )
        targets = listed("target")
        if not targets or not all(number(t) and 0 < t <= 1 for t in targets):
            raise self.fail(
                locate(position, "target", "adapt"),
                f"engine {engine!r}: adapt target must be a mean recall in (0, 1] "
                f"or a list of them, got {table['target']!r}",
            )
        kinds = listed("kinds") if "kinds" in table else list(ADAPT_KINDS)
        if not kinds or not all(kind in ADAPT_KINDS for kind in kinds):
            raise self.fail(
                locate(position, "kinds", "adapt"),
                f"engine {engine!r}: adapt kinds must be among "
                f"{', '.join(ADAPT_KINDS)}, got {table['kinds']!r}",
            )
        out: dict[str, Any] = {
            "targets": list(dict.fromkeys(float(t) for t in targets)),
            "kinds": list(dict.fromkeys(kinds)),
            "grid": None,
        }
        for key, least in (("folds", 2), ("seed", 0), ("centroids", 0)):
            value = table.get(key, ADAPT_DEFAULTS[key])
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise self.fail(
                    locate(position, key, "adapt"),
                    f"engine {engine!r}: adapt {key} must be an integer >= {least}, got {value!r}",
                )
            out[key] = value
        if "grid" in table:
            grid = listed("grid")
            if len(set(grid)) < 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in grid
            ):
                raise self.fail(
                    locate(position, "grid", "adapt"),
                    f"engine {engine!r}: adapt grid must list at least two effort "
                    f"values >= 1, got {table['grid']!r}",
                )
            out["grid"] = tuple(sorted(set(grid)))
        return out

    def engines(
        self, blocks: Any, k: int, mode: str, base_dir: Path | None = None
    ) -> tuple[BuildSetting, ...]:
        locate = self.locator.engine_key
        if blocks is None:
            raise self.fail(
                None, f"no [[engine]] tables: nothing to run (engines: {', '.join(engine_names())})"
            )
        if isinstance(blocks, dict):
            raise self.fail(
                self.locator.table("engine"),
                "write each engine as an [[engine]] table (double brackets)",
            )
        if not isinstance(blocks, list) or not blocks:
            raise self.fail(None, "'engine' must be a list of [[engine]] tables")
        builds: dict[str, tuple[str, dict, dict, dict[str, QuerySetting]]] = {}
        first_block: dict[str, int] = {}  # run id -> the block that gave it
        for position, block in enumerate(blocks):
            if not isinstance(block, dict):
                raise self.fail(locate(position, "name"), "each [[engine]] must be a table")
            for key in block:
                if key not in ENGINE_KEYS:
                    raise self.fail(
                        locate(position, key),
                        f"unknown [[engine]] key {key!r} (known: {', '.join(ENGINE_KEYS)})",
                    )
            name = block.get("name")
            if not isinstance(name, str):
                raise self.fail(
                    locate(position, "name"),
                    f'[[engine]] needs name = "<engine>" (engines: {", ".join(engine_names())})',
                )
            try:
                engine_class = get_engine(name)
            except ParamError:
                raise self.fail(
                    locate(position, "name"),
                    f"unknown engine {name!r} (known: {', '.join(engine_names())})",
                ) from None
            build_grid = self.grid(
                position, name, "build", block.get("build"), engine_class.build_specs
            )
            policies = self.policy_files(position, name, block.get("policy"), k, base_dir)
            adapting = self.adapt_table(position, name, block.get("adapt"), mode)
            fitted: set[int] = set()
            for given in build_grid:
                resolved = {p: spec.default for p, spec in engine_class.build_specs.items()}
                resolved.update(given)
                query_specs = engine_class.query_specs(resolved)  # may depend on the build
                query_grid = self.grid(position, name, "query", block.get("query"), query_specs)
                key = json.dumps([name, sorted(resolved.items())], default=str)
                entry = builds.setdefault(key, (name, given, resolved, {}))
                for query_given in query_grid:
                    query = {p: spec.default for p, spec in query_specs.items()}
                    query.update(query_given)
                    run_id = make_run_id(name, resolved, query, k, mode)
                    earlier = first_block.setdefault(run_id, position)
                    if earlier != position:
                        raise self.fail(
                            locate(position, "name"),
                            f"[[engine]] block {position + 1} ({name}) repeats a setting of "
                            f"block {earlier + 1}: "
                            f"{_setting_text(resolved, query)}; remove the duplicate "
                            "(each setting is measured once)",
                        )
                    entry[3].setdefault(run_id, QuerySetting(run_id=run_id, params=query))
                if not policies and adapting is None:
                    continue
                effort = engine_class.effort_param_for(resolved)
                if effort is None:
                    key = "adapt" if adapting is not None else "policy"
                    raise self.fail(
                        locate(position, key),
                        f"engine {name!r} has no per-query effort parameter (it "
                        f"searches exactly): {key} needs an engine with one",
                    )
                settings = []
                for number, (policy, setting) in enumerate(policies):
                    if policy_fits_build(policy, name, resolved):
                        fitted.add(number)
                        settings.append(setting)
                if adapting is not None:
                    settings += adapt_settings(
                        adapting,
                        [
                            {**{p: spec.default for p, spec in query_specs.items()}, **q}.get(
                                effort
                            )
                            for q in query_grid
                        ],
                    )
                for setting in settings:
                    run_id = make_run_id(name, resolved, setting.key(), k, mode)
                    earlier = first_block.setdefault(run_id, position)
                    if earlier != position:
                        raise self.fail(
                            locate(position, "name"),
                            f"[[engine]] block {position + 1} ({name}) repeats a "
                            f"policy of block {earlier + 1}: "
                            f"{_setting_text(resolved, setting.describe())}",
                        )
                    entry[3].setdefault(
                        run_id,
                        QuerySetting(run_id=run_id, params=setting.describe(), policy=setting),
                    )
            for number, (policy, setting) in enumerate(policies):
                if number not in fitted:
                    raise self.fail(
                        locate(position, "policy"),
                        f"engine {name!r}: {setting.name} was trained for "
                        f"{describe_policy_index(policy)}, not an index this "
                        "[[engine]] builds",
                    )
        return tuple(
            BuildSetting(
                engine=name, params=given, resolved=resolved, queries=tuple(queries.values())
            )
            for name, given, resolved, queries in builds.values()
        )


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


def _setting_text(build: dict[str, Any], query: dict[str, Any]) -> str:
    """``M=16 ef_construction=200 | ef=40`` (build | query params)."""

    def text(params: dict[str, Any]) -> str:
        return " ".join(f"{name}={value}" for name, value in params.items()) or "(defaults)"

    return f"{text(build)} | {text(query)}"


def parse_sweep(text: str, source: str = "sweep.toml", base_dir: Path | None = None) -> SweepSpec:
    """Parse and validate sweep TOML ``text``; ``source`` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{source}: invalid TOML: {exc}") from None
    reader = _Reader(source, text)
    for key in document:
        if key not in ("bench", "engine"):
            line = reader.locator.table(key) or reader.locator.table_key("", key)
            raise reader.fail(line, f"unknown top-level key {key!r} (use [bench] and [[engine]])")
    bench = reader.bench(document.get("bench"))
    builds = reader.engines(document.get("engine"), bench["k"], bench["mode"], base_dir)
    return SweepSpec(
        source=source,
        text=text,
        dataset=bench["dataset"],
        k=bench["k"],
        runs=bench["runs"],
        mode=bench["mode"],
        builds=builds,
        timeout=bench.get("timeout"),
        queries=bench.get("queries"),
        groundtruth=bench.get("groundtruth"),
        metric=bench.get("metric"),
        base_dir=base_dir,
        recall_rule=bench["recall"],
        qps_tolerance=bench.get("qps_tolerance", DEFAULT_QPS_TOLERANCE),
    )


def load_sweep(path: str | Path | None) -> SweepSpec:
    """Read a sweep file (None: the built-in default sweep)."""
    if path is None:
        return parse_sweep(DEFAULT_SWEEP, DEFAULT_SWEEP_NAME)
    file_path = Path(path)
    if not file_path.is_file():
        problem = "is a folder" if file_path.is_dir() else "no such file"
        raise SweepError(f"{path}: {problem} (expected a sweep .toml file)")
    try:
        text = file_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not a UTF-8 text file") from None
    return parse_sweep(text, str(path), base_dir=file_path.resolve().parent)
