"""The typed report of a sweep (:func:`annkit.bench.report.build_report`): what the CLI
renders and, through each class's ``to_dict`` (derived from its fields), what ``annkit
report --json`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annkit.types import json_fields


class _Json:
    """``to_dict``: the JSON form, field by field (see :func:`annkit.types.json_fields`)."""

    def to_dict(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass(frozen=True)
class WorkPercentiles(_Json):
    """A run's cost tail: distance computations per query at the 50th / 95th / 99th
    percentile."""

    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class RunSummary(_Json):
    """One run as a report shows it: its setting name, recall, QPS and its spread over the
    timed runs, cost (distance computations per query, mean and tail), build and index size,
    and its speed-up over exact search (None without a reference)."""

    run_id: str
    engine: str
    series: str
    setting: str
    build_params: dict[str, Any]
    query_params: dict[str, Any]
    recall: float | None
    qps: float | None
    latency_ms: dict[str, float | None]
    qps_min: float | None
    qps_median: float | None
    qps_max: float | None
    runs: int | None
    build_seconds: float | None
    index_bytes: int | None
    distance_computations: float | None
    work: WorkPercentiles | None
    speedup_vs_flat: float | None
    node: str | None


@dataclass(frozen=True)
class SeriesEntry(_Json):
    """One series (an engine's uniform settings, or one index's policies of one kind): its
    engine, policy kind (None: uniform), how many runs and usable runs, its Pareto front."""

    engine: str
    policy: str | None
    runs: int
    ok: int
    pareto: tuple[RunSummary, ...]


@dataclass(frozen=True)
class Headline(_Json):
    """The best run at recall >= ``threshold``: overall and per series (None: not reached)."""

    threshold: float
    best: RunSummary | None
    engines: dict[str, RunSummary | None]


@dataclass(frozen=True)
class RunBrief(_Json):
    """A run's recall (mean, p5 per query, tail band), cost and QPS."""

    run_id: str
    setting: str
    recall: float | None
    p5_recall: float | None
    tail_recall: float | None
    distance_computations: float | None
    qps: float | None


@dataclass(frozen=True)
class PolicyRow:
    """A policy run beside the cheapest uniform setting of its index that reaches its recall
    (None when none does), with the policy's work and QPS as ratios of that setting's."""

    series: str
    run: RunBrief
    uniform: RunBrief | None
    work_ratio: float | None = None
    qps_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{series, <the run's brief>, uniform, work_ratio, qps_ratio}``."""
        return {
            "series": self.series,
            **self.run.to_dict(),
            "uniform": None if self.uniform is None else self.uniform.to_dict(),
            "work_ratio": self.work_ratio,
            "qps_ratio": self.qps_ratio,
        }


@dataclass(frozen=True)
class ConcurrencyLevel(_Json):
    """One setting at one concurrency level (clients, or search threads)."""

    level: int
    run_id: str
    qps: float | None
    recall: float | None
    latency_ms: dict[str, float | None]


@dataclass(frozen=True)
class ConcurrencyRow(_Json):
    """A setting measured at more than one level, lowest first; ``scaling``: QPS at the
    highest level over QPS at the lowest."""

    engine: str
    setting: str
    by: str
    levels: tuple[ConcurrencyLevel, ...]
    scaling: float


@dataclass(frozen=True)
class FailedRun(_Json):
    """A run that failed or timed out, and why."""

    run_id: str
    engine: str
    setting: str
    build_params: dict[str, Any]
    query_params: dict[str, Any]
    status: str
    error: str | None


@dataclass(frozen=True)
class RunCounts(_Json):
    """How many runs a sweep holds, in all and by status."""

    total: int
    ok: int
    failed: int
    timeout: int


@dataclass(frozen=True)
class BandChoice(_Json):
    """In one selectivity band, one index's fastest filter strategy at recall >= the
    threshold: the setting, its recall on the band, and its cost there (distance
    computations per query on the band where counted, else the run's QPS)."""

    band: str
    series: str
    strategy: str | None
    setting: str | None
    recall: float | None
    work: float | None
    qps: float | None


@dataclass(frozen=True)
class SweepReport(_Json):
    """What a sweep found: its dataset, k and mode, the runs by status, the exact
    reference's QPS, each series' Pareto front, the best runs at recall thresholds, policy
    runs beside uniform settings, concurrency scaling and the failures; on a query slice
    (``slice``, holding ``slice_queries`` queries) when not ``all``."""

    results_dir: str | None
    dataset: str | None
    metric: str | None
    k: int | None
    mode: str | None
    runs: RunCounts
    flat_qps: float | None
    engines: dict[str, SeriesEntry]
    headlines: tuple[Headline, ...]
    policies: tuple[PolicyRow, ...] = ()
    concurrency: tuple[ConcurrencyRow, ...] = ()
    failed: tuple[FailedRun, ...] = ()
    #: per selectivity band and index, the fastest filter strategy at recall >= 0.95
    filter_choices: tuple[BandChoice, ...] = ()
    slice: str = "all"
    slice_queries: int | None = None
