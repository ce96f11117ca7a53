"""Exact ground truth of a stream's search step, on the live set: the k nearest live ids of
each query, computed with :func:`annkit.groundtruth.compute_ground_truth` over the live rows
(gathered in bounded blocks) and mapped back to ids; with labels, among the live vectors
passing each query's filter (:func:`annkit.filtered.compute_filtered_ground_truth`). Cached
on disk, keyed by the dataset's fingerprint, the runbook step and the live set's digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from annkit.files import atomic_write
from annkit.filtered import compute_filtered_ground_truth
from annkit.groundtruth import candidate_margin, compute_ground_truth, default_block_rows
from annkit.labels import Labels
from annkit.types import GroundTruth

#: file suffix of a cached step truth
SUFFIX = ".truth.npz"


def live_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    live_ids: np.ndarray,
    live_rows: np.ndarray,
    k: int,
    metric: str,
    *,
    threads: int | None = None,
    block_rows: int | None = None,
    base_labels: Labels | None = None,
    query_labels: Labels | None = None,
) -> GroundTruth:
    """The exact top-min(k, live) live ids of each query: ids (nq, k') int64 (ids, not rows),
    distances (nq, k') float64 in the metric's convention, best first, ties to the lower id.
    With ``base_labels`` (one row per data row) and ``query_labels``, each query's neighbours
    are taken among the live vectors passing its filter; a row with fewer passing is padded
    with id -1 and distance +inf.

    ``live_ids`` (n,) ascending and ``live_rows`` (n,) their data rows. The live rows are
    gathered ``block_rows`` at a time (default: the ground-truth block size, about 1 GiB),
    each block's exact top-k' found by :func:`compute_ground_truth`, and the blocks' results
    merged: the global top-k' of each query is among its blocks' top-k'."""
    count = len(live_ids)
    depth = min(k, count)
    block = block_rows or default_block_rows(int(base.shape[1]), depth + candidate_margin(depth))
    block = max(block, depth)
    all_ids: list[np.ndarray] = []
    all_distances: list[np.ndarray] = []
    for start in range(0, count, block):
        rows = live_rows[start : start + block]
        order = np.argsort(rows, kind="stable")  # read the data in row order, then put back
        gathered = np.empty((len(rows), base.shape[1]), dtype=np.float32)
        gathered[order] = base[rows[order]]
        if base_labels is not None and query_labels is not None:
            truth = compute_filtered_ground_truth(
                gathered,
                queries,
                min(depth, len(rows)),
                metric,
                base_labels.take(rows),
                query_labels,
                threads=threads,
                memory_check=False,
            )
        else:
            truth = compute_ground_truth(
                gathered,
                queries,
                min(depth, len(rows)),
                metric,
                threads=threads,
                memory_check=False,
            )
        block_ids = live_ids[start : start + block]
        all_ids.append(np.where(truth.ids >= 0, block_ids[np.maximum(truth.ids, 0)], -1))
        all_distances.append(truth.distances)
    ids = np.concatenate(all_ids, axis=1)
    distances = np.concatenate(all_distances, axis=1)
    if len(all_ids) > 1:
        order = np.lexsort((ids, distances), axis=1)[:, :depth]
        ids = np.take_along_axis(ids, order, axis=1)
        distances = np.take_along_axis(distances, order, axis=1)
    return GroundTruth(ids=ids, distances=distances, metric=metric)


def truth_key(fingerprint: str, step: int, live_digest: str, k: int, metric: str) -> str:
    """The cache key of one step's truth."""
    text = f"{fingerprint}|step {step}|{live_digest}|k {k}|{metric}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_live_ground_truth(
    cache_dir: Path,
    key: str,
    base: np.ndarray,
    queries: np.ndarray,
    live_ids: np.ndarray,
    live_rows: np.ndarray,
    k: int,
    metric: str,
    *,
    threads: int | None = None,
    base_labels: Labels | None = None,
    query_labels: Labels | None = None,
) -> tuple[GroundTruth, bool]:
    """(the step's truth, whether it came from the cache): read from ``cache_dir/key``, else
    computed by :func:`live_ground_truth` and written there atomically."""
    path = cache_dir / f"{key}{SUFFIX}"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return (
                    GroundTruth(ids=stored["ids"], distances=stored["distances"], metric=metric),
                    True,
                )
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache entry is computed again
    truth = live_ground_truth(
        base,
        queries,
        live_ids,
        live_rows,
        k,
        metric,
        threads=threads,
        base_labels=base_labels,
        query_labels=query_labels,
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, ids=truth.ids, distances=truth.distances)
    return truth, False
