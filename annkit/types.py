"""Typed values that flow between annkit's modules."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from annkit.labels import Labels

Metric = Literal["euclidean", "angular", "ip"]
METRICS: tuple[str, ...] = ("euclidean", "angular", "ip")
METRIC_ALIASES: dict[str, str] = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "angular": "angular",
    "cosine": "angular",
    "ip": "ip",
    "dot": "ip",
    "inner_product": "ip",
}


def normalize_metric(name: str) -> str:
    """Map a metric name or alias (``cosine``, ``l2``, ``dot``...) to euclidean/angular/ip."""
    from annkit.errors import InputError

    key = str(name).strip().lower()
    if key not in METRIC_ALIASES:
        raise InputError(
            f"unknown metric {name!r}: use one of euclidean, angular (cosine), ip (dot)"
        )
    return METRIC_ALIASES[key]


@dataclass(frozen=True)
class Dataset:
    """Base vectors, queries and (optionally) their exact neighbours and query weights.

    base: (n, d) float32; queries: (nq, d) float32; neighbors: (nq, gk) int64 exact
    neighbour ids best first, or None; weights: (nq,) float64 query frequency, or None.
    """

    name: str
    metric: str
    base: np.ndarray
    queries: np.ndarray
    neighbors: np.ndarray | None = None
    weights: np.ndarray | None = None
    source: str = ""
    #: the files the base vectors and the queries came from (texts are read from them);
    #: "" when ``source`` is that one file
    base_file: str = ""
    query_file: str = ""
    #: the queries' row numbers in ``query_file`` when they are a sample of it (--max-queries)
    query_rows: np.ndarray | None = None
    #: labels of the base vectors and of the queries (a query's filter is the AND of its
    #: labels; a query without labels is unfiltered), or None: see annkit.labels
    base_labels: Labels | None = None
    query_labels: Labels | None = None

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    @property
    def n_base(self) -> int:
        return int(self.base.shape[0])

    @property
    def n_queries(self) -> int:
        return int(self.queries.shape[0])

    @property
    def gt_depth(self) -> int:
        return 0 if self.neighbors is None else int(self.neighbors.shape[1])


@dataclass(frozen=True)
class SearchResult:
    """Result of a batch search: ids (nq, k) int64 padded with -1, distances (nq, k) float32
    in the metric's convention (padded with +inf), and distance_computations (nq,) int64: the
    exact number of distance computations each query did, or None where the library cannot
    count them (never an estimate)."""

    ids: np.ndarray
    distances: np.ndarray
    distance_computations: np.ndarray | None = None


@dataclass(frozen=True)
class GroundTruth:
    """Exact neighbours: ids (nq, k) int64 best first and distances (nq, k) float64."""

    ids: np.ndarray
    distances: np.ndarray
    metric: str


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_floats(value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"expected a list of numbers, got {type(value).__name__}")
    return [float(item) for item in value]


def qps_spread(qps_runs: Any) -> tuple[float | None, float | None, float | None]:
    """(min, median, max) of the QPS of each timed run; Nones when there are none."""
    values = [float(value) for value in (qps_runs or ())]
    if not values:
        return None, None, None
    return min(values), float(np.median(values)), max(values)


#: what an engine's distance count counts unless it says otherwise (Engine.work_unit)
DEFAULT_WORK_UNIT = "distance computations"


def work_marker(unit: str | None) -> str:
    """The short marker a table puts after a count of ``unit`` (``codes`` for compressed
    code comparisons); empty for plain distance computations or an unknown unit."""
    if not unit or unit == DEFAULT_WORK_UNIT:
        return ""
    return "codes" if "code" in unit else unit


def work_axis_label(units: Sequence[str | None]) -> str:
    """The name of a work axis or column over records counting ``units`` (None: an older
    record, read as plain distance computations): the one unit when they share it, else
    both named, e.g. ``distance computations / PQ code distances``."""
    named = sorted({unit or DEFAULT_WORK_UNIT for unit in units}) or [DEFAULT_WORK_UNIT]
    return " / ".join(named)


@dataclass(frozen=True)
class WorkSummary:
    """The cost tail: distance computations per query over a set of queries (all of a run's,
    or one slice's): their mean and the 50th / 95th / 99th percentiles (linear
    interpolation). Only for engines that count; a value is None only when read from a
    record that did not hold it."""

    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, counts: np.ndarray) -> WorkSummary | None:
        """Summary of per-query counts ``(n,)``; None when there are none."""
        values = np.asarray(counts, dtype=np.float64).reshape(-1)
        if values.size == 0:
            return None
        p50, p95, p99 = (float(v) for v in np.percentile(values, [50.0, 95.0, 99.0]))
        return cls(mean=float(values.mean()), p50=p50, p95=p95, p99=p99)

    def to_dict(self) -> dict[str, Any]:
        """The ``work`` object of a tail summary or slice entry."""
        return json_fields(self)

    @classmethod
    def from_dict(cls, data: Any) -> WorkSummary | None:
        """Read :meth:`to_dict`'s form; None for None or anything that is not an object."""
        if not isinstance(data, Mapping):
            return None
        return cls(**read_fields(cls, data))


