"""Run a sweep: build each index once (or take it from the cache), measure every query
setting on it, and store one record per (build, query) setting as soon as it finishes.

Builds and searches run in a worker process (:mod:`annkit.bench.worker`, started and
watched by :mod:`annkit.bench.process`); this process only waits, enforces the per-run time
limit (killing the worker and starting a new one for the remaining settings) and writes the
results. An exception, a timeout or a native crash
becomes a record with status "failed" or "timeout" and the sweep goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from annkit import __version__
from annkit.bench.job import Level, WorkerJob
from annkit.bench.process import WorkerDied, WorkerProcess
from annkit.bench.spec import (
    BuildSetting,
    PolicySetting,
    QuerySetting,
    SweepError,
    SweepSpec,
    policy_dataset_problem,
)
from annkit.bench.store import WORKER_LOG, ResultsStore, machine_facts
from annkit.bundle import fingerprint_vectors
from annkit.cache import (
    CACHE_DIR,
    cache_params,
    cached_true_distances,
    index_dir,
    index_key,
)
from annkit.engines.base import get_engine
from annkit.errors import InputError
from annkit.evaluate import check_concurrency, ground_truth_notice
from annkit.measure import Measure
from annkit.sources import open_dataset
from annkit.types import Dataset, RunRecord


@dataclass(frozen=True)
class SweepEvent:
    """Progress of a sweep, for whoever renders it.

    kind: "groundtruth", "notice" (a one-line message for the user), "start", "build",
    "query", "record" (``record`` set) or "finish";
    ``done`` / ``total`` count (build, query) settings, skipped ones included in ``done``.
    """

    kind: str
    done: int
    total: int
    message: str = ""
    record: RunRecord | None = None


EventHandler = Callable[[SweepEvent], None]


@dataclass
class SweepOutcome:
    """What a sweep did: its folder, every record in it, and counts of this invocation."""

    results_dir: Path
    records: list[RunRecord]
    meta: dict
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    builds: int = 0
    cached_builds: int = 0
    extra: dict = field(default_factory=dict)
    #: wall seconds of this invocation by phase (see :data:`PHASES`)
    phases: dict[str, float] = field(default_factory=dict)


#: where a sweep's wall time goes, in order: opening the dataset, exact ground truth (or
#: reading it from the cache), starting worker processes, building indexes, loading cached
#: ones, the timed searches, everything else of a measurement (scoring, counting, slices,
#: the worker's messages), and writing records
PHASES = (
    "dataset",
    "ground_truth",
    "worker_start",
    "build",
    "load",
    "timed_search",
    "scoring",
    "writing",
)


def timed_seconds(record: RunRecord) -> float:
    """The seconds a record's timed runs searched (each run's queries over its QPS)."""
    queries = record.timed_queries or record.queries or 0
    return float(sum(queries / qps for qps in (record.qps_runs or ()) if qps))


def describe_setting(engine: str, build: dict, query: dict | None = None) -> str:
    """``hnsw M=16 ef_construction=200 | ef=40`` (None values left out)."""
    text = " ".join([engine] + [f"{k}={v}" for k, v in build.items() if v is not None])
    if query:
        text += " | " + " ".join(f"{k}={v}" for k, v in query.items() if v is not None)
    return text


def concurrency_levels(
    search_threads: list[int] | None = None, clients: list[int] | None = None
) -> list[Level]:
    """The (search threads, clients) levels each query setting is measured at: one per
    client count when ``clients`` is given, else one per search-thread count (default 1)."""
    if clients:
        return [(1, count) for count in dict.fromkeys(clients)]
    return [(count, None) for count in dict.fromkeys(search_threads or [1])]


def concurrency_run_id(run_id: str, threads: int, clients: int | None) -> str:
    """The run id of a setting at a concurrency level: unchanged for one thread and no
    clients (older results resume), else ``<id>-t<threads>`` or ``<id>-c<clients>``."""
    if clients is not None:
        return f"{run_id}-c{clients}"
    return run_id if threads == 1 else f"{run_id}-t{threads}"


def with_concurrency(spec: SweepSpec, levels: list[Level]) -> tuple[SweepSpec, dict[str, Level]]:
    """``spec`` with every query setting repeated at each level (new run ids), and the level
    of each new run id; ``spec`` itself for the single level (1, None)."""
    if levels == [(1, None)]:
        return spec, {}
    table: dict[str, Level] = {}
    builds = []
    for build in spec.builds:
        queries = []
        for query in build.queries:
            if query.policy is not None:  # a policy searches with one thread, one client
                queries.append(query)
                continue
            for threads, clients in levels:
                run_id = concurrency_run_id(query.run_id, threads, clients)
                table[run_id] = (threads, clients)
                queries.append(QuerySetting(run_id=run_id, params=query.params))
        builds.append(replace(build, queries=tuple(queries)))
    return replace(spec, builds=tuple(builds)), table


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Sweep:
    """State of one run of :func:`run_sweep`."""

    def __init__(
        self,
        spec: SweepSpec,
        store: ResultsStore,
        dataset: Dataset,
        *,
        fingerprint: str,
        truth_path: Path,
        cache_dir: Path,
        threads: int,
        rebuild: bool,
        timeout: float | None,
        on_event: EventHandler | None,
        memory_check: bool = True,
        levels: dict[str, Level] | None = None,
    ) -> None:
        self.spec = spec
        self.levels = levels or {}
        self.store = store
        self.dataset = dataset
        self.fingerprint = fingerprint
        self.cache_dir = cache_dir
        self.threads = threads
        self.rebuild = rebuild
        self.memory_check = memory_check
        self.timeout = timeout
        self.on_event = on_event
        self.total = spec.n_runs
        self.done = 0
        self.outcome_counts = {"ran": 0, "failed": 0, "builds": 0, "cached_builds": 0}
        engine_refs = {}
        for build in spec.builds:
            cls = get_engine(build.engine)
            engine_refs[build.engine] = (cls.__module__, cls.__qualname__)
        self.worker_args = (
            spec.dataset_kwargs(),
            str(truth_path),
            engine_refs,
            str(store.path / WORKER_LOG),
        )
        self.worker: WorkerProcess | None = None
        self.phases: dict[str, float] = dict.fromkeys(PHASES, 0.0)

    def emit(self, kind: str, message: str = "", record: RunRecord | None = None) -> None:
        if self.on_event is not None:
            self.on_event(SweepEvent(kind, self.done, self.total, message, record))

    def close(self, graceful: bool = True) -> None:
        """Stop the worker: ask it to exit (graceful) or kill it at once (interrupted)."""
        if self.worker is not None:
            if graceful:
                self.worker.stop()
            else:
                self.worker.kill()
            self.worker = None

    def _record(
        self,
        build: BuildSetting,
        query: QuerySetting,
        status: str,
        error: str | None = None,
        measured: RunRecord | None = None,
        per_query: Any = None,
        build_info: dict | None = None,
    ) -> None:
        build_info = build_info or {}
        if measured is not None:
            record = replace(
                measured,
                run_id=query.run_id,
                status=status,
                error=error,
                finished_at=_utc_now(),
                label=build.label or None,
            )
        else:
            record = RunRecord.failed(
                query.run_id,
                status,
                error or status,
                engine=build.engine,
                build_params=build.resolved,
                query_params=query.params,
                measured_on={
                    "metric": self.dataset.metric,
                    "dataset": self.dataset.name,
                    "queries": self.dataset.n_queries,
                    **self.measure_of(query.run_id).record_fields(),
                },
                cached=build_info.get("cached"),
                build_seconds=build_info.get("build_seconds"),
                finished_at=_utc_now(),
            )
            record = replace(record, label=build.label or None)
        self.store.add(record, per_query)
        self.done += 1
        self.outcome_counts["ran"] += 1
        if status != "ok":
            self.outcome_counts["failed"] += 1
        self.emit("record", describe_setting(build.engine, build.params, query.params), record)

    def measure_of(self, run_id: str) -> Measure:
        """How the run ``run_id`` is measured: the sweep's measure at its concurrency."""
        threads, clients = self.levels.get(run_id, (1, None))
        measure = self.spec.measure
        return (
            measure
            if (threads, clients) == (1, None)
            else measure.but(search_threads=threads, clients=clients)
        )

    def index_directory(self, build: BuildSetting) -> Path:
        """Where the cache keeps the index of ``build``."""
        params = cache_params(
            build.engine, build.resolved, self.dataset.metric, self.dataset.dim, self.dataset.n_base
        )
        return index_dir(
            self.cache_dir, index_key(self.fingerprint, build.engine, params, self.dataset.metric)
        )

    def job(self, build: BuildSetting, remaining: list[QuerySetting], rebuild: bool) -> WorkerJob:
        """The job a worker runs for ``remaining`` query settings of ``build``."""
        return WorkerJob(
            engine=build.engine,
            params=build.params,
            index_dir=str(self.index_directory(build)),
            fingerprint=self.fingerprint,
            measure=self.spec.measure,
            queries=tuple((query.run_id, query.params) for query in remaining),
            rebuild=rebuild,
            memory_check=self.memory_check,
            threads=self.threads,
            concurrency={
                query.run_id: self.levels[query.run_id]
                for query in remaining
                if query.run_id in self.levels
            },
            policies={
                query.run_id: query.policy for query in remaining if query.policy is not None
            },
        )

    def record(
        self,
        build: BuildSetting,
        query: QuerySetting,
        status: str,
        error: str | None = None,
        measured: RunRecord | None = None,
        per_query: Any = None,
        build_info: dict | None = None,
    ) -> None:
        """Store one setting's outcome (measured: the worker's record) and report it."""
        self._record(build, query, status, error, measured, per_query, build_info)

    def run_build(self, build: BuildSetting, pending: list[QuerySetting]) -> None:
        """Measure ``pending`` query settings of one build, surviving worker failures."""
        rebuild = self.rebuild
        remaining = list(pending)
        label = describe_setting(build.engine, build.params)
        build_info: dict = {}
        while remaining:
            if self.worker is None:
                began = time.monotonic()
                self.worker = WorkerProcess.start(self.worker_args)
                self.phases["worker_start"] += time.monotonic() - began
            worker = self.worker
            job = self.job(build, remaining, rebuild)
            by_id = {query.run_id: query for query in remaining}
            current: QuerySetting | None = None
            mark = time.monotonic()
            phase = "build"
            deadline: float | None = None
            try:
                worker.send(job)
                while True:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    message = worker.receive(wait)
                    if message is None:  # time limit reached
                        worker.kill()
                        self.worker = None
                        limit = f"{self.timeout:g}s"
                        if phase == "build":
                            for query in remaining:
                                self._record(
                                    build,
                                    query,
                                    "timeout",
                                    f"building the index took longer than {limit}",
                                    build_info=build_info,
                                )
                            remaining = []
                        else:
                            assert current is not None
                            for query in self._timed_out(current, remaining):
                                self._record(
                                    build,
                                    query,
                                    "timeout",
                                    (
                                        f"the query run took longer than {limit}"
                                        if query.policy is None or query.policy.source != "adapt"
                                        else f"training its adapt policies took longer than {limit}"
                                    ),
                                    build_info=build_info,
                                )
                                remaining.remove(query)
                        break
                    kind = message[0]
                    now = time.monotonic()
                    if kind == "build_start":
                        mark = now
                        verb = "loading cached index" if message[1] else "building"
                        self.emit("build", f"{verb} {label}")
                        deadline = self._deadline()
                    elif kind == "build_done":
                        build_info = message[1]
                        self.phases["load" if build_info["cached"] else "build"] += now - mark
                        rebuild = False  # built now: a restarted worker must not build again
                        self.outcome_counts["builds"] += 1
                        if build_info["cached"]:
                            self.outcome_counts["cached_builds"] += 1
                        phase = "query"
                    elif kind == "build_failed":
                        for query in remaining:
                            self._record(build, query, "failed", f"build: {message[1]}")
                        remaining = []
                        break  # a failed build ends the job
                    elif kind == "query_start":
                        mark = now
                        current = by_id[message[1]]
                        self.emit(
                            "query", describe_setting(build.engine, build.params, current.params)
                        )
                        deadline = self._deadline()
                    elif kind == "result":
                        query = by_id[message[1]]
                        searched = min(timed_seconds(message[2]), now - mark)
                        self.phases["timed_search"] += searched
                        self.phases["scoring"] += now - mark - searched
                        self._record(build, query, "ok", measured=message[2], per_query=message[3])
                        self.phases["writing"] += time.monotonic() - now
                        remaining.remove(query)
                    elif kind == "query_failed":
                        query = by_id[message[1]]
                        self._record(build, query, "failed", message[2], build_info=build_info)
                        remaining.remove(query)
                    elif kind == "job_done":
                        break
            except WorkerDied:
                reason = worker.death_reason()
                worker.kill()
                self.worker = None
                if phase == "build" or current is None:
                    for query in remaining:
                        self._record(
                            build, query, "failed", f"build: {reason}", build_info=build_info
                        )
                    remaining = []
                else:
                    self._record(build, current, "failed", reason, build_info=build_info)
                    remaining.remove(current)

    @staticmethod
    def _timed_out(current: QuerySetting, remaining: list[QuerySetting]) -> list[QuerySetting]:
        """The settings a time limit hit while measuring ``current`` ends: ``current``, and
        for an adapt run every pending run its one adapt call would have trained (a new
        worker would only train them again, into the same limit)."""
        group = current.policy.adapt_group() if current.policy is not None else None
        if group is None:
            return [current]
        return [current] + [
            query
            for query in remaining
            if query is not current
            and query.policy is not None
            and query.policy.adapt_group() == group
        ]

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout


