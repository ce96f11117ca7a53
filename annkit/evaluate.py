"""THE evaluation path: search a loaded index, time it, and score it against exact truth.

``annkit evaluate``, the benchmark runner and tuning all call :func:`evaluate`, so one
setting gives the same recall wherever it is measured.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from annkit.bundle import Bundle, fingerprint_vectors
from annkit.engines.base import Engine
from annkit.errors import InputError
from annkit.groundtruth import compute_ground_truth
from annkit.longtail import DEFAULT_CUTS
from annkit.metrics import (
    DEFAULT_RECALL_RULE,
    RECALL_RULES,
    duplicate_count,
    exact_distances,
    latency_percentiles,
    recall_per_query,
    strict_recall_per_query,
)
from annkit.parallel import run_interruptibly
from annkit.slices import build_profile, summarize
from annkit.types import Dataset, Evaluation, QueryProfile, SearchResult

MODES = ("batch", "single")

#: default number of timed runs (the maximum: timing stops once stable), for evaluate, bench
#: and tune alike
DEFAULT_RUNS = 3
#: default stopping tolerance: stop once the two fastest runs' QPS differ by at most 5% of
#: the fastest (after at least 2 runs)
DEFAULT_QPS_TOLERANCE = 0.05
#: queries timed in single mode for an engine with ``constant_query_cost`` (seeded sample)
TIMING_SAMPLE = 500
TIMING_SEED = 0

#: one timed run: its result, search seconds, and per-query latencies (single mode) or None
RunOutcome = tuple[SearchResult, float, "np.ndarray | None"]


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


def ground_truth_notice(dataset: Dataset, k: int) -> str | None:
    """The one-line notice for ground truth that is too shallow for ``k`` and is therefore
    recomputed exactly (see :func:`true_neighbor_distances`); None when it is deep enough or when
    the dataset has none (computing it is then the documented behaviour)."""
    if dataset.neighbors is None or dataset.gt_depth >= k:
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
    if dataset.neighbors is not None and dataset.gt_depth >= k:
        distances = exact_distances(
            dataset.base, dataset.queries, dataset.neighbors, dataset.metric
        )
        return np.sort(distances, axis=1)
    truth = compute_ground_truth(
        dataset.base,
        dataset.queries,
        2 * k,
        dataset.metric,
        progress=progress,
        memory_check=memory_check,
    )
    return truth.distances


def true_neighbor_ids(dataset: Dataset, k: int, *, memory_check: bool = True) -> np.ndarray:
    """The true top-k ids (nq, k) int64 of each query, nearest first: the dataset's ground
    truth when it is deep enough, else computed exactly (strict recall needs the ids)."""
    if dataset.neighbors is not None and dataset.gt_depth >= k:
        return np.asarray(dataset.neighbors[:, :k], dtype=np.int64)
    truth = compute_ground_truth(
        dataset.base, dataset.queries, k, dataset.metric, memory_check=memory_check
    )
    return np.asarray(truth.ids[:, :k], dtype=np.int64)


def check_recall_rule(rule: str) -> str:
    """``rule`` when it is a known recall rule, else a one-line InputError."""
    if rule not in RECALL_RULES:
        raise InputError(f"unknown recall rule {rule!r}: use {' or '.join(RECALL_RULES)}")
    return rule


def score_recall(
    dataset: Dataset,
    found_ids: np.ndarray,
    k: int,
    rule: str,
    true_distances: np.ndarray,
    true_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Per-query recall@k (nq,) of ``found_ids`` under ``rule``: tolerant (ann-benchmarks,
    from exact distances) or strict (id overlap with ``true_ids``, computed when None)."""
    if check_recall_rule(rule) == "strict":
        if true_ids is None:
            true_ids = true_neighbor_ids(dataset, k)
        return strict_recall_per_query(true_ids, found_ids, k)
    found = exact_distances(dataset.base, dataset.queries, found_ids, dataset.metric)
    return recall_per_query(true_distances, found_ids, found, k)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of a timed loop (as timeit does): its
    pauses belong to the process's other objects, not to the index."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_batch(bundle: Bundle, queries: np.ndarray, k: int) -> tuple[SearchResult, float, None]:
    with paused_gc():
        start = time.perf_counter()
        result = bundle.engine.search(queries, k)
        return result, time.perf_counter() - start, None


def _run_single(
    bundle: Bundle, queries: np.ndarray, k: int
) -> tuple[SearchResult, float, np.ndarray]:
    search = bundle.engine.search
    clock = time.perf_counter
    n_queries = len(queries)
    ids = np.empty((n_queries, k), dtype=np.int64)
    distances = np.empty((n_queries, k), dtype=np.float32)
    latencies = np.empty(n_queries, dtype=np.float64)
    counts: np.ndarray | None = np.empty(n_queries, dtype=np.int64)
    with paused_gc():
        for row in range(n_queries):
            query = queries[row : row + 1]
            start = clock()
            result = search(query, k)
            latencies[row] = clock() - start
            ids[row] = result.ids[0]
            distances[row] = result.distances[0]
            if counts is not None:
                if result.distance_computations is None:
                    counts = None  # one query the library could not count: none counted
                else:
                    counts[row] = result.distance_computations[0]
    result = SearchResult(ids=ids, distances=distances, distance_computations=counts)
    return result, float(latencies.sum()), latencies


