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
label = "hnsw (ours)"                   # optional: the series name of the entry's indexes
```

Scalars or lists; lists expand to the cartesian product. Every value is checked against the
engine registry's :class:`~annkit.engines.base.ParamSpec` before anything runs, and every
error names the file, the line and the key.

``policy`` and ``adapt`` add per-query effort policies beside the uniform query settings
(:class:`PolicySetting`): each policy file is measured on the build it was trained for,
and ``adapt`` (keys ``target``, ``kinds``, ``folds``, ``grid``, ``seed``, ``centroids``)
trains cross-fitted policies on each build of the entry, one run per kind and target.

Every index (engine + resolved build params) is one series, named by its label: the entry's
``label`` (for an entry of several builds, followed by the params telling them apart), else
:func:`annkit.engines.labels.index_labels` (the engine and the build params that differ
among that engine's builds in the sweep: ``hnsw M=16``, ``faiss HNSW32,Flat``; the engine
alone when it has one build). Two indexes never share a label.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from annkit.bench.errors import SweepError
from annkit.bench.policies import (
    PolicySetting,
    check_policy_k,
    describe_policy_index,
    policy_dataset_problem,
    policy_fits_build,
    read_policy_file,
)
from annkit.measure import DEFAULT_QPS_TOLERANCE, Measure

#: how recall@k is scored (see annkit.metrics.RECALL_RULES)
RECALL_RULE_NAMES = ("tolerant", "strict")

__all__ = [
    "DEFAULT_SWEEP",
    "DEFAULT_SWEEP_NAME",
    "RECALL_RULE_NAMES",
    "BuildSetting",
    "PolicySetting",
    "QuerySetting",
    "SweepError",
    "SweepSpec",
    "load_sweep",
    "make_run_id",
    "parse_sweep",
    "policy_dataset_problem",
]


#: the query parameter under which a sweep listing several filter strategies keeps each
#: setting's strategy (taken out before the engine sees its query params)
FILTER_STRATEGY_PARAM = "filter_strategy"


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
    defaults (None for data-derived ones); ``resolved`` identifies the index, ``label``
    names it.
    """

    engine: str
    params: dict[str, Any]
    resolved: dict[str, Any]
    queries: tuple[QuerySetting, ...]
    #: the index's series name in reports, plots and records: the entry's ``label`` (with
    #: the params telling its builds apart), else annkit.engines.labels.index_labels'
    label: str = ""
    #: True when ``label`` comes from the sweep file's ``label =``
    labelled: bool = False


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
    #: how filtered queries are searched (the first listed; a sweep listing several
    #: measures each as its own query setting, see FILTER_STRATEGY_PARAM)
    filter_strategy: str = "auto"

    @property
    def measure(self) -> Measure:
        """How every query setting of the sweep is measured (k, mode, runs, QPS tolerance,
        recall rule; one thread, one caller)."""
        return Measure(
            k=self.k,
            mode=self.mode,
            runs=self.runs,
            qps_tolerance=self.qps_tolerance,
            recall_rule=self.recall_rule,
            filter_strategy=self.filter_strategy,
        )

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
        if any(build.labelled for build in self.builds):
            # records carry their label: a relabelled sweep is another sweep
            identity["labels"] = sorted(build.label for build in self.builds)
        return identity

    def labels(self) -> dict[str, str]:
        """The series label of every run by run_id (see :attr:`BuildSetting.label`)."""
        return {query.run_id: build.label for build in self.builds for query in build.queries}


def make_run_id(engine: str, build_params: dict, query_params: dict, k: int, mode: str) -> str:
    """A stable key of one (build, query) setting: ``<engine>-<12 hex digits>``."""
    key = json.dumps(
        [engine, sorted(build_params.items()), sorted(query_params.items()), int(k), mode],
        sort_keys=True,
        default=str,
    )
    return f"{engine}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


# the reader builds SweepSpecs: imported last (it imports this module's classes)
from annkit.bench.sweep_reader import (  # noqa: E402
    DEFAULT_SWEEP,
    DEFAULT_SWEEP_NAME,
    load_sweep,
    parse_sweep,
)
