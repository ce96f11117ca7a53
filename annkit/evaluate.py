"""THE evaluation path: search a loaded index, time it, and score it against exact truth.

``annkit evaluate``, the benchmark worker, tuning and adaptive policies all end in
:func:`score`, so one setting gives the same recall wherever it is measured: a uniform
setting through :func:`measure_setting` (or its keyword form :func:`evaluate`), a per-query
effort policy through :func:`annkit.adaptive.evaluate.evaluate_policy`. How a setting is
measured is one :class:`~annkit.measure.Measure`; the exact truth is one :class:`Truth`; the
timing loops are :mod:`annkit.timing`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from annkit.bundle import Bundle, fingerprint_vectors
from annkit.engines.base import Engine
from annkit.errors import InputError
from annkit.filtered import check_label_sizes, compute_filtered_ground_truth
from annkit.filtering import (
    SELECTIVITY_BAND_NAMES,
    FilteredSearch,
    Workload,
    filtered_recall,
)
from annkit.groundtruth import compute_ground_truth
from annkit.longtail import DEFAULT_CUTS
from annkit.measure import (
    DEFAULT_QPS_TOLERANCE,
    DEFAULT_RUNS,
    MODES,
    Measure,
    check_concurrency,
    check_recall_rule,
    depth_name,
)
from annkit.metrics import (
    DEFAULT_RECALL_RULE,
    EPSILON,
    duplicate_count,
    exact_distances,
    latency_percentiles,
    recall_at_depth,
    recall_per_query,
    relative_distance_error,
    strict_recall_per_query,
)
from annkit.parallel import run_interruptibly
from annkit.slices import build_profile, summarize
from annkit.timing import (
    MAX_TIMED_QUERIES,
    MIN_TIMED_QUERIES,
    QPS_CONFIDENCE,
    TIMING_SAMPLE,
    TIMING_SEED,
    RunOutcome,
    SampledTiming,
    Search,
    TimedRuns,
    paused_gc,
    run_batch,
    run_clients,
    run_single,
    time_runs,
    time_sample,
    timing_is_stable,
    timing_order,
    timing_sample,
)
from annkit.types import Dataset, Evaluation, GroundTruth, QueryProfile, SearchResult

__all__ = [
    "DEFAULT_QPS_TOLERANCE",
    "DEFAULT_RUNS",
    "MAX_TIMED_QUERIES",
    "MIN_TIMED_QUERIES",
    "MODES",
    "QPS_CONFIDENCE",
    "TIMING_SAMPLE",
    "TIMING_SEED",
    "Measure",
    "RunOutcome",
    "TimedRuns",
    "Truth",
    "check_compatible",
    "check_concurrency",
    "check_recall_rule",
    "count_distances",
    "evaluate",
    "ground_truth_notice",
    "measure_setting",
    "paused_gc",
    "score",
    "time_runs",
    "timing_is_stable",
    "timing_order",
    "timing_sample",
    "true_neighbor_distances",
    "true_neighbor_ids",
]


def check_compatible(bundle: Bundle, dataset: Dataset) -> None:
    """Refuse to score an index against a dataset it was not built from."""
    manifest = bundle.manifest
    if manifest["dim"] != dataset.dim:
        raise InputError(
            f"index {bundle.path} has dimension {manifest['dim']}, "
            f"dataset {dataset.name} has {dataset.dim}"
        )
    if manifest["count"] != dataset.n_base:
        raise InputError(
            f"index {bundle.path} holds {manifest['count']} vectors, "
            f"dataset {dataset.name} has {dataset.n_base} base vectors: not built from it"
        )
    if manifest["metric"] != dataset.metric:
        raise InputError(
            f"index {bundle.path} uses metric {manifest['metric']}, dataset {dataset.name} "
            f"is scored with {dataset.metric}: rebuild the index with --metric "
            f"{dataset.metric}, or evaluate it with --metric {manifest['metric']}"
        )
    expected = manifest.get("dataset_fingerprint")
    if expected and expected != fingerprint_vectors(dataset.base):
        raise InputError(
            f"index {bundle.path} was built from different base vectors than {dataset.name}"
        )


def filter_workload(dataset: Dataset) -> Workload | None:
    """The filters of ``dataset``'s queries over its labelled base (None when its queries
    carry no labels): query labels without base labels are refused in one line."""
    if dataset.query_labels is None:
        return None
    if dataset.base_labels is None:
        raise InputError(
            f"{dataset.name}: the queries carry labels (filters) but the base vectors have "
            "none: pass --base-labels"
        )
    check_label_sizes(dataset.base_labels, dataset.query_labels, dataset.n_base, dataset.n_queries)
    return Workload.of(dataset.base_labels, dataset.query_labels)


def refuse_filters(dataset: Dataset, what: str) -> None:
    """One line for a command that does not search with filters yet when ``dataset``'s
    queries carry labels: its unfiltered searches would be scored against filtered truth."""
    if dataset.query_labels is not None:
        raise InputError(
            f"{what} does not search with filters yet, and the queries of {dataset.name} "
            "carry labels (filters): use annkit evaluate, bench or tune for filtered recall"
        )


def _truth_follows_filters(dataset: Dataset, workload: Workload | None) -> bool:
    """True when the dataset's ground truth respects its queries' filters (every true
    neighbour passes): a file's unfiltered truth beside label files does not."""
    if workload is None or dataset.neighbors is None:
        return True
    rows = np.arange(dataset.n_queries)
    ids = np.asarray(dataset.neighbors, dtype=np.int64)
    return bool((workload.passes(rows, ids) | (ids < 0)).all())