#: runs a sweep's plan: (the sweep, [(build, pending query settings)]); see run_sweep
PlanRunner = Callable[["_Sweep", list[tuple[BuildSetting, list[QuerySetting]]]], None]


def run_plan_locally(sweep: _Sweep, plan: list[tuple[BuildSetting, list[QuerySetting]]]) -> None:
    """Each build and its pending query settings in turn, in one local worker process."""
    for build, pending in plan:
        if pending:
            sweep.run_build(build, pending)


def default_results_name(dataset_name: str) -> str:
    """``<dataset>-<YYYYmmdd-HHMMSS>`` (local time)."""
    return f"{dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_resumable(meta: dict | None, identity: dict, dataset_facts: dict, path: Path) -> None:
    """Refuse to mix results of a different sweep or dataset into one folder."""
    if meta is None:
        return
    old_dataset = meta.get("dataset", {})
    if (
        old_dataset.get("fingerprint") != dataset_facts["fingerprint"]
        or old_dataset.get("queries_fingerprint") != dataset_facts["queries_fingerprint"]
        or old_dataset.get("metric") != dataset_facts["metric"]
    ):
        raise SweepError(
            f"{path} holds results for another dataset ({old_dataset.get('name', '?')}); "
            "choose another -o, or pass --force to start it over"
        )
    if meta.get("identity") != identity:
        raise SweepError(
            f"{path} holds results of a different sweep (settings, k, runs or mode differ); "
            "choose another -o, or pass --force to start it over"
        )


