"""Features a policy knows about a query before its main search: query-only ones (distances
to coarse centroids of the base) and first-stage ones (from a cheap first search).

Every feature is computed from the query and the first stage's own output, never from the
ground truth. Each centroid distance counts as one distance computation.
"""

from __future__ import annotations

import numpy as np

from annkit.types import SearchResult

FIRST_STAGE_FEATURES: tuple[str, ...] = (
    "d1",
    "dk",
    "dk_minus_d1",
    "dk_over_d1",
    "mid_position",
    "spread",
    "lid_first",
)
CENTROID_FEATURES: tuple[str, ...] = ("c1", "c2_minus_c1", "c_mean_minus_c1")
KMEANS_SAMPLE = 8192
KMEANS_ITERATIONS = 12


def metric_distances(queries: np.ndarray, points: np.ndarray, metric: str) -> np.ndarray:
    """All distances (nq, m) float64 in the metric's convention (angular = 1 - cosine)."""
    q = np.asarray(queries, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    if metric == "ip":
        return -(q @ p.T)
    if metric == "angular":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        pn = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-30)
        return 1.0 - np.clip(qn @ pn.T, -1.0, 1.0)
    sq = (q * q).sum(axis=1)[:, None] + (p * p).sum(axis=1)[None, :] - 2.0 * (q @ p.T)
    return np.sqrt(np.maximum(sq, 0.0))


def coarse_centroids(base: np.ndarray, metric: str, count: int, seed: int) -> np.ndarray:
    """``count`` k-means centroids (count, d) float32 of a seeded sample of the base
    (Lloyd iterations in numpy, deterministic). Empty (0, d) when count is 0."""
    dim = int(base.shape[1])
    if count <= 0:
        return np.zeros((0, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    n_base = int(base.shape[0])
    size = min(n_base, max(KMEANS_SAMPLE, count))
    rows = np.sort(rng.choice(n_base, size=size, replace=False))
    sample = np.asarray(base[rows], dtype=np.float64)
    if metric == "angular":
        sample /= np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-30)
    count = min(count, size)
    centroids = sample[rng.choice(size, size=count, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assign = np.argmin(metric_distances(sample, centroids, "euclidean"), axis=1)
        for cluster in range(count):
            members = sample[assign == cluster]
            if len(members):
                centroids[cluster] = members.mean(axis=0)
    return centroids.astype(np.float32)


def feature_names(n_centroids: int) -> list[str]:
    """Names of a policy's feature columns: first-stage ones, centroid summaries, then the
    distance to each centroid (``centroid_0`` ..)."""
    return (
        list(FIRST_STAGE_FEATURES)
        + list(CENTROID_FEATURES)
        + [f"centroid_{i}" for i in range(n_centroids)]
    )


def centroid_features(queries: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    """(nq, 3 + m): distance to the nearest centroid, gap to the second, gap to the mean,
    then the distance to each of the m centroids (NaN summaries when m is 0)."""
    n_queries = int(queries.shape[0])
    if centroids.shape[0] == 0:
        return np.full((n_queries, len(CENTROID_FEATURES)), np.nan)
    each = metric_distances(queries, centroids, metric)
    dist = np.sort(each, axis=1)
    second = dist[:, 1] if dist.shape[1] > 1 else dist[:, 0]
    return np.column_stack([dist[:, 0], second - dist[:, 0], dist.mean(axis=1) - dist[:, 0], each])


def no_first_stage(n_queries: int) -> np.ndarray:
    """First-stage feature columns (nq, F1) of a policy without a first stage: all NaN."""
    return np.full((n_queries, len(FIRST_STAGE_FEATURES)), np.nan)


def first_stage_features(result: SearchResult) -> np.ndarray:
    """(nq, len(FIRST_STAGE_FEATURES)) from a first search: nearest and k-th distance, their
    gap and ratio, where the middle neighbour sits between them, the spread (std / mean
    absolute distance) and an LID estimate from the k found distances (NaN where
    undefined). Nothing depends on distance counts, which timed searches do not take."""
    d = np.asarray(result.distances, dtype=np.float64)
    d = np.where(np.isfinite(d), d, np.nan)
    d1, dk = d[:, 0], np.nanmax(d, axis=1)
    middle = d[:, d.shape[1] // 2]
    gap = dk - d1
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d1 > 0, dk / d1, np.nan)
        position = np.where(gap > 0, (middle - d1) / gap, np.nan)
        spread = np.nanstd(d, axis=1) / np.nanmean(np.abs(d), axis=1)
        positive = (d > 0) & (dk[:, None] > 0)
        logs = np.where(
            positive, np.log(np.where(positive, d, 1.0) / np.where(dk > 0, dk, 1.0)[:, None]), 0.0
        )
        mean_log = logs.sum(axis=1) / np.maximum(positive.sum(axis=1), 1)
        lid = np.where(mean_log < 0, -1.0 / mean_log, np.nan)
    return np.column_stack([d1, dk, gap, ratio, position, spread, lid])
