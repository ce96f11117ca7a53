"""Benchmark sweeps on Ray: each build runs in a Ray actor, which then measures every query
setting of that build on the index it holds (so on the same node), next to a ``flat``
reference measured by the same actor (``reference_qps``: the speed-up over exact search stays
meaningful on mixed nodes).

Everything else is the local sweep's (:func:`annkit.bench.runner.run_sweep`): the plan,
resume, the index cache (a node without the cached index builds it), atomic records and
failure handling: a build or query that raises, an actor whose process dies, or a time limit
reached becomes a failed / timed-out record and the sweep goes on; after a death or a time
limit in the query phase, a new actor loads the index and measures the remaining settings.
The dataset and its exact distances go to the object store once and reach each node once.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bench.job import WorkerJob
from annkit.bench.runner import SweepOutcome, _Sweep, run_sweep
from annkit.bench.spec import BuildSetting, QuerySetting, SweepSpec
from annkit.bench.store import per_query_arrays
from annkit.bench.worker import _register_engines, describe_error
from annkit.distributed.ray_backend import cluster_cpus, one_line, ray_session
from annkit.engines.base import reference_engine
from annkit.types import RunRecord

Plan = list[tuple[BuildSetting, list[QuerySetting]]]


class IndexActor:
    """Lives on one node for one build: builds or loads its index, then measures query
    settings on it (wrapped by ``ray.remote`` in :func:`run_plan_on_ray`)."""

    def __init__(
        self, dataset: Any, true_distances: np.ndarray, engine_refs: dict[str, tuple[str, str]]
    ) -> None:
        _register_engines(engine_refs)
        self.dataset = dataset
        self.true_distances = true_distances
        self.bundle: Any = None
        self.cached = False
        self.job: WorkerJob | None = None
        self.profile: Any = None
        self.truth: Any = None
        self.references: dict[tuple[int, int | None], float | None] = {}
        self.node = f"{socket.gethostname()}/{_node_id()[:8]}"

    def build(self, job: WorkerJob) -> tuple:
        """("build_done", info) or ("build_failed", message)."""
        from annkit.cache import obtain_index

        self.job = job
        try:
            self.bundle, self.cached = obtain_index(
                Path(job.index_dir),
                job.engine,
                job.params,
                self.dataset,
                fingerprint=job.fingerprint,
                threads=job.threads,
                rebuild=job.rebuild,
                memory_check=job.memory_check,
            )
        except Exception as exc:  # noqa: BLE001 - any engine failure becomes a failed run
            traceback.print_exc()
            return ("build_failed", describe_error(exc))
        return (
            "build_done",
            {
                "cached": self.cached,
                "build_seconds": self.bundle.build_seconds,
                "build_threads": self.bundle.manifest.get("build_threads"),
                "node": self.node,
            },
        )

    def measure(self, run_id: str, query_params: dict, threads: int, clients: int | None) -> tuple:
        """("result", run_id, record, per_query) or ("query_failed", run_id, message)."""
        try:
            evaluation = self._evaluate(self.bundle, query_params, threads, clients)
            reference = self._reference(threads, clients)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            return ("query_failed", run_id, describe_error(exc))
        record = replace(
            RunRecord.from_evaluation(evaluation, run_id),
            cached=self.cached,
            build_threads=self.bundle.manifest.get("build_threads"),
            node=self.node,
            reference_qps=reference,
        )
        return (
            "result",
            run_id,
            record,
            per_query_arrays(
                evaluation.per_query_recall, evaluation.per_query_distance_computations
            ),
        )

    def _evaluate(self, bundle: Any, query_params: dict, threads: int, clients: int | None) -> Any:
        from annkit.evaluate import Truth, measure_setting
        from annkit.slices import build_profile

        assert self.job is not None
        measure = self.job.measure.but(search_threads=threads, clients=clients)
        if self.truth is None:
            self.truth = Truth(self.dataset, measure.k, self.true_distances)
        if self.profile is None:
            self.profile = build_profile(self.dataset, self.true_distances, measure.k)
        return measure_setting(
            bundle, self.dataset, measure, query_params, truth=self.truth, profile=self.profile
        )

    def _reference(self, threads: int, clients: int | None) -> float | None:
        """QPS of exact ``flat`` search on this node at the same concurrency (measured once
        per actor and level; the flat index comes from the cache when it is there)."""
        from annkit.cache import index_dir, index_key, obtain_index

        level = (threads, clients)
        if level not in self.references:
            job = self.job
            assert job is not None
            directory = index_dir(
                Path(job.index_dir).parent,
                index_key(job.fingerprint, reference_engine(), {}, self.dataset.metric),
            )
            flat, _ = obtain_index(
                directory,
                reference_engine(),
                {},
                self.dataset,
                fingerprint=job.fingerprint,
                threads=1,
                memory_check=job.memory_check,
            )
            self.references[level] = self._evaluate(flat, {}, threads, clients).qps
        return self.references[level]


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@dataclass
class _Running:
    """One build's actor and where it is: the build call, or a query setting."""

    build: BuildSetting
    remaining: list[QuerySetting]
    actor: Any
    phase: str = "build"
    current: QuerySetting | None = None
    deadline: float | None = None
    build_info: dict = field(default_factory=dict)


