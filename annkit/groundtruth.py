"""Exact k-nearest neighbours by brute force (faiss flat) in bounded-memory blocks.

Candidates are found with float32 faiss search over base blocks (a memory-mapped base is
read one block at a time), then the best ``k + margin`` candidates of each query are
re-ranked with distances recomputed in float64; ties go to the lower base index. The
result is deterministic and does not depend on block sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.errors import InputError
from annkit.faiss_util import as_float32_rows, faiss_threads, prepare
from annkit.io import write_dataset_hdf5, write_neighbors_hdf5
from annkit.memory import check_memory, ground_truth_bytes
from annkit.metrics import exact_distances
from annkit.parallel import for_each_block
from annkit.sources import open_dataset
from annkit.types import GroundTruth

Progress = Callable[[int, int], None]
BLOCK_BYTES = 1 << 30  # at most ~1 GiB of prepared base vectors in memory at once


def _to_distance(scores: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        return scores  # squared L2: same order as L2
    return -scores  # inner product (unit rows for angular): larger is closer


UNIT_TOLERANCE = 2e-6  # squared norms this close to 1 (float32 rounding) count as unit rows


def _prepare_block(raw: np.ndarray, metric: str, sq_norms: np.ndarray | None,
                   threads: int, rows: int = 8192) -> np.ndarray:
    """A base block's float32 rows as faiss wants them, and, into ``sq_norms``, their float64
    squared norms. Angular rows are normalised (in float64) only when some row is not unit
    length already; float32 input is otherwise handed over without a copy. Rows differing
    from unit length by float32 rounding change only the candidate order, which the float64
    re-rank over the candidate margin settles."""
    if sq_norms is None:  # ip: neither norms nor normalisation
        return prepare(raw, metric)

    def norms(start: int) -> None:
        rows64 = np.asarray(raw[start : start + rows], dtype=np.float64)
        sq_norms[start : start + len(rows64)] = np.einsum("nd,nd->n", rows64, rows64)

    starts = range(0, len(raw), rows)
    for_each_block(norms, starts, threads)
    if metric != "angular" or np.all(np.abs(sq_norms - 1.0) <= UNIT_TOLERANCE):
        return as_float32_rows(raw)
    block = np.empty(raw.shape, dtype=np.float32)

    def normalise(start: int) -> None:
        rows64 = np.asarray(raw[start : start + rows], dtype=np.float64)
        lengths = np.sqrt(sq_norms[start : start + len(rows64)])[:, None]
        np.divide(rows64, lengths, out=rows64, where=lengths > 0)
        block[start : start + len(rows64)] = rows64

    for_each_block(normalise, starts, threads)
    return block


def candidate_margin(k: int) -> int:
    """Extra candidates kept per query for the float64 re-rank."""
    return max(8, k // 16)


def compute_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    threads: int | None = None,
    base_block_rows: int | None = None,
    query_block_rows: int = 4096,
    progress: Progress | None = None,
    memory_check: bool = True,
) -> GroundTruth:
    """Exact top-``k`` neighbours of each query: ids (nq, k) int64, distances (nq, k) float64
    in the metric's convention, best first, ties to the lower index.

    ``progress(done, total)`` is called after each block with counts of query rows done.
    Unless not ``memory_check``, a run whose estimated peak memory cannot fit is refused
    (ResourceError) before any work.
    """
    import faiss

    n_base, dim = int(base.shape[0]), int(base.shape[1])
    n_queries = int(queries.shape[0])
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if n_base == 0 or n_queries == 0:
        raise InputError("ground truth needs a non-empty base and query set")
    k = min(k, n_base)
    pool = min(n_base, k + candidate_margin(k))
    block_rows = base_block_rows or max(pool, BLOCK_BYTES // (4 * dim))
    check_memory(ground_truth_bytes(n_base, n_queries, dim, k, block_rows),
                 f"exact ground truth for {n_queries:,} queries over {n_base:,} vectors",
                 "split the queries into smaller files", force=not memory_check)
    prepared_queries = prepare(queries, metric)
    best_ids = np.full((n_queries, 0), -1, dtype=np.int64)
    best_dist = np.full((n_queries, 0), np.inf, dtype=np.float32)
    n_blocks = -(-n_base // block_rows)
    base_sq_norms = np.empty(n_base, dtype=np.float64) if metric != "ip" else None
    total = n_blocks * n_queries
    done = 0
    threads = threads or faiss.omp_get_max_threads()
    with faiss_threads(threads):
        for start in range(0, n_base, block_rows):
            raw = base[start : start + block_rows]
            norms = None if base_sq_norms is None else base_sq_norms[start : start + len(raw)]
            block = _prepare_block(raw, metric, norms, threads)
            index = faiss.IndexFlatL2(dim) if metric == "euclidean" else faiss.IndexFlatIP(dim)
            index.add(block)
            take = min(pool, len(block))
            block_ids = np.empty((n_queries, take), dtype=np.int64)
            block_dist = np.empty((n_queries, take), dtype=np.float32)
            for q_start in range(0, n_queries, query_block_rows):
                q_stop = min(q_start + query_block_rows, n_queries)
                scores, ids = index.search(prepared_queries[q_start:q_stop], take)
                block_ids[q_start:q_stop] = ids + start
                block_dist[q_start:q_stop] = _to_distance(scores, metric)
                done += q_stop - q_start
                if progress is not None:
                    progress(done, total)
            del index, block
            if best_ids.shape[1] == 0:
                best_ids, best_dist = block_ids, block_dist
            else:
                merged_ids = np.concatenate([best_ids, block_ids], axis=1)
                merged_dist = np.concatenate([best_dist, block_dist], axis=1)
                keep = np.argsort(merged_dist, axis=1, kind="stable")[:, :pool]
                best_ids = np.take_along_axis(merged_ids, keep, axis=1)
                best_dist = np.take_along_axis(merged_dist, keep, axis=1)
    exact = exact_distances(base, queries, best_ids, metric, base_sq_norms=base_sq_norms,
                            threads=threads)
    order = np.lexsort((best_ids, exact), axis=1)[:, :k]
    return GroundTruth(
        ids=np.take_along_axis(best_ids, order, axis=1),
        distances=np.take_along_axis(exact, order, axis=1),
        metric=metric,
    )


@dataclass(frozen=True)
class GroundTruthRun:
    """What :func:`write_ground_truth` did: the file written, its sizes and the seconds the
    exact search took (queries per second derived)."""

    output: str
    queries: int
    base: int
    k: int
    metric: str
    seconds: float

    @property
    def queries_per_second(self) -> float | None:
        return self.queries / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"output": self.output, "queries": self.queries, "base": self.base,
                "k": self.k, "metric": self.metric, "seconds": self.seconds,
                "queries_per_second": self.queries_per_second}


def write_ground_truth(
    base: str | Path,
    queries: str | Path | None,
    k: int,
    output: str | Path,
    *,
    metric: str | None = None,
    ids_only: bool = False,
    threads: int | None = None,
    memory_check: bool = True,
    progress: Progress | None = None,
) -> GroundTruthRun:
    """Exact top-``k`` of ``queries`` over ``base`` (or of a dataset file's test set over its
    train set when ``queries`` is None), written atomically to ``output``: a complete
    ann-benchmarks dataset, or only neighbors / distances when ``ids_only``."""
    dataset = open_dataset(base, queries=queries, metric=metric)
    started = time.perf_counter()
    truth = compute_ground_truth(dataset.base, dataset.queries, k, dataset.metric,
                                 threads=threads, progress=progress, memory_check=memory_check)
    seconds = time.perf_counter() - started
    if ids_only:
        write_neighbors_hdf5(output, truth.ids, truth.distances)
    else:
        write_dataset_hdf5(output, base=dataset.base, queries=dataset.queries,
                           metric=dataset.metric, neighbors=truth.ids,
                           distances=truth.distances, weights=dataset.weights)
    return GroundTruthRun(output=str(output), queries=dataset.n_queries, base=dataset.n_base,
                          k=int(truth.ids.shape[1]), metric=dataset.metric, seconds=seconds)