def _usable_truth(dataset: Dataset, k: int) -> bool:
    """The dataset's own ground truth is deep enough for ``k`` and follows the filters."""
    return (
        dataset.neighbors is not None
        and dataset.gt_depth >= k
        and _truth_follows_filters(dataset, filter_workload(dataset))
    )


def _exact_truth(
    dataset: Dataset,
    depth: int,
    progress: Callable[[int, int], None] | None = None,
    memory_check: bool = True,
) -> GroundTruth:
    """The exact top-``depth`` of the dataset's queries, among the vectors passing each
    query's filter when the queries carry labels (rows padded with -1 / +inf)."""
    if dataset.query_labels is not None and dataset.base_labels is not None:
        return compute_filtered_ground_truth(
            dataset.base,
            dataset.queries,
            depth,
            dataset.metric,
            dataset.base_labels,
            dataset.query_labels,
            progress=progress,
            memory_check=memory_check,
        )
    return compute_ground_truth(
        dataset.base,
        dataset.queries,
        depth,
        dataset.metric,
        progress=progress,
        memory_check=memory_check,
    )


def ground_truth_notice(dataset: Dataset, k: int) -> str | None:
    """The one-line notice for ground truth that is too shallow for ``k``, or that ignores
    the queries' filters, and is therefore recomputed exactly (see
    :func:`true_neighbor_distances`); None when it is usable or when the dataset has none
    (computing it is then the documented behaviour)."""
    if dataset.neighbors is None:
        return None
    if not _truth_follows_filters(dataset, filter_workload(dataset)):
        return (
            f"annkit: {dataset.name}'s ground truth ignores the queries' filters: computing "
            "the exact filtered truth instead"
        )
    if dataset.gt_depth >= k:
        return None
    return (
        f"annkit: {dataset.name} holds {dataset.gt_depth} true neighbours per query, "
        f"fewer than k={k}: computing the exact top-{2 * k} instead (this takes a while "
        "on large data)"
    )


def true_neighbor_distances(
    dataset: Dataset,
    k: int,
    progress: Callable[[int, int], None] | None = None,
    *,
    memory_check: bool = True,
) -> np.ndarray:
    """Exact distances (nq, depth) float64 ascending of each query's true nearest neighbours,
    recomputed from the vectors; depth >= k is the dataset's ground-truth depth, or 2k when
    the ground truth is missing or too shallow and is computed here (hardness measures use
    the depth beyond k; ``memory_check`` as in compute_ground_truth)."""
    if _usable_truth(dataset, k):
        assert dataset.neighbors is not None
        distances = exact_distances(
            dataset.base, dataset.queries, dataset.neighbors, dataset.metric
        )
        return np.sort(distances, axis=1)
    return _exact_truth(dataset, 2 * k, progress, memory_check).distances


def true_neighbor_ids(dataset: Dataset, k: int, *, memory_check: bool = True) -> np.ndarray:
    """The true top-k ids (nq, k) int64 of each query, nearest first: the dataset's ground
    truth when it is deep enough, else computed exactly (strict recall needs the ids)."""
    if _usable_truth(dataset, k):
        assert dataset.neighbors is not None
        return np.asarray(dataset.neighbors[:, :k], dtype=np.int64)
    truth = _exact_truth(dataset, k, memory_check=memory_check)
    return np.asarray(truth.ids[:, :k], dtype=np.int64)


