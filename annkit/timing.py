"""The timing loops: every timed search pass annkit makes, in one place.

A pass searches the queries with a ``search(queries, k) -> SearchResult`` callable (an
engine's batch search, or an adaptive policy's), in one batch call, one query per call, or
from concurrent single-query clients, with Python's garbage collector paused;
:func:`time_runs` repeats a pass until the QPS is stable and keeps the fastest.
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from annkit.measure import DEFAULT_QPS_TOLERANCE
from annkit.types import SearchResult

#: single mode (one caller) times a seeded sample of the queries, at least
#: ``MIN_TIMED_QUERIES`` (all when there are fewer), extended (doubled) until the QPS
#: confidence interval's relative half-width is at most the measure's QPS tolerance, and at
#: most ``MAX_TIMED_QUERIES``
MIN_TIMED_QUERIES = 200
MAX_TIMED_QUERIES = 5000
#: sample queries searched once, untimed, before a sampled pass (the first calls of a
#: setting are slower: caches, lazily built state)
WARMUP_QUERIES = 10
#: the seed of the timed sample's order
TIMING_SEED = 0
#: size of the fixed seeded sample :func:`timing_sample` gives by default
TIMING_SAMPLE = 500
#: the confidence level of the QPS interval, and its two-sided normal quantile
QPS_CONFIDENCE = 0.95
_Z_95 = 1.959963984540054
#: consecutive blocks whose means the QPS interval also compares (batch means), and the
#: two-sided 95% Student's t quantile with their 9 degrees of freedom
TIMING_BLOCKS = 10
_T_95_9 = 2.2621571627409915

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
    every run made, in order; and how loaded the machine was meanwhile (see
    :class:`LoadSample`; None when not measured)."""

    best: RunOutcome
    seconds: list[float]
    load: LoadSample | None = None

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
    start = LoadClock.start()
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
    return TimedRuns(best=best, seconds=seconds, load=start.stop())


def timing_order(n_queries: int, seed: int = TIMING_SEED) -> np.ndarray:
    """The seeded order (a permutation of the ``n_queries`` row numbers) in which single-mode
    timing takes its queries: a sample of n is always its first n rows."""
    return np.random.default_rng(seed).permutation(n_queries)


def timing_sample(n_queries: int, size: int = TIMING_SAMPLE, seed: int = TIMING_SEED) -> np.ndarray:
    """Sorted row numbers of the seeded sample of ``size`` queries (the first ``size`` of
    :func:`timing_order`; all rows when there are no more than ``size``)."""
    return np.sort(timing_order(n_queries, seed)[:size])


def qps_interval(latencies: np.ndarray) -> tuple[float, float, float]:
    """The :data:`QPS_CONFIDENCE` confidence interval of the QPS (1 / mean latency) from
    per-query ``latencies`` (seconds, in the order timed): (low, high, relative half-width
    of the mean latency); (nan, nan, inf) with fewer than 2 latencies (high is inf when the
    interval reaches zero latency).

    The half-width is the larger of two: the queries' own spread (normal approximation of
    the mean) and the spread of :data:`TIMING_BLOCKS` consecutive blocks' means (batch
    means, Student's t): a machine whose speed drifts while the queries are timed (a shared
    machine's neighbours) makes the blocks disagree, widens the interval and so grows the
    sample, where independent latencies would hide it."""
    count = len(latencies)
    if count < 2:
        return float("nan"), float("nan"), float("inf")
    mean = float(np.mean(latencies))
    if mean <= 0:
        return float("inf"), float("inf"), 0.0
    half = _Z_95 * float(np.std(latencies, ddof=1)) / count**0.5
    if count >= 2 * TIMING_BLOCKS:
        blocks = [float(np.mean(block)) for block in np.array_split(latencies, TIMING_BLOCKS)]
        half = max(half, _T_95_9 * float(np.std(blocks, ddof=1)) / TIMING_BLOCKS**0.5)
    high = 1.0 / (mean - half) if mean > half else float("inf")
    return 1.0 / (mean + half), high, half / mean


@dataclass(frozen=True)
class SampledTiming:
    """One single-query timed pass over a seeded sample: each timed query's ``latencies``
    (seconds, in the order timed), the QPS interval (``qps_low``, ``qps_high``) and its
    ``relative_half_width``, and the machine's load meanwhile."""

    latencies: np.ndarray
    qps_low: float
    qps_high: float
    relative_half_width: float
    load: LoadSample | None = None

    @property
    def seconds(self) -> float:
        """Summed search seconds of the timed queries."""
        return float(self.latencies.sum())

    @property
    def timed_queries(self) -> int:
        return len(self.latencies)