@dataclass(frozen=True)
class TailSummary:
    """Percentiles and shares of one run's per-query recall@k (values in [0, 1]).

    mean, p1, p5, p10 (linear-interpolated percentiles), share_below_0_5 (share of queries
    with recall < 0.5), share_zero (recall == 0), queries (how many). A value is None only
    when read from a record that did not hold it. ``work``: the run's distance computations
    per query (mean, p50 / p95 / p99), None where the engine does not count."""

    mean: float | None
    p1: float | None
    p5: float | None
    p10: float | None
    share_below_0_5: float | None
    share_zero: float | None
    queries: int | None
    work: WorkSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``tail`` object of an evaluation / runs.jsonl record."""
        return json_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TailSummary:
        """Read :meth:`to_dict`'s form (missing keys become None)."""
        return cls(**read_fields(cls, data))


@dataclass(frozen=True)
class SliceRecall:
    """Recall@k on one query slice: how many queries, their mean recall and its 5th
    percentile (None only when read from a record that did not hold it), and the slice's
    cost tail ``work`` (distance computations per query: mean, p50 / p95 / p99; None where
    the engine does not count)."""

    queries: int | None
    recall: float | None
    p5_recall: float | None
    work: WorkSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """One entry of the ``slices`` object of an evaluation / runs.jsonl record."""
        return json_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SliceRecall:
        """Read :meth:`to_dict`'s form (missing keys become None)."""
        return cls(**read_fields(cls, data))


def slices_to_dict(slices: Mapping[str, SliceRecall]) -> dict[str, dict[str, Any]]:
    """The JSON ``slices`` object: slice name -> {queries, recall, p5_recall, work}."""
    return {name: entry.to_dict() for name, entry in slices.items()}


def slices_from_dict(data: Mapping[str, Any]) -> dict[str, SliceRecall]:
    """Inverse of :func:`slices_to_dict` (entries that are not objects are skipped)."""
    return {
        str(name): SliceRecall.from_dict(entry)
        for name, entry in data.items()
        if isinstance(entry, Mapping)
    }


@dataclass(frozen=True)
class QueryProfile:
    """What is known about each query: band, weights, hardness values and slice masks.

    masks: slice name -> (nq,) bool; hardness: measure -> (nq,) float; bands: (nq,) str or
    None (no weights); weights: (nq,) float64 or None."""

    masks: dict[str, np.ndarray]
    hardness: dict[str, np.ndarray] = field(default_factory=dict)
    bands: np.ndarray | None = None
    weights: np.ndarray | None = None

    @property
    def slice_names(self) -> list[str]:
        return list(self.masks)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value or {})


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _tail(value: Any) -> TailSummary | None:
    return TailSummary.from_dict(value) if isinstance(value, Mapping) else None


def _slices(value: Any) -> dict[str, SliceRecall] | None:
    return slices_from_dict(value) if isinstance(value, Mapping) else None


#: how a JSON value is read into a field, by the field's annotation (fields not listed here
#: take the value as it is; ``str`` / ``int`` fields read a missing value as their default)
_READERS: dict[str, Callable[[Any], Any]] = {
    "float | None": _optional_float,
    "int | None": _optional_int,
    "dict[str, Any]": _mapping,
    "dict[str, float | None]": _object,
    "TailSummary | None": _tail,
    "dict[str, SliceRecall] | None": _slices,
    "Sequence[float] | None": _optional_floats,
    "WorkSummary | None": lambda value: WorkSummary.from_dict(value),
    "dict[str, float] | None": lambda value: (
        {str(key): float(item) for key, item in value.items()}
        if isinstance(value, Mapping)
        else None
    ),
}

#: field metadata of a value kept in memory only (never written to JSON)
IN_MEMORY: Mapping[str, bool] = {"json": False}


