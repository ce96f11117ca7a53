"""The benchmark worker: a child process that builds (or loads) indexes and measures them.

The runner starts it as ``python -m annkit.bench.worker FD`` and talks to it over the socket
FD (pickled messages, :class:`multiprocessing.connection.Connection`); the first message
carries the runner's ``sys.path`` and the arguments of :func:`serve`. Keeping native
code out of the runner's process means a crash, a hang or a leak in an engine costs one
run (recorded as failed or timed out) instead of the sweep. Timing happens here, in
:func:`annkit.evaluate.evaluate`, while the runner only waits.

Messages to the runner (tuples): ``("ready",)``, ``("fatal", message)``,
``("build_start", cached)``, ``("build_done", info)``, ``("build_failed", message)``,
``("query_start", run_id)``, ``("result", run_id, record, per_query)`` (per_query: a
dict of ``recall`` and ``distance_computations`` arrays, see ResultsStore.add),
``("query_failed", run_id, message)``, ``("job_done",)``. From the runner: a job dict or
None (stop).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bench.store import per_query_arrays
from annkit.errors import AnnkitError


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


def _run_job(
    conn: Any, job: dict, dataset: Any, true_distances: np.ndarray, profiles: dict
) -> None:
    from annkit.cache import obtain_index
    from annkit.evaluate import DEFAULT_QPS_TOLERANCE, evaluate, true_neighbor_ids
    from annkit.slices import build_profile

    directory = Path(job["index_dir"])
    will_load = directory.is_dir() and not job["rebuild"]
    conn.send(("build_start", will_load))
    try:
        bundle, cached = obtain_index(
            directory,
            job["engine"],
            job["params"],
            dataset,
            fingerprint=job["fingerprint"],
            threads=job["threads"],
            rebuild=job["rebuild"],
            memory_check=job.get("memory_check", True),
        )
    except Exception as exc:  # noqa: BLE001 - any engine failure becomes a failed run
        traceback.print_exc()
        conn.send(("build_failed", describe_error(exc)))
        return
    conn.send(
        (
            "build_done",
            {
                "cached": cached,
                "build_seconds": bundle.build_seconds,
                "build_threads": bundle.manifest.get("build_threads"),
            },
        )
    )
    levels = job.get("concurrency", {})
    policies = job.get("policies", {})
    adapt_runs = None
    for run_id, query_params in job["queries"]:
        search_threads, clients = levels.get(run_id, (1, None))
        conn.send(("query_start", run_id))
        try:
            if job["k"] not in profiles:  # query slices: the same for every setting
                profiles[job["k"]] = build_profile(dataset, true_distances, job["k"])
            rule = job.get("recall_rule", "tolerant")
            true_ids = None
            if rule == "strict":  # the true top-k ids: the same for every setting
                if ("true_ids", job["k"]) not in profiles:
                    profiles[("true_ids", job["k"])] = true_neighbor_ids(dataset, job["k"])
                true_ids = profiles[("true_ids", job["k"])]
            if run_id in policies:  # a per-query effort policy (annkit.bench.policies)
                from annkit.bench.policies import AdaptRuns, measure_policy_file

                entry = policies[run_id]
                if entry["source"] == "file":
                    measured, per_query = measure_policy_file(
                        bundle,
                        dataset,
                        entry,
                        job["k"],
                        job["mode"],
                        job["runs"],
                        true_distances,
                        profiles[job["k"]],
                    )
                else:  # trained here, cross-fitted: each query scored out of fold
                    if adapt_runs is None:
                        adapt_runs = AdaptRuns(
                            bundle, dataset, job["k"], true_distances, profiles[job["k"]], policies
                        )
                    measured, per_query = adapt_runs.measure(run_id)
            else:
                evaluation = evaluate(
                    bundle,
                    dataset,
                    job["k"],
                    query_params,
                    mode=job["mode"],
                    runs=job["runs"],
                    true_distances=true_distances,
                    qps_tolerance=job.get("qps_tolerance", DEFAULT_QPS_TOLERANCE),
                    profile=profiles[job["k"]],
                    search_threads=search_threads,
                    clients=clients,
                    recall_rule=rule,
                    true_ids=true_ids,
                )
                measured = evaluation.to_dict()
                per_query = per_query_arrays(
                    evaluation.per_query_recall,
                    evaluation.per_query_distance_computations,
                    evaluation.returned_ids,
                )
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            conn.send(("query_failed", run_id, describe_error(exc)))
            continue
        record = {
            **measured,
            "cached": cached,
            "build_threads": bundle.manifest.get("build_threads"),
        }
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
    profiles: dict = {}
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the runner is gone
            return
        if job is None:
            return
        _run_job(conn, job, dataset, true_distances, profiles)


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