def run_plan_on_ray(sweep: _Sweep, plan: Plan) -> None:
    """A :data:`annkit.bench.runner.PlanRunner`: the builds on Ray actors (as many at once
    as the cluster has CPUs, one CPU each), each measuring its query settings in turn."""
    import ray

    dataset_kwargs, truth_path, engine_refs, _ = sweep.worker_args
    dataset_ref = ray.put(sweep.dataset)
    truth_ref = ray.put(np.load(truth_path, allow_pickle=False))
    actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(IndexActor)
    waiting = deque((build, list(pending)) for build, pending in plan if pending)
    running: dict[Any, _Running] = {}
    slots = cluster_cpus(ray)
    rebuilt: set[str] = set()

    def deadline() -> float | None:
        return None if sweep.timeout is None else time.monotonic() + sweep.timeout

    def start(build: BuildSetting, remaining: list[QuerySetting]) -> None:
        actor: Any = actor_class.remote(dataset_ref, truth_ref, engine_refs)
        key = str(sweep.index_directory(build))
        rebuild = sweep.rebuild and key not in rebuilt
        rebuilt.add(key)
        job = sweep.job(build, remaining, rebuild)
        state = _Running(build, remaining, actor, deadline=deadline())
        verb = "building" if rebuild or not Path(job.index_dir).is_dir() else "loading"
        sweep.emit("build", f"{verb} {_label(build)} on Ray")
        running[actor.build.remote(job)] = state

    def next_query(state: _Running) -> None:
        if not state.remaining:
            ray.kill(state.actor, no_restart=True)
            return
        query = state.remaining[0]
        threads, clients = sweep.levels.get(query.run_id, (1, None))
        state.phase, state.current, state.deadline = "query", query, deadline()
        sweep.emit("query", f"{_label(state.build, query)} on Ray")
        running[state.actor.measure.remote(query.run_id, query.params, threads, clients)] = state

    def fail(state: _Running, status: str, error: str) -> None:
        """A build or query that failed, timed out or lost its actor; the sweep goes on."""
        ray.kill(state.actor, no_restart=True)
        if state.phase == "build":
            for query in state.remaining:
                sweep.record(
                    state.build, query, status, f"build: {error}", build_info=state.build_info
                )
            return
        assert state.current is not None
        sweep.record(state.build, state.current, status, error, build_info=state.build_info)
        state.remaining.remove(state.current)
        if state.remaining:  # a new actor (the index comes from the cache) for the rest
            waiting.appendleft((state.build, state.remaining))

    while waiting or running:
        while waiting and len(running) < slots:
            start(*waiting.popleft())
        deadlines = [s.deadline for s in running.values() if s.deadline is not None]
        wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        ready, _ = ray.wait(list(running), num_returns=1, timeout=wait)
        if not ready:
            now = time.monotonic()
            for ref, state in list(running.items()):
                if state.deadline is not None and state.deadline <= now:
                    del running[ref]
                    what = "building the index" if state.phase == "build" else "the query run"
                    fail(state, "timeout", f"{what} took longer than {sweep.timeout:g}s")
            continue
        ref = ready[0]
        state = running.pop(ref)
        try:
            message = ray.get(ref)
        except ray.exceptions.RayError as exc:
            fail(state, "failed", _death(exc))
            continue
        kind = message[0]
        if kind == "build_done":
            state.build_info = message[1]
            sweep.outcome_counts["builds"] += 1
            if state.build_info["cached"]:
                sweep.outcome_counts["cached_builds"] += 1
            next_query(state)
        elif kind == "build_failed":
            ray.kill(state.actor, no_restart=True)
            for query in state.remaining:
                sweep.record(state.build, query, "failed", f"build: {message[1]}")
        else:
            current = state.current
            assert current is not None and message[1] == current.run_id
            if kind == "result":
                sweep.record(state.build, current, "ok", measured=message[2], per_query=message[3])
            else:
                sweep.record(
                    state.build, current, "failed", message[2], build_info=state.build_info
                )
            state.remaining.remove(current)
            next_query(state)


def _label(build: BuildSetting, query: QuerySetting | None = None) -> str:
    from annkit.bench.runner import describe_setting

    return describe_setting(build.engine, build.params, query.params if query else None)


def _death(exc: BaseException) -> str:
    """A failed record's error for a Ray task that raised or whose actor died."""
    import ray

    if isinstance(exc, ray.exceptions.RayActorError | ray.exceptions.WorkerCrashedError):
        return "the engine process died on Ray (its worker exited or was killed)"
    return one_line(exc)


def run_sweep_on_ray(
    spec: SweepSpec,
    results_dir: str | Path | None = None,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    **kwargs: Any,
) -> SweepOutcome:
    """:func:`annkit.bench.runner.run_sweep` with builds and query settings on Ray: the
    cluster at ``address``, the Ray instance already initialised in this process, or a new
    local one (``num_cpus``, default all). ``kwargs`` as run_sweep's."""
    with ray_session(address, num_cpus=num_cpus):
        return run_sweep(spec, results_dir, run_plan=run_plan_on_ray, **kwargs)


__all__ = ["IndexActor", "run_plan_on_ray", "run_sweep_on_ray"]
