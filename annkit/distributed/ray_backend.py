"""Ray for annkit: starting or joining a cluster, and exact ground truth sharded over the base.

Wherever annkit starts Ray, usage reporting is off (``RAY_USAGE_STATS_ENABLED=0``, set before
Ray is imported), the dashboard is not started, the object store is capped to a share of the
available memory and workers' output stays out of the driver's terminal.

Ground truth: the base is split into contiguous row ranges (more shards than CPUs in the
cluster, so a slow node does not hold the rest back); each Ray task finds its range's best
candidates with :func:`annkit.groundtruth.shard_candidates`, and the driver merges them
(:func:`~annkit.groundtruth.merge_shards`) and re-ranks in float64
(:func:`~annkit.groundtruth.finish_ground_truth`): the same functions, tie rule (lower id
first) and re-rank as the local run, so the output equals it bit for bit. The base reaches
each node once: by its file path when it is memory-mapped (every node must read that path),
else through Ray's object store.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from annkit.errors import AnnkitError, EngineError, InputError
from annkit.faiss_util import prepare
from annkit.groundtruth import (
    ShardCandidates,
    check_ground_truth_sizes,
    default_block_rows,
    finish_ground_truth,
    merge_shards,
    shard_candidates,
)
from annkit.memory import available_bytes, check_memory, ground_truth_bytes
from annkit.types import GroundTruth

INSTALL_HINT = "--ray needs the ray extra: pip install 'annkit[ray]'"
#: share of the available memory a Ray instance annkit starts may use for its object store
OBJECT_STORE_SHARE = 0.25
OBJECT_STORE_MAX = 4 << 30
OBJECT_STORE_MIN = 80 << 20  # Ray refuses less than ~75 MiB
CONNECT_TIMEOUT = 10.0  # seconds to reach a given address before giving up


class RayUnavailable(AnnkitError):
    """Ray is not installed, or the cluster address cannot be reached."""


def import_ray() -> Any:
    """The ``ray`` module, imported with usage reporting off; RayUnavailable (one line on how
    to install it) when the extra is missing."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    return ray


def object_store_bytes() -> int:
    """The object store size annkit gives a Ray instance it starts."""
    available = available_bytes() or (2 << 30)
    return int(max(OBJECT_STORE_MIN, min(OBJECT_STORE_MAX, available * OBJECT_STORE_SHARE)))


def one_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's text (Ray wraps the cause in a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """RayUnavailable unless a TCP connection to ``address`` (``host:port`` or
    ``ray://host:port``; ``auto`` is left to Ray) opens within ``timeout`` seconds."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, sep, port_text = target.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise InputError(f"Ray address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayUnavailable(
            f"cannot reach a Ray cluster at {address} ({reason}); start one with "
            "'ray start --head', or give --ray without an address for a local instance"
        ) from None


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster: the one already initialised in this
    process, the cluster at ``address``, or (no address) a new local instance, which is shut
    down again on exit."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RayUnavailable(f"cannot join the Ray cluster at {address}: {first}") from None
    else:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=object_store_bytes(),
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


def base_handle(ray: Any, base: np.ndarray) -> tuple[Any, tuple | None]:
    """How tasks reach the base: (None, (file, offset, shape, dtype)) for a memory-mapped
    file (every node reads it from the same path), else (object ref, None): put in the object
    store once, read without copying on each node. Pass both to :func:`open_base` as task
    arguments (Ray resolves a top-level ref)."""
    if isinstance(base, np.memmap) and isinstance(base.filename, str) and base.ndim == 2:
        return None, (base.filename, int(base.offset), tuple(base.shape), base.dtype.str)
    return ray.put(np.ascontiguousarray(base)), None


def open_base(stored: np.ndarray | None, path: tuple | None) -> np.ndarray:
    """The base inside a task, from :func:`base_handle`'s pair."""
    if path is not None:
        filename, offset, shape, dtype = path
        return np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)
    assert stored is not None
    return stored


def _shard_task(
    stored: np.ndarray | None,
    path: tuple | None,
    prepared_queries: np.ndarray,
    start: int,
    stop: int,
    pool: int,
    metric: str,
    block_rows: int,
) -> ShardCandidates:
    """One Ray task: the candidates of base rows [start, stop) on one thread."""
    return shard_candidates(
        open_base(stored, path),
        prepared_queries,
        start,
        stop,
        pool,
        metric,
        threads=1,
        block_rows=block_rows,
    )


def shard_bounds(n_base: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous, nearly equal row ranges covering [0, n_base)."""
    shards = max(1, min(shards, n_base))
    edges = [round(n_base * part / shards) for part in range(shards + 1)]
    return [(edges[i], edges[i + 1]) for i in range(shards) if edges[i] < edges[i + 1]]


def cluster_cpus(ray: Any) -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def ray_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    address: str | None = None,
    shards: int | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    memory_check: bool = True,
    base_block_rows: int | None = None,
) -> GroundTruth:
    """:func:`annkit.groundtruth.compute_ground_truth` with the base split over ``shards``
    Ray tasks (default: twice the cluster's CPUs, at least 2): the same result bit for bit.

    ``address``: a running cluster (``HOST:PORT``), or None for the Ray instance already
    initialised in this process, else a new local one. ``threads``: for the driver's
    float64 re-rank. ``progress(done, total)`` counts finished shards.
    """
    n_base, dim = int(base.shape[0]), int(base.shape[1])
    n_queries = int(queries.shape[0])
    k, pool = check_ground_truth_sizes(n_base, n_queries, k)
    block_rows = base_block_rows or default_block_rows(dim, pool)
    with ray_session(address) as ray:
        count = shards or max(2, 2 * cluster_cpus(ray))
        bounds = shard_bounds(n_base, count)
        # the driver holds every shard's candidates at once before merging them
        merged_bytes = len(bounds) * n_queries * pool * 12
        check_memory(
            ground_truth_bytes(n_base, n_queries, dim, k, 0) + merged_bytes,
            f"merging exact ground truth for {n_queries:,} queries from {len(bounds)} shards",
            "use fewer shards or split the queries",
            force=not memory_check,
        )
        stored, path = base_handle(ray, base)
        prepared = ray.put(prepare(queries, metric))
        task = ray.remote(num_cpus=1, max_retries=1)(_shard_task)
        pending = [
            task.remote(stored, path, prepared, start, stop, pool, metric, block_rows)
            for start, stop in bounds
        ]
        done: list[ShardCandidates] = []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                done.extend(ray.get(ready))
            except ray.exceptions.RayError as exc:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise EngineError(f"a ground-truth shard failed on Ray: {one_line(exc)}") from None
            if progress is not None:
                progress(len(done), len(bounds))
    merged = merge_shards(done, pool)
    return finish_ground_truth(
        base, queries, merged, k, metric, threads=threads or os.cpu_count() or 1
    )


def ray_compute(address: str | None, shards: int | None = None) -> Callable[..., GroundTruth]:
    """A ``compute`` for :func:`annkit.groundtruth.write_ground_truth` running on Ray."""

    def compute(
        base: np.ndarray,
        queries: np.ndarray,
        k: int,
        metric: str,
        *,
        threads: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        memory_check: bool = True,
    ) -> GroundTruth:
        return ray_ground_truth(
            base,
            queries,
            k,
            metric,
            address=address,
            shards=shards,
            threads=threads,
            progress=progress,
            memory_check=memory_check,
        )

    return compute
