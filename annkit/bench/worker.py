"""The benchmark worker: a child process that builds (or loads) indexes and measures them.

The runner starts it as ``python -m annkit.bench.worker FD`` and talks to it over the socket
FD (pickled messages, :class:`multiprocessing.connection.Connection`); the first message
carries the runner's ``sys.path`` and the arguments of :func:`serve`. Keeping native
code out of the runner's process means a crash, a hang or a leak in an engine costs one
run (recorded as failed or timed out) instead of the sweep. Timing happens here (in
:func:`annkit.evaluate.measure_setting` and the policy path), while the runner only waits.

Messages to the runner (tuples): ``("ready",)``, ``("fatal", message)``,
``("build_start", cached)``, ``("build_done", info)``, ``("build_failed", message)``,
``("query_start", run_id)``, ``("result", run_id, record, per_query)`` (record: a
:class:`~annkit.types.RunRecord`; per_query: a dict of ``recall``, ``distance_computations``
and ``ids`` arrays, see ResultsStore.add), ``("query_failed", run_id, message)``,
``("job_done",)``. From the runner: a :class:`~annkit.bench.job.WorkerJob` or None (stop).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bench.job import WorkerJob
from annkit.bench.spec import FILTER_STRATEGY_PARAM
from annkit.bench.store import per_query_arrays
from annkit.errors import AnnkitError
from annkit.evaluate import Truth
from annkit.types import RunRecord


def describe_error(exc: BaseException) -> str:
    """One line for a record's ``error`` field."""
    text = " ".join(str(exc).split())
    if isinstance(exc, AnnkitError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _redirect_output(log_path: str | None) -> None:
    """Send native libraries' chatter (faiss warnings, crash messages) to the worker log."""
    if not log_path:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _register_engines(engine_refs: dict[str, tuple[str, str]]) -> None:
    """Make the registry hold the same engine classes as the runner's (plugins, fakes)."""
    from annkit.engines.base import get_engine, register
    from annkit.errors import ParamError

    for name, (module_name, qualname) in engine_refs.items():
        try:
            current = get_engine(name)
        except ParamError:
            current = None
        if current is not None and (current.__module__, current.__qualname__) == (
            module_name,
            qualname,
        ):
            continue
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
        register(target)


def _measure_query(
    job: WorkerJob,
    run_id: str,
    query_params: dict[str, Any],
    bundle: Any,
    dataset: Any,
    truth: Any,
    profile: Any,
    adapt_runs: Any,
) -> tuple[RunRecord, dict[str, np.ndarray | None]]:
    """One query setting's record (without where the index came from) and its per-query
    arrays: a uniform setting or a policy file through :func:`annkit.evaluate.score`, an
    adapt run from its cross-fitted training."""
    from annkit.evaluate import measure_setting

    measure = job.measure_of(run_id)
    query_params = dict(query_params)
    strategy = query_params.pop(FILTER_STRATEGY_PARAM, None)
    if strategy is not None:  # a sweep listing filter strategies: this setting's one
        measure = measure.but(filter_strategy=strategy)
    policy = job.policies.get(run_id)
    if policy is not None and policy.source != "file":  # trained here, cross-fitted
        return adapt_runs.measure(run_id)
    if policy is not None:  # a per-query effort policy file (annkit.bench.policies)
        from annkit.bench.policies import measure_policy_file

        evaluation = measure_policy_file(bundle, dataset, policy, measure, truth, profile)
    else:
        evaluation = measure_setting(
            bundle, dataset, measure, query_params, truth=truth, profile=profile
        )
    record = RunRecord.from_evaluation(evaluation, run_id)
    if strategy is not None:  # shown with the setting, as it was listed
        record = replace(
            record, query_params={**record.query_params, FILTER_STRATEGY_PARAM: strategy}
        )
    return record, per_query_arrays(
        evaluation.per_query_recall,
        evaluation.per_query_distance_computations,
        evaluation.returned_ids,
    )


def _run_job(conn: Any, job: WorkerJob, dataset: Any, truths: dict[int, Any]) -> None:
    from annkit.cache import obtain_index

    directory = Path(job.index_dir)
    will_load = directory.is_dir() and not job.rebuild
    conn.send(("build_start", will_load))
    try:
        bundle, cached = obtain_index(
            directory,
            job.engine,
            job.params,
            dataset,
            fingerprint=job.fingerprint,
            threads=job.threads,
            rebuild=job.rebuild,
            memory_check=job.memory_check,
        )
    except Exception as exc:  # noqa: BLE001 - any engine failure becomes a failed run
        traceback.print_exc()
        conn.send(("build_failed", describe_error(exc)))
        return
    build_threads = bundle.manifest.get("build_threads")
    conn.send(
        (
            "build_done",
            {
                "cached": cached,
                "build_seconds": bundle.build_seconds,
                "build_threads": build_threads,
            },
        )
    )
    k = job.measure.k
    truth, profile = truths[k]
    adapt_runs = None
    for run_id, query_params in job.queries:
        conn.send(("query_start", run_id))
        try:
            if profile is None:  # query slices: the same for every setting
                from annkit.slices import build_profile

                profile = build_profile(dataset, truth.distances, k)
                truths[k] = (truth, profile)
            if adapt_runs is None and any(p.source == "adapt" for p in job.policies.values()):
                from annkit.bench.policies import AdaptRuns

                adapt_runs = AdaptRuns(bundle, dataset, k, truth.distances, profile, job.policies)
            record, per_query = _measure_query(
                job, run_id, query_params, bundle, dataset, truth, profile, adapt_runs
            )
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            conn.send(("query_failed", run_id, describe_error(exc)))
            continue
        record = replace(record, cached=cached, build_threads=build_threads)
        conn.send(("result", run_id, record, per_query))
    conn.send(("job_done",))


def serve(
    conn: Any,
    dataset_kwargs: dict,
    truth_path: str,
    engine_refs: dict[str, tuple[str, str]],
    log_path: str | None,
) -> None:
    """Worker main loop: open the dataset once, then run jobs until told to stop."""
    _redirect_output(log_path)
    try:
        from annkit.sources import open_dataset

        _register_engines(engine_refs)
        dataset = open_dataset(**dataset_kwargs)
        true_distances = np.load(truth_path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        conn.send(("fatal", describe_error(exc)))
        return
    conn.send(("ready",))
    truths: dict[int, Any] = {}  # k -> (exact truth, query profile): the same for every job
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the runner is gone
            return
        if job is None:
            return
        if job.measure.k not in truths:
            truths[job.measure.k] = (Truth(dataset, job.measure.k, true_distances), None)
        _run_job(conn, job, dataset, truths)


def main(argv: list[str]) -> None:
    """Entry point: ``python -m annkit.bench.worker FD``."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides what an interrupt means
    conn = Connection(int(argv[0]))
    try:
        runner_path, *args = conn.recv()
    except (EOFError, OSError):
        return
    sys.path.extend(entry for entry in runner_path if entry not in sys.path)
    serve(conn, *args)


if __name__ == "__main__":
    main(sys.argv[1:])