def _run_clients(
    bundle: Bundle, queries: np.ndarray, k: int, clients: int
) -> tuple[SearchResult, float, np.ndarray]:
    """``clients`` threads, each sending one query per search call and taking the next
    unanswered query until all are done: wall-clock seconds for all of them and each query's
    latency under that load. Every engine library annkit ships releases the GIL while it
    searches (measured in benchmarks/bench_scale.py), so the clients really overlap. With
    more than one client the distance computations are not kept here (some libraries count
    in process-wide counters that concurrent calls would mix): :func:`evaluate` counts them
    afterwards, one query per call."""
    search = bundle.engine.search
    clock = time.perf_counter
    n_queries = len(queries)
    ids = np.empty((n_queries, k), dtype=np.int64)
    distances = np.empty((n_queries, k), dtype=np.float32)
    latencies = np.empty(n_queries, dtype=np.float64)
    counts = np.empty(n_queries, dtype=np.int64)
    counted = [clients == 1]
    next_row = itertools.count()  # next() on it is atomic under the GIL
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while (row := next(next_row)) < n_queries:
                start = clock()
                result = search(queries[row : row + 1], k)
                latencies[row] = clock() - start
                ids[row] = result.ids[0]
                distances[row] = result.distances[0]
                if result.distance_computations is None:
                    counted[0] = False
                else:
                    counts[row] = result.distance_computations[0]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    workers = [
        threading.Thread(target=client, name=f"annkit-client-{number}", daemon=True)
        for number in range(clients)
    ]
    with paused_gc():
        start = clock()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = clock() - start
    if errors:
        raise errors[0]
    result = SearchResult(
        ids=ids, distances=distances, distance_computations=counts if counted[0] else None
    )
    return result, seconds, latencies


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


def timing_is_stable(qps_runs: Sequence[float], tolerance: float) -> bool:
    """True once at least 2 runs were made and the two fastest differ by at most
    ``tolerance`` (a fraction) of the fastest; never with ``tolerance`` <= 0."""
    if tolerance <= 0 or len(qps_runs) < 2:
        return False
    fastest, second = sorted(qps_runs, reverse=True)[:2]
    return fastest - second <= tolerance * fastest


@dataclass(frozen=True)
class TimedRuns:
    """Repeated timing of one search: the fastest run's outcome, and the search seconds of
    every run made, in order."""

    best: RunOutcome
    seconds: list[float]

    def qps_runs(self, n_queries: int) -> list[float]:
        """QPS of each run when each searched ``n_queries`` queries."""
        return [n_queries / value if value > 0 else float("inf") for value in self.seconds]


def time_runs(
    run: Callable[[], RunOutcome],
    max_runs: int,
    n_queries: int,
    tolerance: float = DEFAULT_QPS_TOLERANCE,
    progress: Callable[[int, int], None] | None = None,
) -> TimedRuns:
    """Call ``run`` (one timed pass over ``n_queries`` queries) up to ``max_runs`` times,
    stopping early once :func:`timing_is_stable` holds; keep the fastest outcome.
    ``progress(done, max_runs)`` after each run (``(done, done)`` when stopping early)."""
    best: RunOutcome | None = None
    seconds: list[float] = []
    for attempt in range(max_runs):
        outcome = run()
        seconds.append(outcome[1])
        if best is None or outcome[1] < best[1]:
            best = outcome
        stable = timing_is_stable(
            [n_queries / value if value > 0 else float("inf") for value in seconds], tolerance
        )
        if progress is not None:
            progress(attempt + 1, attempt + 1 if stable else max_runs)
        if stable:
            break
    assert best is not None
    return TimedRuns(best=best, seconds=seconds)


