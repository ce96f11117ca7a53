"""Recall (ann-benchmarks definition), exact distances, QPS and latency percentiles."""

from __future__ import annotations

import numpy as np

from annkit.parallel import for_each_block

EPSILON = 1e-3  # ann-benchmarks' tolerance on the k-th true distance

#: how recall@k is scored: ``tolerant`` (ann-benchmarks: a returned neighbour counts when its
#: exact distance is within the k-th true distance + EPSILON) or ``strict`` (plain overlap of
#: the returned ids with the true top-k ids)
RECALL_RULES: tuple[str, ...] = ("tolerant", "strict")
DEFAULT_RECALL_RULE = "tolerant"


def exact_distances(
    base: np.ndarray,
    queries: np.ndarray,
    ids: np.ndarray,
    metric: str,
    block: int = 16,
    base_sq_norms: np.ndarray | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Distances (nq, k) float64 from each query to the base rows ``ids`` (nq, k), computed
    exactly from the vectors in float64; ids of -1 get +inf.

    euclidean = L2 distance, angular = 1 - cosine similarity, ip = -inner product.
    ``base_sq_norms`` (n,) float64, when given, saves recomputing the rows' squared norms.
    ``threads`` > 1 splits the query blocks over threads (numpy releases the GIL); every
    value is computed the same way whatever the thread count.
    """
    if metric not in ("euclidean", "angular", "ip"):
        raise ValueError(f"unknown metric {metric!r}")
    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(ids.shape, np.inf, dtype=np.float64)
    starts = range(0, ids.shape[0], block)

    def one_block(start: int) -> None:
        _exact_block(
            base, queries, ids, metric, base_sq_norms, out, start, min(start + block, ids.shape[0])
        )

    for_each_block(one_block, starts, threads)
    return out


def _exact_block(
    base: np.ndarray,
    queries: np.ndarray,
    ids: np.ndarray,
    metric: str,
    base_sq_norms: np.ndarray | None,
    out: np.ndarray,
    start: int,
    stop: int,
) -> None:
    """Fill ``out[start:stop]`` for :func:`exact_distances`."""
    chunk_ids = ids[start:stop]
    valid = chunk_ids >= 0
    flat_ids = np.where(valid, chunk_ids, 0).ravel()
    if isinstance(base, np.memmap):  # a sorted gather reads a memory-mapped file in order
        order = np.argsort(flat_ids, kind="stable")
        gathered = np.empty((flat_ids.size, base.shape[1]), dtype=np.float64)
        gathered[order] = base[flat_ids[order]]
    else:
        gathered = np.take(base, flat_ids, axis=0).astype(np.float64)
    vectors = gathered.reshape(chunk_ids.shape + (base.shape[1],))
    query = np.asarray(queries[start:stop], dtype=np.float64)
    dots = np.matmul(vectors, query[:, :, None])[:, :, 0]
    if metric == "ip":
        values = -dots
    else:
        if base_sq_norms is not None:
            vector_sq = base_sq_norms[flat_ids].reshape(chunk_ids.shape)
        else:
            vector_sq = np.einsum("qkd,qkd->qk", vectors, vectors, optimize=True)
        query_sq = np.sum(query * query, axis=1)[:, None]
        if metric == "euclidean":
            values = np.sqrt(np.maximum(vector_sq + query_sq - 2.0 * dots, 0.0))
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.maximum(1.0 - dots / np.sqrt(vector_sq * query_sq), 0.0)
    out[start:stop] = np.where(valid, values, np.inf)


def recall_per_query(
    true_distances: np.ndarray,
    found_ids: np.ndarray,
    found_distances: np.ndarray,
    k: int,
    epsilon: float = EPSILON,
) -> np.ndarray:
    """Per-query recall@k as ann-benchmarks defines it: the share of the first k returned
    neighbours whose exact distance is <= the k-th true distance + ``epsilon``.

    true_distances (nq, >=k) ascending; found_ids / found_distances (nq, >=k), the latter
    recomputed exactly. Missing ids (-1) never count; a duplicate id counts once.
    """
    if true_distances.shape[1] < k:
        raise ValueError(f"ground truth has depth {true_distances.shape[1]}, need k={k}")
    ids = np.asarray(found_ids[:, :k], dtype=np.int64)
    dist = np.array(found_distances[:, :k], dtype=np.float64)
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    repeated = np.zeros_like(ids, dtype=bool)
    repeated[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    duplicate = np.zeros_like(repeated)
    np.put_along_axis(duplicate, order, repeated, axis=1)
    dist[duplicate | (ids < 0)] = np.inf
    threshold = true_distances[:, k - 1 : k] + epsilon
    return np.count_nonzero(dist <= threshold, axis=1) / float(k)


def strict_recall_per_query(true_ids: np.ndarray, found_ids: np.ndarray, k: int) -> np.ndarray:
    """Per-query strict recall@k: the share of the true top-k ids (``true_ids`` (nq, >=k),
    nearest first) found among the first k returned ids (``found_ids`` (nq, >=k)). A
    neighbour at the same distance as the k-th but another id does not count; missing ids
    (-1) never count and a duplicate id counts once."""
    if true_ids.shape[1] < k:
        raise ValueError(f"ground truth has depth {true_ids.shape[1]}, need k={k}")
    truth = np.asarray(true_ids[:, :k], dtype=np.int64)
    found = np.asarray(found_ids[:, :k], dtype=np.int64)
    truth_sorted = np.sort(truth, axis=1)
    hits = np.zeros(truth.shape[0], dtype=np.int64)
    for row in range(truth.shape[0]):
        unique = np.unique(found[row][found[row] >= 0])
        hits[row] = np.count_nonzero(np.isin(unique, truth_sorted[row], assume_unique=False))
    return hits / float(k)


def duplicate_count(found_ids: np.ndarray) -> int:
    """Number of repeated (non -1) ids within result rows: an engine error when > 0."""
    ids = np.sort(np.asarray(found_ids, dtype=np.int64), axis=1)
    return int(np.count_nonzero((ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] >= 0)))


def latency_percentiles(latencies_seconds: np.ndarray | None) -> dict[str, float | None]:
    """p50 / p95 / p99 / mean of per-query latencies, in milliseconds (None when unmeasured)."""
    if latencies_seconds is None or len(latencies_seconds) == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    ms = np.asarray(latencies_seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(ms.mean())}


def recall_at_depth(
    true_ids: np.ndarray, found_ids: np.ndarray, top: int, among: int
) -> np.ndarray:
    """Per-query recall ``top@among`` (n,): the share of the true top-``top`` ids
    (``true_ids`` (n, >=top), nearest first, -1 = none) found among the first ``among``
    returned ids (``found_ids`` (n, >=among)), e.g. 10@100 for a re-rank pipeline that keeps
    100 candidates. By id (a tie at the same distance does not count); -1 never counts, a
    duplicate once; a query without true neighbours scores 1."""
    if true_ids.shape[1] < top:
        raise ValueError(f"ground truth has depth {true_ids.shape[1]}, need {top}")
    if found_ids.shape[1] < among:
        raise ValueError(f"results have depth {found_ids.shape[1]}, need {among}")
    truth = np.asarray(true_ids[:, :top], dtype=np.int64)
    found = np.asarray(found_ids[:, :among], dtype=np.int64)
    # make ids unique per row (row * span + id) so one isin call serves every query
    span = int(max(truth.max(initial=-1), found.max(initial=-1))) + 1
    rows = np.arange(truth.shape[0], dtype=np.int64)[:, None] * max(span, 1)
    returned = (found + rows)[found >= 0]
    hits = np.isin(truth + rows, returned) & (truth >= 0)
    valid = np.count_nonzero(truth >= 0, axis=1)
    counted = np.count_nonzero(hits, axis=1)
    return np.where(valid > 0, counted / np.maximum(valid, 1), 1.0)


def relative_distance_error(
    true_distances: np.ndarray, found_distances: np.ndarray, k: int
) -> float | None:
    """ann-benchmarks' relative error ``rel`` minus 1: over all queries, the sum of the
    exact distances of the first ``k`` returned neighbours (``found_distances`` (n, >=k),
    recomputed from the vectors; +inf where none was returned) over the sum of the ``k``
    true distances at the same positions (``true_distances`` (n, >=k) ascending), minus 1.
    0 for exact results, 0.05 when the returned neighbours are 5% farther in total. Only
    returned positions count (ann-benchmarks pairs true and returned neighbours in order);
    None when the true distances sum to less than 0.01 (ann-benchmarks: infinite)."""
    true = np.asarray(true_distances[:, :k], dtype=np.float64)
    found = np.asarray(found_distances[:, :k], dtype=np.float64)
    returned = np.isfinite(found) & np.isfinite(true)
    total_true = float(true[returned].sum())
    if total_true < 0.01:
        return None
    return float(found[returned].sum()) / total_true - 1.0