def time_sample(
    search_one: Callable[[object], object],
    items: Sequence[object],
    tolerance: float,
    minimum: int = MIN_TIMED_QUERIES,
    progress: Callable[[int, int], None] | None = None,
) -> SampledTiming:
    """Time ``search_one(item)`` once per item of ``items`` (the sample in its seeded order,
    as long as it may grow), one call per query: first ``minimum`` items, then doubling the
    count until the QPS interval's relative half-width is at most ``tolerance`` (never for
    ``tolerance`` <= 0) or every item is timed. ``progress(timed, len(items))`` after each
    block (``(timed, timed)`` when stopping early). The first :data:`WARMUP_QUERIES` items
    are searched once, untimed, before."""
    clock = time.perf_counter
    total = len(items)
    latencies = np.empty(total, dtype=np.float64)
    done = 0
    target = min(max(1, minimum), total)
    low, high, width = float("nan"), float("nan"), float("inf")
    for item in items[:WARMUP_QUERIES]:
        search_one(item)
    start = LoadClock.start()
    with paused_gc():
        while True:
            for row in range(done, target):
                item = items[row]
                began = clock()
                search_one(item)
                latencies[row] = clock() - began
            done = target
            low, high, width = qps_interval(latencies[:done])
            stop = done >= total or (tolerance > 0 and width <= tolerance)
            if progress is not None:
                progress(done, done if stop else total)
            if stop:
                break
            target = min(2 * done, total)
    return SampledTiming(latencies[:done].copy(), low, high, width, start.stop())


# ---------------------------------------------------------------- load awareness

#: a run whose CPU over wall time is below this share of the cores it asked for is starved
STARVED_SHARE = 0.8


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The machine's 1-minute load average (runnable threads, all processes), or None where
    the OS does not give one."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _child_pids(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                children += [int(value) for value in handle.read().split()]
        except (OSError, ValueError):
            continue
    return children


def _process_ticks(pid: int) -> int:
    """User + system CPU clock ticks of process ``pid`` so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return 0
    rest = data[data.rfind(b")") + 2 :].split()  # after the command name: state is field 3
    try:
        return int(rest[11]) + int(rest[12])  # fields 14 (utime) and 15 (stime)
    except (IndexError, ValueError):
        return 0


def descendant_cpu_seconds() -> float:
    """CPU seconds used so far by this process's live descendants (e.g. the database server
    an engine started for the run; Linux only, 0 elsewhere) and by its finished children."""
    ticks = 0
    pending = _child_pids(os.getpid())
    seen: set[int] = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ticks += _process_ticks(pid)
        pending += _child_pids(pid)
    per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    finished = os.times()
    return ticks / per_second + finished.children_user + finished.children_system


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (every thread) and its descendants."""
    return time.process_time() + descendant_cpu_seconds()


@dataclass(frozen=True)
class LoadSample:
    """How loaded the machine was during timed passes: the 1-minute ``load_average`` when
    they began (None where the OS has none), the ``cores`` this process may use, and the
    process's CPU seconds (descendants included) over the wall seconds of the passes
    (``cpu_per_wall``: about 1.0 per busy thread; None when no time passed)."""

    load_average: float | None
    cores: int
    cpu_per_wall: float | None

    def flag(self, parallelism: int) -> str | None:
        """The run's timing flag (see :func:`load_flag`) for ``parallelism`` search
        threads or clients."""
        return load_flag(self.cpu_per_wall, parallelism, self.cores, self.load_average)


@dataclass(frozen=True)
class LoadClock:
    """The clocks read when timed passes begin (:meth:`start`); :meth:`stop` gives the
    :class:`LoadSample` of the time since."""

    wall: float
    cpu: float
    load_average: float | None

    @classmethod
    def start(cls) -> LoadClock:
        return cls(wall=time.perf_counter(), cpu=cpu_seconds(), load_average=load_average())

    def stop(self) -> LoadSample:
        cpu = cpu_seconds() - self.cpu
        wall = time.perf_counter() - self.wall
        return LoadSample(
            load_average=self.load_average,
            cores=available_cores(),
            cpu_per_wall=cpu / wall if wall > 0 else None,
        )


def load_flag(
    cpu_per_wall: float | None, parallelism: int, cores: int, load: float | None
) -> str | None:
    """Why a run's timing may not have had its cores, or None: ``starved: CPU 0.6 of 2``
    when the process's CPU over wall time was below :data:`STARVED_SHARE` x min(parallelism,
    cores) (``parallelism``: search threads or concurrent clients); for a single-threaded
    run that got its core, ``busy machine: load 3.4 on 2 cores`` when the 1-minute load
    average exceeded the core count (its QPS then depends on its neighbours)."""
    parallelism = max(1, int(parallelism))
    if cpu_per_wall is not None and cpu_per_wall < STARVED_SHARE * min(parallelism, cores):
        return f"starved: CPU {cpu_per_wall:.1f} of {parallelism}"
    if parallelism == 1 and load is not None and load > cores:
        return f"busy machine: load {load:.1f} on {cores} core{'s' if cores != 1 else ''}"
    return None