def timing_sample(n_queries: int, size: int = TIMING_SAMPLE, seed: int = TIMING_SEED) -> np.ndarray:
    """Sorted row numbers of the seeded sample of queries timed for a constant-cost engine
    (all rows when there are no more than ``size``)."""
    if n_queries <= size:
        return np.arange(n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, size, replace=False))


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
    """Search ``dataset.queries`` with ``bundle``'s index up to ``runs`` times and score the
    best run.

    Concurrency: in batch mode the engine's own batch search uses ``search_threads``
    threads; in single mode ``clients`` (None = one caller) concurrent threads each send one
    query per call, QPS is all queries over the wall-clock time and the latency percentiles
    are each query's under that load. Either way recall is the same as with one thread.

    QPS (and, in single mode, latency percentiles) come from the fastest run; timing stops
    early once the two fastest runs' QPS agree within ``qps_tolerance`` (a fraction of the
    fastest; at least 2 runs; 0 = always ``runs``), and the QPS of every run is kept
    (``Evaluation.qps_runs``). In single mode an engine with ``constant_query_cost`` is timed
    on a seeded sample of :data:`TIMING_SAMPLE` queries while its results for recall come
    from one untimed batch search of all of them (``Evaluation.timed_queries`` says how many
    were timed). recall@k is computed from distances recomputed exactly from the base vectors
    (ann-benchmarks rule, ``recall_rule="tolerant"``) or, with ``"strict"``, as the overlap
    with the true top-k ids (``true_ids`` (nq, >=k), computed when None).
    ``true_distances`` (nq, >=k), when given, saves recomputing the exact truth; ``profile``
    likewise saves recomputing the query slices (computed when None and ``with_slices``,
    with frequency band cut points ``cuts``).
    ``distance_computations`` is the best run's mean number of distance computations per
    query (``per_query_distance_computations`` per query), None when the engine cannot count.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use batch or single")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    if not 0.0 <= qps_tolerance < 1.0:
        raise InputError(f"QPS tolerance must be in [0, 1), got {qps_tolerance}")
    check_concurrency(mode, search_threads, clients)
    check_recall_rule(recall_rule)
    check_compatible(bundle, dataset)
    if k > dataset.n_base:
        raise InputError(f"k={k} exceeds the {dataset.n_base} base vectors")
    engine = bundle.engine
    engine.set_query_params(**(query_params or {}))
    engine.set_search_threads(search_threads)
    if true_distances is None:
        true_distances = true_neighbor_distances(dataset, k)
    if profile is None and with_slices:
        profile = build_profile(dataset, true_distances, k, cuts=cuts)
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    sampled = (
        mode == "single"
        and clients is None
        and type(engine).constant_query_cost
        and dataset.n_queries > TIMING_SAMPLE
    )
    timed = queries[timing_sample(dataset.n_queries)] if sampled else queries
    run: Callable[[Bundle, np.ndarray, int], RunOutcome] = (
        _run_batch if mode == "batch" else _run_single
    )
    if clients is not None:
        concurrent = clients
        run = lambda bundle, queries, k: _run_clients(bundle, queries, k, concurrent)  # noqa: E731

    def timed_passes() -> TimedRuns:
        with engine.uncounted():  # counting that costs extra work stays out of the clock
            return time_runs(
                lambda: run(bundle, timed, k), runs, len(timed), qps_tolerance, progress
            )

    # in a thread of their own, so Ctrl-C stops even a long native batch search at once
    timing = run_interruptibly(timed_passes)
    result, seconds, latencies = timing.best
    if sampled:  # constant cost: the results of all queries from one untimed batch search
        result = engine.search(queries, k)
    per_query = score_recall(dataset, result.ids, k, recall_rule, true_distances, true_ids)
    counts = result.distance_computations
    if counts is None:
        counts = count_distances(engine, queries, k, one_at_a_time=mode == "single")
    if counts is not None:
        counts = np.asarray(counts, dtype=np.int64).reshape(dataset.n_queries)
    tail, slices, weighted = summarize(per_query, profile, counts)
    manifest = bundle.manifest
    return Evaluation(
        engine=engine.name,
        build_params=dict(manifest["build_params"]),
        query_params=dict(engine.query),
        metric=dataset.metric,
        k=k,
        mode=mode,
        queries=dataset.n_queries,
        recall=float(per_query.mean()),
        qps=float(len(timed) / seconds) if seconds > 0 else float("inf"),
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
        qps_runs=tuple(timing.qps_runs(len(timed))),
        timed_queries=len(timed),
        max_runs=runs,
        qps_tolerance=qps_tolerance,
        search_threads=search_threads,
        clients=clients,
        recall_rule=recall_rule,
        returned_ids=np.asarray(result.ids[:, :k], dtype=np.int64),
        notices=tuple(note for note in (ground_truth_notice(dataset, k),) if note),
    )


def check_concurrency(mode: str, search_threads: int, clients: int | None) -> None:
    """Refuse concurrency settings that do not fit together (InputError, one line)."""
    if search_threads < 1:
        raise InputError(f"--search-threads must be >= 1, got {search_threads}")
    if clients is not None and clients < 1:
        raise InputError(f"--clients must be >= 1, got {clients}")
    if clients is not None and search_threads > 1:
        raise InputError(
            "use either --search-threads (one batch, the engine's threads) or "
            "--clients (concurrent single-query callers), not both"
        )
    if clients is not None and mode != "single":
        raise InputError("--clients sends one query per call: use it with --mode single")
    if search_threads > 1 and mode != "batch":
        raise InputError("--search-threads applies to batch mode; in single mode use --clients")
