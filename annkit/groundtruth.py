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
from annkit.memory import (
    available_bytes,
    check_memory,
    ground_truth_bytes,
    release_pages,
)
from annkit.metrics import exact_distances
from annkit.parallel import for_each_block
from annkit.sources import base_texts, open_dataset, query_texts
from annkit.types import GroundTruth

Progress = Callable[[int, int], None]
BLOCK_BYTES = 1 << 30  # at most ~1 GiB of prepared base vectors in memory at once
#: queries per faiss call: Ctrl-C lands between calls, so this bounds its latency (about
#: 1.2 s for 100k x 384 on one thread here; 4,096 took 4.7 s at the same throughput)
QUERY_BLOCK_ROWS = 1024


def _to_distance(scores: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        return scores  # squared L2: same order as L2
    return -scores  # inner product (unit rows for angular): larger is closer


#: queries re-ranked at a time over a memory-mapped base (a multiple of exact_distances'
#: 16-query blocks, so every value is computed as in one call)
RERANK_CHUNK = 64
UNIT_TOLERANCE = 2e-6  # squared norms this close to 1 (float32 rounding) count as unit rows


def _prepare_block(
    raw: np.ndarray, metric: str, sq_norms: np.ndarray | None, threads: int, rows: int = 8192
) -> np.ndarray:
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
    query_block_rows: int = QUERY_BLOCK_ROWS,
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
    k, pool = check_ground_truth_sizes(n_base, n_queries, k)
    block_rows = base_block_rows or default_block_rows(dim, pool)
    check_memory(
        ground_truth_bytes(n_base, n_queries, dim, k, block_rows),
        f"exact ground truth for {n_queries:,} queries over {n_base:,} vectors",
        "split the queries into smaller files",
        force=not memory_check,
    )
    threads = threads or faiss.omp_get_max_threads()
    shard = shard_candidates(
        base,
        prepare(queries, metric),
        0,
        n_base,
        pool,
        metric,
        threads=threads,
        block_rows=block_rows,
        query_block_rows=query_block_rows,
        progress=progress,
    )
    return finish_ground_truth(base, queries, shard, k, metric, threads=threads)


def default_block_rows(dim: int, pool: int) -> int:
    """Base rows per block: about :data:`BLOCK_BYTES` of float32 rows, or a quarter of the
    available memory (ANNKIT_MEMORY_LIMIT included) when that is less."""
    available = available_bytes()
    block_bytes = (
        BLOCK_BYTES if available is None else max(16 << 20, min(BLOCK_BYTES, available // 4))
    )
    return max(pool, block_bytes // (4 * dim))


def check_ground_truth_sizes(n_base: int, n_queries: int, k: int) -> tuple[int, int]:
    """(k, pool): k capped at the base size and the candidates kept per query for the
    float64 re-rank; InputError for k < 1 or an empty base or query set."""
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if n_base == 0 or n_queries == 0:
        raise InputError("ground truth needs a non-empty base and query set")
    k = min(k, n_base)
    return k, min(n_base, k + candidate_margin(k))


@dataclass(frozen=True)
class ShardCandidates:
    """The best ``pool`` candidates of every query among base rows [start, stop): global ids
    (nq, pool') int64 and float32 distances (smaller is closer, the metric's search order),
    and the rows' float64 squared norms (stop - start,), None for ip."""

    start: int
    stop: int
    ids: np.ndarray
    distances: np.ndarray
    sq_norms: np.ndarray | None


def shard_candidates(
    base: np.ndarray,
    prepared_queries: np.ndarray,
    start: int,
    stop: int,
    pool: int,
    metric: str,
    *,
    threads: int = 1,
    block_rows: int | None = None,
    query_block_rows: int = QUERY_BLOCK_ROWS,
    progress: Progress | None = None,
) -> ShardCandidates:
    """Candidates of the base rows [start, stop) (faiss flat search in blocks of
    ``block_rows``, merged keeping the ``pool`` best per query, earlier rows first on equal
    float32 distances). ``prepared_queries`` come from ``prepare(queries, metric)``. The whole
    base is one shard; a distributed run splits it into several and merges them with
    :func:`merge_shards`."""
    import faiss

    dim = int(base.shape[1])
    n_queries = int(prepared_queries.shape[0])
    block_rows = block_rows or default_block_rows(dim, pool)
    sq_norms = np.empty(stop - start, dtype=np.float64) if metric != "ip" else None
    best_ids = np.full((n_queries, 0), -1, dtype=np.int64)
    best_dist = np.full((n_queries, 0), np.inf, dtype=np.float32)
    total = -(-(stop - start) // block_rows) * n_queries
    done = 0
    with faiss_threads(threads):
        for block_start in range(start, stop, block_rows):
            raw = base[block_start : min(block_start + block_rows, stop)]
            offset = block_start - start
            norms = None if sq_norms is None else sq_norms[offset : offset + len(raw)]
            block = _prepare_block(raw, metric, norms, threads)
            index = faiss.IndexFlatL2(dim) if metric == "euclidean" else faiss.IndexFlatIP(dim)
            index.add(block)
            take = min(pool, len(block))
            block_ids = np.empty((n_queries, take), dtype=np.int64)
            block_dist = np.empty((n_queries, take), dtype=np.float32)
            for q_start in range(0, n_queries, query_block_rows):
                q_stop = min(q_start + query_block_rows, n_queries)
                scores, ids = index.search(prepared_queries[q_start:q_stop], take)
                block_ids[q_start:q_stop] = ids + block_start
                block_dist[q_start:q_stop] = _to_distance(scores, metric)
                done += q_stop - q_start
                if progress is not None:
                    progress(done, total)
            del index, block
            release_pages(raw)
            best_ids, best_dist = _keep_best([(best_ids, best_dist), (block_ids, block_dist)], pool)
    return ShardCandidates(
        start=start, stop=stop, ids=best_ids, distances=best_dist, sq_norms=sq_norms
    )


def _keep_best(
    parts: list[tuple[np.ndarray, np.ndarray]], pool: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``pool`` smallest distances per row over ``parts`` (ids, float32 distances), the
    earlier part first on equal distances."""
    parts = [part for part in parts if part[0].shape[1] > 0]
    if len(parts) == 1:
        return parts[0]
    merged_ids = np.concatenate([ids for ids, _ in parts], axis=1)
    merged_dist = np.concatenate([dist for _, dist in parts], axis=1)
    keep = np.argsort(merged_dist, axis=1, kind="stable")[:, :pool]
    return (
        np.take_along_axis(merged_ids, keep, axis=1),
        np.take_along_axis(merged_dist, keep, axis=1),
    )


def merge_shards(shards: list[ShardCandidates], pool: int) -> ShardCandidates:
    """One shard from shards covering consecutive base rows (any order given): the ``pool``
    best candidates per query, the lower rows first on equal float32 distances, and the
    squared norms of all rows."""
    shards = sorted(shards, key=lambda shard: shard.start)
    for before, after in zip(shards, shards[1:], strict=False):
        if before.stop != after.start:
            raise ValueError(
                f"shards do not cover consecutive rows ({before.stop} != {after.start})"
            )
    ids, distances = _keep_best([(shard.ids, shard.distances) for shard in shards], pool)
    norms = (
        None
        if shards[0].sq_norms is None
        else np.concatenate([shard.sq_norms for shard in shards if shard.sq_norms is not None])
    )
    return ShardCandidates(
        start=shards[0].start, stop=shards[-1].stop, ids=ids, distances=distances, sq_norms=norms
    )


def finish_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    shard: ShardCandidates,
    k: int,
    metric: str,
    *,
    threads: int = 1,
) -> GroundTruth:
    """Re-rank the candidates of a shard covering the whole base with distances recomputed
    in float64 and keep the best ``k``, ties to the lower index."""
    if shard.start != 0 or shard.stop != int(base.shape[0]):
        raise ValueError("finish_ground_truth needs candidates over the whole base")
    if isinstance(base, np.memmap):  # in chunks, each chunk's pages released after it:
        # the gather's page faults map neighbouring pages too (fault-around)
        exact = np.empty(shard.ids.shape, dtype=np.float64)
        for start in range(0, len(shard.ids), RERANK_CHUNK):
            stop = start + RERANK_CHUNK
            exact[start:stop] = exact_distances(
                base,
                queries[start:stop],
                shard.ids[start:stop],
                metric,
                base_sq_norms=shard.sq_norms,
                threads=threads,
            )
            release_pages(base)
    else:
        exact = exact_distances(
            base, queries, shard.ids, metric, base_sq_norms=shard.sq_norms, threads=threads
        )
    order = np.lexsort((shard.ids, exact), axis=1)[:, :k]
    return GroundTruth(
        ids=np.take_along_axis(shard.ids, order, axis=1),
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
    #: queries with a filter (labels), whose truth is among the passing vectors only, and
    #: how many of them have fewer than k passing (rows padded with -1); None: no labels
    filtered_queries: int | None = None
    short_queries: int | None = None

    @property
    def queries_per_second(self) -> float | None:
        return self.queries / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "output": self.output,
            "queries": self.queries,
            "base": self.base,
            "k": self.k,
            "metric": self.metric,
            "seconds": self.seconds,
            "queries_per_second": self.queries_per_second,
            "filtered_queries": self.filtered_queries,
            "short_queries": self.short_queries,
        }


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
    compute: Callable[..., GroundTruth] | None = None,
    max_queries: int | None = None,
    base_labels: str | Path | None = None,
    query_labels: str | Path | None = None,
) -> GroundTruthRun:
    """Exact top-``k`` of ``queries`` over ``base`` (or of a dataset file's test set over its
    train set when ``queries`` is None), written atomically to ``output``: a complete
    ann-benchmarks dataset, or only neighbors / distances when ``ids_only``. ``compute``
    (default :func:`compute_ground_truth`, same arguments) does the exact search, e.g.
    sharded over a Ray cluster.

    With labels (the dataset file's ``train_labels`` / ``test_labels`` groups, or the label
    files ``base_labels`` / ``query_labels``), each query's truth is taken among the base
    vectors passing its filter (:func:`annkit.filtered.compute_filtered_ground_truth`; rows
    with fewer than ``k`` passing are padded with id -1 and distance +inf), and the labels
    are written into the output dataset."""
    dataset = open_dataset(
        base,
        queries=queries,
        metric=metric,
        max_queries=max_queries,
        base_labels=base_labels,
        query_labels=query_labels,
    )
    if dataset.query_labels is not None and dataset.base_labels is None:
        raise InputError(
            f"{dataset.name}: the queries have labels but the base vectors have none; "
            "pass --base-labels FILE"
        )
    started = time.perf_counter()
    if dataset.query_labels is not None and dataset.base_labels is not None:
        from annkit.filtered import compute_filtered_ground_truth

        truth = compute_filtered_ground_truth(
            dataset.base,
            dataset.queries,
            k,
            dataset.metric,
            dataset.base_labels,
            dataset.query_labels,
            threads=threads,
            progress=progress,
            memory_check=memory_check,
            compute=compute,
        )
    else:
        truth = (compute or compute_ground_truth)(
            dataset.base,
            dataset.queries,
            k,
            dataset.metric,
            threads=threads,
            progress=progress,
            memory_check=memory_check,
        )
    seconds = time.perf_counter() - started
    if ids_only:
        write_neighbors_hdf5(
            output,
            truth.ids,
            truth.distances,
            attrs={
                "distance": dataset.metric,
                "k": int(truth.ids.shape[1]),
                "source": dataset.source or str(base),
                "dataset": dataset.name,
                **({"filter": "AND of each query's labels"} if dataset.query_labels else {}),
            },
        )
    else:  # the texts (and weights) of a dataset file go along with its vectors
        base_text = base_texts(dataset)
        query_text = query_texts(dataset)
        write_dataset_hdf5(
            output,
            base=dataset.base,
            queries=dataset.queries,
            metric=dataset.metric,
            neighbors=truth.ids,
            distances=truth.distances,
            weights=dataset.weights,
            base_text=base_text,
            query_text=query_text,
            base_labels=dataset.base_labels,
            query_labels=dataset.query_labels,
        )
    filtered_queries = short_queries = None
    if dataset.query_labels is not None:
        filtered_queries = int(np.count_nonzero(dataset.query_labels.labels_per_row() > 0))
        short_queries = int(np.count_nonzero(truth.ids[:, -1] < 0))
    return GroundTruthRun(
        output=str(output),
        queries=dataset.n_queries,
        base=dataset.n_base,
        k=int(truth.ids.shape[1]),
        metric=dataset.metric,
        seconds=seconds,
        filtered_queries=filtered_queries,
        short_queries=short_queries,
    )
