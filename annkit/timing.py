"""The timing loops: every timed search pass annkit makes, in one place.

A pass searches the queries with a ``search(queries, k) -> SearchResult`` callable (an
engine's batch search, or an adaptive policy's), in one batch call, one query per call, or
from concurrent single-query clients, with Python's garbage collector paused;
:func:`time_runs` repeats a pass until the QPS is stable and keeps the fastest.
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

from annkit.measure import DEFAULT_QPS_TOLERANCE
from annkit.types import SearchResult

#: queries timed in single mode for an engine with ``constant_query_cost`` (seeded sample)
TIMING_SAMPLE = 500
TIMING_SEED = 0

#: a batch-first search: queries (nq, d) float32 and k -> SearchResult
Search = Callable[[np.ndarray, int], SearchResult]
#: one timed run: its result, search seconds, and per-query latencies (single mode) or None
RunOutcome = tuple[SearchResult, float, "np.ndarray | None"]


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


def run_batch(search: Search, queries: np.ndarray, k: int) -> tuple[SearchResult, float, None]:
    """One timed pass: all ``queries`` in one ``search`` call."""
    with paused_gc():
        start = time.perf_counter()
        result = search(queries, k)
        return result, time.perf_counter() - start, None


def run_single(
    search: Search, queries: np.ndarray, k: int
) -> tuple[SearchResult, float, np.ndarray]:
    """One timed pass, one query per ``search`` call: the results, the summed per-query
    seconds and each query's latency (seconds)."""
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


def run_clients(
    search: Search, queries: np.ndarray, k: int, clients: int
) -> tuple[SearchResult, float, np.ndarray]:
    """``clients`` threads, each sending one query per search call and taking the next
    unanswered query until all are done: wall-clock seconds for all of them and each query's
    latency under that load. Every engine library annkit ships releases the GIL while it
    searches (measured in benchmarks/bench_scale.py), so the clients really overlap. With
    more than one client the distance computations are not kept here (some libraries count
    in process-wide counters that concurrent calls would mix): :func:`evaluate` counts them
    afterwards, one query per call."""
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