def _json_value(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    return value


def json_fields(instance: Any) -> dict[str, Any]:
    """The JSON form of a dataclass: each field not marked :data:`IN_MEMORY`, in field
    order (nested summaries by their ``to_dict``, tuples as lists)."""
    return {
        item.name: _json_value(getattr(instance, item.name))
        for item in fields(instance)
        if item.metadata.get("json", True)
    }


def read_fields(cls: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``cls`` read from its JSON form ``data`` (see :data:`_READERS`;
    a field's ``read`` metadata overrides). TypeError / ValueError for a wrong value."""
    values: dict[str, Any] = {}
    for item in fields(cls):
        if not item.metadata.get("json", True) or not item.init:
            continue
        value: Any = data.get(item.name)
        read = item.metadata.get("read") or _READERS.get(str(item.type))
        if read is not None:
            values[item.name] = read(value)
        elif str(item.type) in ("str", "int") and not value and item.default is not MISSING:
            values[item.name] = item.default
        elif str(item.type) == "int":
            values[item.name] = int(value)
        elif str(item.type) == "str":
            values[item.name] = str(value)
        else:
            values[item.name] = value
    return values


def _optional_label(value: Any) -> str | None:
    """A record's label: a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _engine_name(value: Any) -> str:
    return str(value or "?")


@dataclass(frozen=True)
class PolicyRun:
    """What makes a run a per-query effort policy run: the policy ``kind`` (learned,
    threshold), its ``source`` ("adapt": trained by the sweep, cross-fitted; else the policy
    file as written), the mean recall ``target`` it was calibrated for and (adapt) its
    ``folds``. A record keeps these in its query params (keys ``policy``, ``source``,
    ``target``, ``folds``), so the runs.jsonl form is the same as before it existed."""

    kind: str
    source: str | None = None
    target: float | None = None
    folds: int | None = None

    @classmethod
    def of(cls, query_params: Mapping[str, Any]) -> PolicyRun | None:
        """The policy run that ``query_params`` describe; None for a uniform setting."""
        kind = query_params.get("policy")
        if not isinstance(kind, str) or not kind:
            return None
        target, folds = query_params.get("target"), query_params.get("folds")
        source = query_params.get("source")
        return cls(
            kind=kind,
            source=None if source is None else str(source),
            target=float(target) if isinstance(target, int | float) else None,
            folds=int(folds) if isinstance(folds, int) and folds else None,
        )


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one (engine, build params, query params) setting measured: the fields an
    :class:`Evaluation` and a :class:`RunRecord` share, each declared once here, in the JSON
    order of an evaluation and a runs.jsonl record (``to_dict`` / ``from_dict`` walk them).
    None = not measured (a failed run, or a key an older file lacked)."""

    engine: str = field(metadata={"read": _engine_name})
    build_params: dict[str, Any] = field(default_factory=dict)
    query_params: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    dataset: str | None = None
    k: int | None = None
    mode: str | None = None
    queries: int | None = None
    recall: float | None = None
    qps: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    build_seconds: float | None = None
    index_bytes: int | None = None
    search_seconds: float | None = None
    runs: int | None = None
    duplicate_ids: int | None = None
    tail: TailSummary | None = None
    slices: dict[str, SliceRecall] | None = None
    weighted_recall: float | None = None
    distance_computations: float | None = None
    #: QPS of every timed run, in order (their min / median / max: ``qps_spread``)
    qps_runs: Sequence[float] | None = None
    timed_queries: int | None = None
    #: single mode, one caller: the 95% confidence interval of the QPS from the sampled
    #: single-query pass (annkit.timing.qps_interval); None for other modes and older records
    qps_low: float | None = None
    qps_high: float | None = None
    max_runs: int | None = None
    qps_tolerance: float | None = None
    #: threads of the engine's own batch search (1 = single-threaded)
    search_threads: int = 1
    #: concurrent single-query clients of the run (None = one caller, no concurrency)
    clients: int | None = None
    #: how recall was scored: "tolerant" (ann-benchmarks) or "strict" (id overlap); records
    #: written before it existed read as "tolerant"
    recall_rule: str = "tolerant"
    #: the filtered-search strategy asked for (auto, native, post, subset); None for queries
    #: without filters
    filter_strategy: str | None = None
    #: queries whose result held fewer valid, passing ids than min(k, passing): None unfiltered
    short_results: int | None = None
    #: per selectivity band, how many queries each strategy answered (auto's choices)
    filter_plan: dict[str, dict[str, int]] | None = None
    #: the machine's 1-minute load average when the timed passes began
    load_average: float | None = None
    #: the process's CPU seconds over wall seconds during the timed passes (its descendants,
    #: e.g. a database server, included): about 1.0 per busy thread
    cpu_per_wall: float | None = None
    #: why the timing may not have had its cores (annkit.timing.load_flag): "starved: CPU
    #: 0.6 of 2" or "busy machine: load 3.4 on 2 cores"; None when it had them
    starved: str | None = None
    #: recall at other depths, "a@b" -> the share of the true top-a found among the first b
    #: returned (mean over queries); None when not asked for (Measure.depths)
    recall_at: dict[str, float] | None = None
    #: ann-benchmarks' relative distance error ("rel" - 1): the summed exact distances of
    #: the returned neighbours over those of the true ones, minus 1 (0 = exact); None for
    #: inner product (signed distances) and filtered queries
    relative_distance_error: float | None = None
    #: what ``distance_computations`` counts (the engine says: Engine.work_unit), e.g.
    #: "distance computations" or "PQ code distances"; None when nothing was counted
    work_unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field (None = not measured), per-query arrays left out."""
        return json_fields(self)

    @property
    def policy(self) -> PolicyRun | None:
        """The per-query effort policy this setting ran (None: a uniform setting)."""
        return PolicyRun.of(self.query_params)


@dataclass(frozen=True, kw_only=True)
class Evaluation(Measurement):
    """Everything measured for one (index, query params) setting on one query set.

    The fields it shares with a run record are :class:`Measurement`'s; an evaluation always
    holds those it measures (narrowed here to their non-None types).

    ``per_query_recall`` (nq,) and ``per_query_distance_computations`` (nq,) int64 (None when
    the engine cannot count) come from the timed best run; ``distance_computations`` is their
    mean per query. ``tail`` / ``slices`` / ``weighted_recall`` summarise the per-query recall
    (slices empty and weighted recall None without a profile or weights).

    Timing: ``qps`` is the fastest run's; ``qps_runs`` the QPS of every timed run in order
    (``runs`` of them, at most ``max_runs``: timing stops once the two fastest agree within
    ``qps_tolerance``); ``timed_queries`` how many queries each run timed. Single mode with
    one caller times one pass over a seeded sample of ``timed_queries`` queries, grown until
    the QPS confidence interval (``qps_low``, ``qps_high``) is within ``qps_tolerance``;
    recall and work are on all queries, from one untimed batch search."""

    build_params: dict
    query_params: dict
    metric: str
    k: int
    mode: str
    queries: int
    recall: float
    qps: float
    latency_ms: dict
    build_seconds: float
    index_bytes: int
    search_seconds: float
    runs: int
    dataset: str = ""
    duplicate_ids: int = 0
    slices: dict[str, SliceRecall] = field(default_factory=dict)
    qps_runs: tuple[float, ...] = ()
    per_query_recall: np.ndarray = field(repr=False, metadata=IN_MEMORY)
    per_query_distance_computations: np.ndarray | None = field(
        default=None, repr=False, metadata=IN_MEMORY
    )
    profile: QueryProfile | None = field(default=None, repr=False, metadata=IN_MEMORY)
    #: the ids (nq, k) int64 the scored run returned (-1 = none), or None
    returned_ids: np.ndarray | None = field(default=None, repr=False, metadata=IN_MEMORY)
    #: one-line notices for the user (e.g. ground truth recomputed), shown on stderr
    notices: tuple[str, ...] = field(default=(), repr=False, metadata=IN_MEMORY)

    @property
    def qps_min(self) -> float | None:
        return qps_spread(self.qps_runs)[0]

    @property
    def qps_median(self) -> float | None:
        return qps_spread(self.qps_runs)[1]

    @property
    def qps_max(self) -> float | None:
        return qps_spread(self.qps_runs)[2]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (per-query arrays and the profile left out), with the QPS
        spread (``qps_min`` / ``qps_median`` / ``qps_max``) before ``qps_runs``."""
        out: dict[str, Any] = {}
        for name, value in json_fields(self).items():
            if name == "qps_runs":
                out.update(qps_min=self.qps_min, qps_median=self.qps_median, qps_max=self.qps_max)
            out[name] = value
        return out


#: run record statuses: measured, failed (an error), timed out
RUN_STATUSES: tuple[str, ...] = ("ok", "failed", "timeout")

#: the latency object of a run that measured none
NO_LATENCY: dict[str, float | None] = {"p50": None, "p95": None, "p99": None, "mean": None}


@dataclass(frozen=True, kw_only=True)
class RunRecord(Measurement):
    """One line of a sweep's ``runs.jsonl``: one (engine, build, query) setting's outcome.

    An ``ok`` record holds an :class:`Evaluation`'s fields (:class:`Measurement`) plus where
    the index came from (``cached``, ``build_threads``); a failed or timed-out one holds the
    setting, ``error`` and None for what was not measured. Keys missing from an older file
    read as None (``qps_min`` / ``qps_median`` / ``qps_max`` / ``qps_runs``: the QPS spread
    over the timed runs; ``timed_queries``, ``max_runs``, ``qps_tolerance``: how it was
    timed). Build records with :meth:`from_evaluation` (measured) or :meth:`failed`."""

    run_id: str
    status: str
    cached: bool | None = None
    build_threads: int | None = None
    error: str | None = None
    finished_at: str | None = None
    qps_min: float | None = None
    qps_median: float | None = None
    qps_max: float | None = None
    #: where a distributed sweep measured the run (None: locally) and the QPS of exact
    #: ``flat`` search measured there at the same concurrency (None: not measured there)
    node: str | None = None
    reference_qps: float | None = None
    #: the series name of the run's index (the sweep entry's ``label =``, else the default
    #: annkit.engines.labels.index_labels gives); None in records written before labels
    label: str | None = field(default=None, metadata={"read": _optional_label})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Read a runs.jsonl record; InputError when it is not one (no run_id / status, or a
        field of the wrong kind)."""
        from annkit.errors import InputError

        run_id, status = data.get("run_id"), data.get("status")
        if not isinstance(run_id, str) or not isinstance(status, str):
            raise InputError("not an annkit bench record (no run_id or status)")
        try:
            return cls(**read_fields(cls, data))
        except (TypeError, ValueError) as exc:
            raise InputError(f"record {run_id}: a field has the wrong type ({exc})") from None

    @classmethod
    def coerce(cls, value: RunRecord | Mapping[str, Any]) -> RunRecord:
        """``value`` itself when a RunRecord, else read from its runs.jsonl form."""
        return value if isinstance(value, RunRecord) else cls.from_dict(value)

    @classmethod
    def from_evaluation(
        cls,
        evaluation: Evaluation,
        run_id: str,
        *,
        status: str = "ok",
        cached: bool | None = None,
        build_threads: int | None = None,
        error: str | None = None,
        finished_at: str | None = None,
    ) -> RunRecord:
        """The record of a measured run."""
        shared = {
            item.name: getattr(evaluation, item.name)
            for item in fields(Measurement)
            if item.name not in ("build_params", "query_params", "latency_ms", "slices", "qps_runs")
        }
        return cls(
            **shared,
            build_params=dict(evaluation.build_params),
            query_params=dict(evaluation.query_params),
            latency_ms=dict(evaluation.latency_ms),
            slices=dict(evaluation.slices),
            qps_runs=list(evaluation.qps_runs),
            run_id=run_id,
            status=status,
            cached=cached,
            build_threads=build_threads,
            error=error,
            finished_at=finished_at,
            qps_min=evaluation.qps_min,
            qps_median=evaluation.qps_median,
            qps_max=evaluation.qps_max,
        )

    @classmethod
    def failed(
        cls,
        run_id: str,
        status: str,
        error: str,
        *,
        engine: str,
        build_params: Mapping[str, Any],
        query_params: Mapping[str, Any],
        measured_on: Mapping[str, Any],
        cached: bool | None = None,
        build_seconds: float | None = None,
        finished_at: str | None = None,
    ) -> RunRecord:
        """The record of a setting that was not measured (status "failed" or "timeout"):
        the setting, how it was to be measured (``measured_on``: fields of
        :class:`Measurement` such as metric, dataset, queries, k, mode, runs, recall_rule,
        search_threads, clients), the ``error`` and None for every measured value."""
        return cls(
            run_id=run_id,
            status=status,
            error=error,
            engine=engine,
            build_params=dict(build_params),
            query_params=dict(query_params),
            latency_ms=dict(NO_LATENCY),
            cached=cached,
            build_seconds=build_seconds,
            finished_at=finished_at,
            **measured_on,
        )

    def to_dict(self) -> dict[str, Any]:
        """The runs.jsonl form (every key present; None = not measured)."""
        return json_fields(self)

    @property
    def usable(self) -> bool:
        """An ok record with a finite recall and a positive, finite QPS."""
        return (
            self.status == "ok"
            and self.recall is not None
            and self.qps is not None
            and math.isfinite(self.recall)
            and math.isfinite(self.qps)
            and self.qps > 0
        )

    def slice_recall(self, name: str) -> float | None:
        """Mean recall@k on the slice ``name``, or None when the record has none."""
        entry = (self.slices or {}).get(name)
        if entry is None or entry.recall is None or not math.isfinite(entry.recall):
            return None
        return entry.recall
