"""Exact filtered k-nearest neighbours: each query's neighbours among the base vectors that
pass its filter (the AND of its labels; see :mod:`annkit.labels`).

Queries are grouped by filter; each filter's passing ids come from intersecting posting
lists, and the group is searched exactly among those vectors only, with the same pieces as
:func:`annkit.groundtruth.compute_ground_truth`: float32 faiss flat search over blocks of
the passing vectors (gathered a block at a time, so memory stays bounded), then the best
``k + margin`` candidates re-ranked with distances recomputed in float64 from the base, ties
to the lower base id. Unfiltered queries go through ``compute_ground_truth`` itself.

A query with fewer than ``k`` passing vectors gets a shorter truth: its row is padded with
id -1 and distance +inf (as search results are); a filter no base vector passes gives a row
of -1 / +inf.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from annkit.errors import InputError
from annkit.faiss_util import prepare
from annkit.groundtruth import (
    QUERY_BLOCK_ROWS,
    Progress,
    _keep_best,
    candidate_margin,
    check_ground_truth_sizes,
    compute_ground_truth,
    default_block_rows,
    shard_candidates,
)
from annkit.labels import Labels, group_by_filter, passing_ids, postings
from annkit.memory import check_memory, ground_truth_bytes, release_pages
from annkit.metrics import exact_distances
from annkit.types import GroundTruth


def check_label_sizes(
    base_labels: Labels, query_labels: Labels, n_base: int, n_queries: int
) -> None:
    """InputError when the labels do not hold one row per base vector / query."""
    for labels, rows, what in (
        (base_labels, n_base, "base vectors"),
        (query_labels, n_queries, "queries"),
    ):
        if labels.n_rows != rows:
            raise InputError(f"{labels.n_rows:,} rows of labels for {rows:,} {what}")


def subset_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    subset: np.ndarray,
    k: int,
    metric: str,
    *,
    threads: int = 1,
    block_rows: int | None = None,
    query_block_rows: int = QUERY_BLOCK_ROWS,
) -> GroundTruth:
    """Exact top-``k`` of ``queries`` among the base rows ``subset`` (ascending int64 ids,
    non-empty): ids (nq, min(k, len(subset))) int64 base ids best first and float64
    distances, ties to the lower id. The subset is gathered ``block_rows`` rows at a time."""
    n_subset = int(subset.shape[0])
    width = min(k, n_subset)
    pool = min(n_subset, width + candidate_margin(width))
    block_rows = block_rows or default_block_rows(int(base.shape[1]), pool)
    prepared = prepare(queries, metric)
    best_ids = np.full((len(queries), 0), -1, dtype=np.int64)
    best_dist = np.full((len(queries), 0), np.inf, dtype=np.float32)
    for start in range(0, n_subset, block_rows):
        chunk = subset[start : start + block_rows]
        vectors = np.asarray(base[chunk])  # ascending ids: an in-order read of a memmap
        shard = shard_candidates(
            vectors,
            prepared,
            0,
            len(chunk),
            pool,
            metric,
            threads=threads,
            block_rows=len(chunk),
            query_block_rows=query_block_rows,
        )
        ids = np.where(shard.ids >= 0, chunk[np.maximum(shard.ids, 0)], -1)
        best_ids, best_dist = _keep_best([(best_ids, best_dist), (ids, shard.distances)], pool)
        del vectors
        release_pages(base)
    exact = exact_distances(base, queries, best_ids, metric, threads=threads)
    order = np.lexsort((best_ids, exact), axis=1)[:, :width]
    return GroundTruth(
        ids=np.take_along_axis(best_ids, order, axis=1),
        distances=np.take_along_axis(exact, order, axis=1),
        metric=metric,
    )


def compute_filtered_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    base_labels: Labels,
    query_labels: Labels,
    *,
    threads: int | None = None,
    base_block_rows: int | None = None,
    query_block_rows: int = QUERY_BLOCK_ROWS,
    progress: Progress | None = None,
    memory_check: bool = True,
    compute: Callable[..., GroundTruth] | None = None,
) -> GroundTruth:
    """Exact top-``k`` neighbours of each query among the base vectors passing its filter:
    ids (nq, k) int64 best first, ties to the lower id, and distances (nq, k) float64 in the
    metric's convention; ``k`` is capped at the base size. A query with fewer than ``k``
    passing vectors has its row padded with id -1 and distance +inf.

    Unfiltered queries (no labels) are searched by ``compute`` (default
    :func:`annkit.groundtruth.compute_ground_truth`, same arguments). ``progress(done,
    total)`` counts query rows done. Unless not ``memory_check``, a run whose estimated peak
    memory cannot fit is refused (ResourceError) before any work."""
    import faiss

    n_base, dim = int(base.shape[0]), int(base.shape[1])
    n_queries = int(queries.shape[0])
    check_label_sizes(base_labels, query_labels, n_base, n_queries)
    k, pool = check_ground_truth_sizes(n_base, n_queries, k)
    block_rows = base_block_rows or default_block_rows(dim, pool)
    check_memory(
        ground_truth_bytes(n_base, n_queries, dim, k, block_rows),
        f"exact filtered ground truth for {n_queries:,} queries over {n_base:,} vectors",
        "split the queries into smaller files",
        force=not memory_check,
    )
    threads = threads or faiss.omp_get_max_threads()
    ids = np.full((n_queries, k), -1, dtype=np.int64)
    distances = np.full((n_queries, k), np.inf, dtype=np.float64)
    index = postings(base_labels)
    done = 0
    for query_filter, rows in group_by_filter(query_labels).items():
        group_queries = np.ascontiguousarray(queries[rows])
        truth: GroundTruth | None = None
        if not query_filter:

            def unfiltered_progress(
                part: int, total: int, offset: int = done, size: int = len(rows)
            ) -> None:
                if progress is not None and total:
                    progress(offset + (size * part) // total, n_queries)

            truth = (compute or compute_ground_truth)(
                base,
                group_queries,
                k,
                metric,
                threads=threads,
                progress=unfiltered_progress,
                memory_check=False,
            )
        else:
            subset = passing_ids(index, query_filter)
            if subset.size:
                truth = subset_ground_truth(
                    base,
                    group_queries,
                    subset,
                    k,
                    metric,
                    threads=threads,
                    block_rows=block_rows,
                    query_block_rows=query_block_rows,
                )
        if truth is not None:
            width = truth.ids.shape[1]
            ids[rows, :width] = truth.ids
            distances[rows, :width] = truth.distances
        done += len(rows)
        if progress is not None:
            progress(done, n_queries)
    return GroundTruth(ids=ids, distances=distances, metric=metric)