def policy_files(spec: SweepSpec) -> list[PolicySetting]:
    """The trained policy files a sweep measures (each once, in sweep order)."""
    found: dict[str, PolicySetting] = {}
    for build in spec.builds:
        for query in build.queries:
            if query.policy is not None and query.policy.source == "file":
                found.setdefault(str(query.policy.sha256), query.policy)
    return list(found.values())


def check_policy_sweep(spec: SweepSpec, elsewhere: bool) -> None:
    """InputError (one line) for what policy runs cannot do: adapt runs under a strict
    recall rule (annkit adapt trains and scores with the tolerant rule; policy files are
    scored like uniform settings, under either rule), or a plan run elsewhere (Ray)."""
    adapt_runs = any(
        query.policy is not None and query.policy.source == "adapt"
        for build in spec.builds
        for query in build.queries
    )
    if spec.recall_rule != "tolerant" and adapt_runs:
        raise InputError(
            f"{spec.source}: policy runs are scored with the tolerant recall "
            "rule; drop the strict rule or the policies"
        )
    if elsewhere:
        raise InputError(
            f"{spec.source}: policy runs are measured locally; drop --ray or the policies"
        )


def run_sweep(
    spec: SweepSpec,
    results_dir: str | Path | None = None,
    *,
    results_root: str | Path = "results",
    dataset: Dataset | None = None,
    rebuild: bool = False,
    force: bool = False,
    timeout: float | None = None,
    threads: int | None = None,
    on_event: EventHandler | None = None,
    memory_check: bool = True,
    search_threads: list[int] | None = None,
    clients: list[int] | None = None,
    run_plan: PlanRunner | None = None,
) -> SweepOutcome:
    """Run ``spec`` into ``results_dir`` (default ``<results_root>/<dataset>-<timestamp>``).

    Settings already stored with status ok are skipped (resume) unless ``force``, which
    starts the folder over. Indexes and ground truth are cached under
    ``<results_root>/.cache``; ``rebuild`` ignores cached indexes. ``timeout`` (seconds, per
    build and per query setting) overrides the sweep's; ``threads`` is for building
    (default: all cores). Searches are single-threaded unless ``search_threads`` (thread
    counts of the engine's batch search) or ``clients`` (counts of concurrent single-query
    clients; single-mode sweeps) is given: each query setting is then measured at each
    count, as its own record (run id ``<id>-t<N>`` / ``<id>-c<C>``). ``run_plan(sweep,
    plan)`` runs the (build, pending query settings) pairs elsewhere, e.g. on a Ray cluster
    (:mod:`annkit.distributed.ray_bench`); default: one local worker process at a time.
    Policy settings (:class:`~annkit.bench.spec.PolicySetting`) are measured once, with one
    thread and one client, and only locally; a policy file trained on another dataset is
    refused (SweepError) before anything runs, one trained on another build of the same
    params becomes a failed run.
    Unless not ``memory_check``, exact ground truth that cannot fit in memory is refused
    (ResourceError) and a build that cannot fit is recorded as failed.
    """
    started = time.perf_counter()
    results_root = Path(results_root)
    if clients and spec.mode != "single":
        raise InputError(
            f"{spec.source}: --clients sends one query per call: set "
            'mode = "single" in the sweep\'s [bench] table'
        )
    levels = concurrency_levels(search_threads, clients)
    for level_threads, level_clients in levels:
        check_concurrency(spec.mode, level_threads, level_clients)
    spec, level_of = with_concurrency(spec, levels)
    if spec.has_policies:
        check_policy_sweep(spec, run_plan is not None)
    if dataset is None:
        dataset = open_dataset(**spec.dataset_kwargs())
    opened = time.perf_counter() - started
    if spec.k > dataset.n_base:
        raise InputError(
            f"{spec.source}: k={spec.k} exceeds the {dataset.n_base} base vectors of {dataset.name}"
        )
    timeout = timeout if timeout is not None else spec.timeout
    threads = threads or os.cpu_count() or 1
    fingerprint = fingerprint_vectors(dataset.base)
    dataset_facts = {
        "name": dataset.name,
        "source": dataset.source,
        "metric": dataset.metric,
        "base": dataset.n_base,
        "queries": dataset.n_queries,
        "dim": dataset.dim,
        "fingerprint": fingerprint,
        "queries_fingerprint": fingerprint_vectors(dataset.queries),
        "ground_truth_depth": dataset.gt_depth,
    }
    for setting in policy_files(spec):
        problem = policy_dataset_problem(
            setting, dataset.metric, dataset.dim, dataset.n_base, fingerprint
        )
        if problem is not None:
            raise SweepError(problem)
    path = (
        Path(results_dir)
        if results_dir is not None
        else (results_root / default_results_name(dataset.name))
    )
    cache_dir = results_root / CACHE_DIR
    store = ResultsStore(path)
    identity = spec.identity()
    with store.lock():
        store.reload()
        meta = store.read_meta()
        if force:
            store.reset()
            meta = None
        else:
            check_resumable(meta, identity, dataset_facts, path)
        if meta is None:
            meta = {
                "annkit": __version__,
                "created": _utc_now(),
                "sweep_source": spec.source,
                "sweep": spec.text,
                "identity": identity,
                "dataset": dataset_facts,
                "k": spec.k,
                "mode": spec.mode,
                "runs": spec.runs,
                "machine": machine_facts(),
            }
            if spec.has_policies:
                meta["policy_files"] = [
                    {"path": setting.name, "sha256": setting.sha256}
                    for setting in policy_files(spec)
                ]
        meta["timeout"] = timeout
        meta["threads"] = threads
        meta["updated"] = _utc_now()
        store.write_meta(meta)
        if on_event is not None:
            on_event(
                SweepEvent(
                    "groundtruth",
                    0,
                    spec.n_runs,
                    f"exact neighbours of {dataset.n_queries:,} queries",
                )
            )
            notice = ground_truth_notice(dataset, spec.k)
            if notice:
                on_event(SweepEvent("notice", 0, spec.n_runs, notice))
        truth_started = time.perf_counter()
        _, truth_path, _ = cached_true_distances(
            cache_dir, dataset, spec.k, memory_check=memory_check
        )
        truth_seconds = time.perf_counter() - truth_started
        sweep = _Sweep(
            spec,
            store,
            dataset,
            fingerprint=fingerprint,
            truth_path=truth_path,
            cache_dir=cache_dir,
            threads=threads,
            rebuild=rebuild,
            timeout=timeout,
            on_event=on_event,
            memory_check=memory_check,
            levels=level_of,
        )
        finished = store.ok_run_ids()
        plan = [
            (build, [q for q in build.queries if q.run_id not in finished]) for build in spec.builds
        ]
        skipped = spec.n_runs - sum(len(pending) for _, pending in plan)
        sweep.done = skipped
        sweep.emit("start", f"{spec.n_runs} settings, {skipped} already done")
        try:
            (run_plan or run_plan_locally)(sweep, plan)
        except BaseException:
            sweep.close(graceful=False)
            raise
        sweep.close()
        phases = {
            **sweep.phases,
            "dataset": opened,
            "ground_truth": truth_seconds,
        }
        phases = {name: round(phases[name], 3) for name in PHASES}
        phases["other"] = round(max(0.0, time.perf_counter() - started - sum(phases.values())), 3)
        meta["phases"] = phases
        store.write_meta(meta)
        sweep.emit("finish")
        order = {run_id: position for position, run_id in enumerate(spec.run_ids())}
        records = sorted(
            store.records.values(), key=lambda record: order.get(record.run_id, len(order))
        )
    return SweepOutcome(
        results_dir=path,
        records=records,
        meta=meta,
        ran=sweep.outcome_counts["ran"],
        skipped=skipped,
        failed=sweep.outcome_counts["failed"],
        seconds=time.perf_counter() - started,
        builds=sweep.outcome_counts["builds"],
        cached_builds=sweep.outcome_counts["cached_builds"],
        phases=phases,
    )