class Truth:
    """The exact truth of a query set at ``k``, read once: the true neighbours' distances
    (nq, depth >= k) ascending (tolerant recall, hardness) and the true top-k ids (nq, k)
    (strict recall), each on first use: given arrays as they are, else read from the
    dataset's ground truth or computed exactly."""

    def __init__(
        self,
        dataset: Dataset,
        k: int,
        distances: np.ndarray | None = None,
        ids: np.ndarray | None = None,
    ) -> None:
        self.dataset = dataset
        self.k = k
        self._distances = distances
        self._ids = ids
        #: the queries' filters (None when they carry no labels)
        self.workload = filter_workload(dataset)

    @property
    def distances(self) -> np.ndarray:
        """The true neighbours' distances (nq, >=k) ascending (computed on first use)."""
        if self._distances is None:
            self._distances = true_neighbor_distances(self.dataset, self.k)
        return self._distances

    @property
    def ids(self) -> np.ndarray:
        """The true top-k ids (nq, >=k) int64, nearest first (computed on first use)."""
        if self._ids is None:
            self._ids = true_neighbor_ids(self.dataset, self.k)
        return self._ids

    def recall(
        self, found_ids: np.ndarray, rule: str, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """THE recall scoring: per-query recall@k (n,) of ``found_ids`` (n, >=k) for the
        queries ``rows`` (all when None) under ``rule``: tolerant (ann-benchmarks: a returned
        neighbour counts when its exact distance, recomputed from the base vectors, is within
        the k-th true distance) or strict (id overlap with the true top-k)."""
        if self.workload is not None:
            return self.filtered(found_ids, rule, rows)[0]
        if check_recall_rule(rule) == "strict":
            true_ids = self.ids if rows is None else self.ids[rows]
            return strict_recall_per_query(true_ids, found_ids, self.k)
        queries = self.dataset.queries if rows is None else self.dataset.queries[rows]
        true_distances = self.distances if rows is None else self.distances[rows]
        found = exact_distances(self.dataset.base, queries, found_ids, self.dataset.metric)
        return recall_per_query(true_distances, found_ids, found, self.k)

    def filtered(
        self, found_ids: np.ndarray, rule: str, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-query filtered recall@k and short-result flags (see
        :func:`annkit.filtering.filtered_recall`): only ids passing the query's filter
        count, over m = min(k, passing); strict: the share of the true top-m ids found."""
        workload = self.workload
        assert workload is not None, "a filtered score needs the queries' filters"
        rows = np.arange(self.dataset.n_queries) if rows is None else np.asarray(rows)
        ids = np.asarray(found_ids[:, : self.k], dtype=np.int64)
        passes = workload.passes(rows, ids)
        counts = workload.counts[rows]
        queries = self.dataset.queries[rows]
        found = exact_distances(self.dataset.base, queries, ids, self.dataset.metric)
        recall, short = filtered_recall(
            self.distances[rows], ids, found, passes, counts, self.k, EPSILON
        )
        if check_recall_rule(rule) == "strict":
            depth = np.minimum(counts, self.k)
            true_ids = self.ids[rows]
            hits = np.array(
                [
                    np.intersect1d(ids[i][passes[i]], true_ids[i, : depth[i]]).size
                    for i in range(len(rows))
                ]
            )
            recall = np.where(depth > 0, hits / np.maximum(depth, 1), 1.0)
        return recall, short


def count_distances(
    engine: Engine, queries: np.ndarray, k: int, *, one_at_a_time: bool = False
) -> np.ndarray | None:
    """Exact per-query distance computations of searching ``queries`` (None where the
    engine cannot count), taken outside any timed pass: as one batch, or one query per call
    when the timed pass searched one query per call (a library may take another path for a
    single query)."""
    if not engine.counts_distances:
        return None
    if not one_at_a_time:
        return engine.count_distances(queries, k)
    counts = np.empty(len(queries), dtype=np.int64)
    for row in range(len(queries)):
        counted = engine.count_distances(queries[row : row + 1], k)
        if counted is None:
            return None
        counts[row] = counted[0]
    return counts


def check_setting(bundle: Bundle, dataset: Dataset, measure: Measure) -> None:
    """Refuse an index, dataset and measure that do not fit together (InputError)."""
    check_compatible(bundle, dataset)
    if measure.k > dataset.n_base:
        raise InputError(f"k={measure.k} exceeds the {dataset.n_base} base vectors")


def score(
    bundle: Bundle,
    dataset: Dataset,
    measure: Measure,
    timing: TimedRuns,
    result: SearchResult,
    *,
    query_params: dict[str, Any],
    timed_queries: int,
    truth: Truth,
    profile: QueryProfile | None,
    counts: np.ndarray | None,
    choices: np.ndarray | None = None,
    qps_interval: tuple[float, float] | None = None,
) -> Evaluation:
    """THE scoring function: the :class:`Evaluation` of one timed setting.

    ``timing`` holds every timed run (the fastest gives QPS and, in single mode, the latency
    percentiles); ``result`` the ids scored for all queries (recall under the measure's
    rule, against ``truth``); ``counts`` (nq,) the distance computations per query, None
    when not counted; ``timed_queries`` how many queries each run timed. Filtered queries
    (labels) are scored by the filtered rule, with their short results and ``choices``
    (nq,), the strategy each query used, counted per selectivity band. ``qps_interval``:
    the QPS confidence interval (low, high) of a sampled single-query pass."""
    k = measure.k
    _, seconds, latencies = timing.best
    short: int | None = None
    plan: dict[str, dict[str, int]] | None = None
    if truth.workload is not None:
        per_query, short_rows = truth.filtered(result.ids, measure.recall_rule)
        short = int(short_rows.sum())
        if choices is not None:
            plan = filter_plan(truth.workload, choices)
    else:
        per_query = truth.recall(result.ids, measure.recall_rule)
    if counts is not None:
        counts = np.asarray(counts, dtype=np.int64).reshape(dataset.n_queries)
    tail, slices, weighted = summarize(per_query, profile, counts)
    manifest = bundle.manifest
    load = timing.load
    parallelism = measure.clients if measure.clients is not None else measure.search_threads
    return Evaluation(
        engine=bundle.engine.name,
        build_params=dict(manifest["build_params"]),
        query_params=query_params,
        metric=dataset.metric,
        k=k,
        mode=measure.mode,
        queries=dataset.n_queries,
        recall=float(per_query.mean()),
        qps=float(timed_queries / seconds) if seconds > 0 else float("inf"),
        latency_ms=latency_percentiles(latencies),
        build_seconds=float(manifest["build_seconds"]),
        index_bytes=bundle.index_bytes,
        search_seconds=float(seconds),
        runs=len(timing.seconds),
        per_query_recall=per_query,
        profile=profile,
        dataset=dataset.name,
        duplicate_ids=duplicate_count(result.ids),
        tail=tail,
        slices=slices,
        weighted_recall=weighted,
        distance_computations=None if counts is None else float(counts.mean()),
        per_query_distance_computations=counts,
        qps_runs=tuple(timing.qps_runs(timed_queries)),
        timed_queries=timed_queries,
        qps_low=None if qps_interval is None else float(qps_interval[0]),
        qps_high=None if qps_interval is None else float(qps_interval[1]),
        max_runs=measure.runs,
        qps_tolerance=measure.qps_tolerance,
        search_threads=measure.search_threads,
        clients=measure.clients,
        recall_rule=measure.recall_rule,
        filter_strategy=None if truth.workload is None else measure.filter_strategy,
        short_results=short,
        filter_plan=plan,
        load_average=None if load is None else load.load_average,
        cpu_per_wall=None if load is None else load.cpu_per_wall,
        starved=None if load is None else load.flag(parallelism),
        recall_at=depth_recalls(truth, result.ids, measure.depths),
        relative_distance_error=distance_error(dataset, truth, result.ids, k),
        work_unit=None if counts is None else bundle.engine.work_unit(),
        returned_ids=np.asarray(result.ids[:, :k], dtype=np.int64),
        notices=tuple(note for note in (ground_truth_notice(dataset, k),) if note),
    )


def depth_recalls(
    truth: Truth, found_ids: np.ndarray, depths: Sequence[tuple[int, int]]
) -> dict[str, float] | None:
    """Mean recall at each depth ``(a, b)`` (the true top-a among the first b returned,
    :func:`annkit.metrics.recall_at_depth`) keyed ``"a@b"``; None when none is asked for.
    Filtered queries count their true neighbours among those passing their filter."""
    if not depths:
        return None
    return {  # the measure keeps a <= b <= k, so the true top-k ids cover every depth
        depth_name(top, among): float(recall_at_depth(truth.ids, found_ids, top, among).mean())
        for top, among in depths
    }


def distance_error(dataset: Dataset, truth: Truth, found_ids: np.ndarray, k: int) -> float | None:
    """ann-benchmarks' relative distance error of the first ``k`` returned ids
    (:func:`annkit.metrics.relative_distance_error`, from exact distances); None for inner
    product (signed distances) and for filtered queries."""
    if dataset.metric == "ip" or truth.workload is not None:
        return None
    ids = np.asarray(found_ids[:, :k], dtype=np.int64)
    found = exact_distances(dataset.base, dataset.queries, ids, dataset.metric)
    return relative_distance_error(truth.distances, found, k)


def measure_setting(
    bundle: Bundle,
    dataset: Dataset,
    measure: Measure,
    query_params: dict | None = None,
    *,
    truth: Truth | None = None,
    profile: QueryProfile | None = None,
    with_slices: bool = True,
    cuts: Sequence[float] = DEFAULT_CUTS,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Search ``dataset.queries`` with ``bundle``'s index at ``query_params`` as ``measure``
    says, and score the fastest run (:func:`score`).

    Concurrency: in batch mode the engine's own batch search uses ``measure.search_threads``
    threads; in single mode ``measure.clients`` (None = one caller) concurrent threads each
    send one query per call, QPS is all queries over the wall-clock time and the latency
    percentiles are each query's under that load. Either way recall is the same as with one
    thread. In single mode with one caller and unfiltered queries, recall and work come from
    one untimed batch search of all queries, and QPS and the latency percentiles from
    single-query calls (the engine's bare per-query path, :meth:`Engine.single_queries`) over
    a seeded sample of the queries (:func:`annkit.timing.time_sample`): at least
    :data:`MIN_TIMED_QUERIES`, extended until the QPS confidence interval's relative
    half-width is at most ``measure.qps_tolerance``, at most :data:`MAX_TIMED_QUERIES`; the
    record keeps the interval and how many queries were timed. ``truth`` (computed when None)
    and ``profile`` (the query slices; computed when None and ``with_slices``, with frequency
    band cut points ``cuts``) save recomputing what is the same for every setting.
    ``progress(done, total)`` after each timed run (sampled: after each block of queries).
    Distance computations are counted outside the timed runs where the engine cannot count
    while it searches."""
    check_setting(bundle, dataset, measure)
    k, mode, clients = measure.k, measure.mode, measure.clients
    engine = bundle.engine
    engine.set_query_params(**(query_params or {}))
    engine.set_search_threads(measure.search_threads)
    if truth is None:
        truth = Truth(dataset, k)
    if profile is None and with_slices:
        profile = build_profile(dataset, truth.distances, k, cuts=cuts)
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    workload = truth.workload
    if workload is None and mode == "single" and clients is None:
        return _measure_sampled(
            bundle, dataset, measure, queries, truth=truth, profile=profile, progress=progress
        )
    searcher: FilteredSearch | None = None
    timed: np.ndarray = queries
    search: Search = engine.search
    if workload is not None:  # filtered queries: the timed loops pass query row numbers
        searcher = FilteredSearch(
            engine, dataset.base, queries, dataset.metric, workload, measure.filter_strategy, k
        )
        timed = np.arange(dataset.n_queries, dtype=np.int64)[:, None]
        search = _rows_search(searcher)

    def one_run() -> RunOutcome:
        if clients is not None:
            return run_clients(search, timed, k, clients)
        return run_batch(search, timed, k) if mode == "batch" else run_single(search, timed, k)

    def timed_passes() -> TimedRuns:
        with engine.uncounted():  # counting that costs extra work stays out of the clock
            return time_runs(one_run, measure.runs, len(timed), measure.qps_tolerance, progress)

    # in a thread of their own, so Ctrl-C stops even a long native batch search at once
    timing = run_interruptibly(timed_passes)
    result = timing.best[0]
    counts = result.distance_computations
    if counts is None and searcher is not None:  # counted outside the clock, all at once
        counts = searcher.search(np.arange(dataset.n_queries)).distance_computations
    elif counts is None:
        counts = count_distances(engine, queries, k, one_at_a_time=mode == "single")
    return score(
        bundle,
        dataset,
        measure,
        timing,
        result,
        query_params=dict(engine.query),
        timed_queries=len(timed),
        truth=truth,
        profile=profile,
        counts=counts,
        choices=None if searcher is None else searcher.choices,
    )


def _measure_sampled(
    bundle: Bundle,
    dataset: Dataset,
    measure: Measure,
    queries: np.ndarray,
    *,
    truth: Truth,
    profile: QueryProfile | None,
    progress: Callable[[int, int], None] | None,
) -> Evaluation:
    """Single mode, one caller, unfiltered: results and work from one untimed batch search
    of all ``queries`` (one query per call for an engine whose batch search answers
    differently), then one sampled single-query timed pass (see :func:`measure_setting`)."""
    engine, k = bundle.engine, measure.k
    if type(engine).batch_answers_like_single:
        result = run_interruptibly(lambda: engine.search(queries, k))
    else:  # a library whose batch search answers differently: one query per call, untimed
        result = run_interruptibly(lambda: run_single(engine.search, queries, k)[0])
    counts = result.distance_computations
    if counts is None:
        counts = count_distances(engine, queries, k)
    order = timing_order(dataset.n_queries)[:MAX_TIMED_QUERIES]

    def timed_pass() -> SampledTiming:
        with engine.uncounted(), engine.single_queries(queries[order], k) as (items, search_one):
            return time_sample(
                search_one, items, measure.qps_tolerance, MIN_TIMED_QUERIES, progress
            )

    sample = run_interruptibly(timed_pass)
    timing = TimedRuns(
        best=(result, sample.seconds, sample.latencies), seconds=[sample.seconds], load=sample.load
    )
    return score(
        bundle,
        dataset,
        measure,
        timing,
        result,
        query_params=dict(engine.query),
        timed_queries=sample.timed_queries,
        truth=truth,
        profile=profile,
        counts=counts,
        qps_interval=(sample.qps_low, sample.qps_high),
    )


def _rows_search(searcher: FilteredSearch) -> Search:
    """A search over query row numbers ((n, 1) int64, as the timed loops pass them) of a
    filtered workload: each row is searched with its own filter."""

    def search(rows: np.ndarray, k: int) -> SearchResult:
        return searcher.search(np.asarray(rows[:, 0], dtype=np.int64))

    return search


def filter_plan(workload: Workload, choices: np.ndarray) -> dict[str, dict[str, int]]:
    """Per selectivity band (in band order), how many queries each strategy answered."""
    bands = workload.bands()
    plan: dict[str, dict[str, int]] = {}
    for band in SELECTIVITY_BAND_NAMES:
        chosen = choices[bands == band]
        if chosen.size:
            names, counted = np.unique(chosen.astype(str), return_counts=True)
            plan[band] = {str(n): int(c) for n, c in zip(names, counted, strict=True)}
    return plan


def evaluate(
    bundle: Bundle,
    dataset: Dataset,
    k: int = 10,
    query_params: dict | None = None,
    *,
    mode: str = "batch",
    runs: int = DEFAULT_RUNS,
    qps_tolerance: float = DEFAULT_QPS_TOLERANCE,
    true_distances: np.ndarray | None = None,
    profile: QueryProfile | None = None,
    with_slices: bool = True,
    cuts: Sequence[float] = DEFAULT_CUTS,
    progress: Callable[[int, int], None] | None = None,
    search_threads: int = 1,
    clients: int | None = None,
    recall_rule: str = DEFAULT_RECALL_RULE,
    true_ids: np.ndarray | None = None,
) -> Evaluation:
    """:func:`measure_setting` with the :class:`Measure` spelled out as keywords (k, mode,
    runs, qps_tolerance, search_threads, clients, recall_rule; InputError for a bad one) and
    the truth as arrays: ``true_distances`` (nq, >=k) and ``true_ids`` (nq, >=k; strict
    rule), each computed when None."""
    measure = Measure(
        k=k,
        mode=mode,
        runs=runs,
        qps_tolerance=qps_tolerance,
        recall_rule=recall_rule,
        search_threads=search_threads,
        clients=clients,
    )
    check_setting(bundle, dataset, measure)
    return measure_setting(
        bundle,
        dataset,
        measure,
        query_params,
        truth=Truth(dataset, k, true_distances, true_ids),
        profile=profile,
        with_slices=with_slices,
        cuts=cuts,
        progress=progress,
    )
