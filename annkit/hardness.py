"""Per-query hardness: local intrinsic dimensionality, relative contrast, expansion and
out-of-distribution score from the ground truth, the hardness quartiles and hardest share
of queries, and Spearman correlation with another per-query quantity (e.g. effort).

Pure numpy; no printing, no file I/O. Distances follow the metric's convention (smaller is
closer): ``euclidean`` = L2 distance, ``angular`` = 1 - cosine similarity, ``ip`` = -inner
product. Ground-truth distances ``gt_distances`` are ``(nq, K)`` sorted ascending per row.

Hardness directions (see ``HARDER_IS_HIGHER``): LID higher = harder; relative contrast
lower = harder; expansion lower (closer to 1) = harder; OOD higher = harder. A NaN hardness
value means "undefined" and slices put it with the hardest queries.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from annkit.longtail import LongtailError, _half_up, _matrix, _vector
from annkit.types import normalize_metric

HARDER_IS_HIGHER: dict[str, bool] = {"lid": True, "rc": False, "expansion": False, "ood": True}
"""Per hardness measure: True when a larger value means a harder query."""

_BLOCK_ENTRIES = 1 << 22  # distance-matrix entries per block (32 MiB of float64)
_SAMPLE_CHUNK = 1024  # sampled rows compared against the base at once


def _gt_columns(gt_distances: np.ndarray, k: int | None) -> tuple[np.ndarray, int]:
    """Validated float64 ground-truth distances and the resolved depth ``k`` (1 <= k <= K)."""
    gt = _matrix(gt_distances, "gt_distances").astype(np.float64, copy=False)
    depth = gt.shape[1]
    k = depth if k is None else int(k)
    if not 1 <= k <= depth:
        raise LongtailError(f"k must be between 1 and the ground-truth depth {depth}, got {k}")
    with np.errstate(invalid="ignore"):
        unsorted = np.diff(gt, axis=1) < 0
    if unsorted.any():
        raise LongtailError("gt_distances must be sorted ascending along each row")
    return gt, k


# --------------------------------------------------------------------------- measures


def lid_mle(gt_distances: np.ndarray, k: int | None = None) -> np.ndarray:
    """Local intrinsic dimensionality per query (maximum-likelihood estimate), ``(nq,)``.

    LID = -1 / mean_i ln(d_i / d_k) over the first ``k`` ground-truth distances (default all
    K columns; the i = k term is 0 and counts, as in Amsaleg et al. 2015). Zero distances
    (copies of the query in the base) are left out of the mean. NaN when undefined: d_k == 0,
    all remaining terms 0 (neighbours equidistant), or a negative / non-finite distance.
    Distances must scale like a radius (L2, not squared; ``hardness_measures`` converts).
    """
    gt, k = _gt_columns(gt_distances, k)
    d = gt[:, :k]
    d_k = d[:, -1:]
    valid_row = np.isfinite(d).all(axis=1) & (d >= 0).all(axis=1) & (d_k[:, 0] > 0)
    keep = d > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(keep & valid_row[:, None], np.log(d / d_k), 0.0)
        count = keep.sum(axis=1)
        mean_log = logs.sum(axis=1) / np.maximum(count, 1)
        lid = -1.0 / mean_log
    lid[~valid_row | (mean_log >= 0)] = np.nan
    return lid


def relative_contrast(
    mean_sample_distance: np.ndarray, gt_distances: np.ndarray, k: int | None = None
) -> np.ndarray:
    """Relative contrast per query, ``(nq,)``: mean distance to a base sample / d_k.

    ``mean_sample_distance`` ``(nq,)`` comes from ``mean_distance_to_sample``; d_k is the
    k-th ground-truth distance (default: last column). Lower = harder. d_k == 0 gives inf
    (a duplicate is trivially found); NaN when both are 0 or an input is negative/NaN.
    """
    gt, k = _gt_columns(gt_distances, k)
    mean = np.asarray(mean_sample_distance, dtype=np.float64)
    if mean.shape != (gt.shape[0],):
        raise LongtailError(
            f"mean_sample_distance must have shape ({gt.shape[0]},), got {mean.shape}"
        )
    d_k = gt[:, k - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = mean / d_k
    rc[(mean < 0) | (d_k < 0) | np.isnan(mean) | np.isnan(d_k)] = np.nan
    return rc


def expansion(gt_distances: np.ndarray, k: int) -> np.ndarray:
    """Expansion per query, ``(nq,)``: d_2k / d_k. Closer to 1 = harder.

    Needs ground truth at least 2k deep (LongtailError otherwise). NaN when d_k == 0 or a
    distance is negative / non-finite.
    """
    gt, k = _gt_columns(gt_distances, k)
    if gt.shape[1] < 2 * k:
        raise LongtailError(
            f"expansion at k={k} needs ground truth {2 * k} deep, got {gt.shape[1]}"
        )
    d_k, d_2k = gt[:, k - 1], gt[:, 2 * k - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d_2k / d_k
    ratio[~((d_k > 0) & np.isfinite(d_k) & np.isfinite(d_2k))] = np.nan
    return ratio


def ood_score(query_nn_distance: np.ndarray, base_nn_distances: np.ndarray) -> np.ndarray:
    """Out-of-distribution score per query (the primary ``ood``), ``(nq,)``.

    The query's distance to its nearest base point divided by the median nearest-neighbour
    distance among base points (``base_nn_distances`` ``(m,)``): 1 = typical, > 1 = farther
    from the data than a typical base point. Higher = harder. A query at distance 0 scores 0;
    a positive distance over a zero median scores inf. Distances must be >= 0.
    """
    query_nn = np.asarray(query_nn_distance, dtype=np.float64)
    base_nn = _vector(base_nn_distances, "base_nn_distances")
    if query_nn.ndim != 1:
        raise LongtailError(f"query_nn_distance must be 1-D, got shape {query_nn.shape}")
    if (base_nn < 0).any() or (query_nn < 0).any():
        raise LongtailError("ood_score needs distances >= 0 (use a euclidean view for ip)")
    median = float(np.median(base_nn))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = query_nn / median
    score[query_nn == 0] = 0.0
    return score


# --------------------------------------------------------------------------- base samples


@dataclass(frozen=True)
class _Space:
    """How rows become float64 vectors before computing ``metric`` distances.

    kind "raw": as given; "normalize": unit length (angular as L2 chords); "augment": the
    inner-product-to-L2 reduction (base [x, sqrt(M - |x|^2)], query [x, 0], M = max |x|^2).
    """

    metric: str
    kind: str = "raw"
    max_sq_norm: float = 0.0

    def base_rows(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float64)
        if self.kind == "normalize":
            return _unit_rows(x)
        if self.kind == "augment":
            extra = np.sqrt(np.maximum(self.max_sq_norm - np.einsum("ij,ij->i", x, x), 0.0))
            return np.hstack([x, extra[:, None]])
        return x

    def query_rows(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float64)
        if self.kind == "normalize":
            return _unit_rows(x)
        if self.kind == "augment":
            return np.hstack([x, np.zeros((x.shape[0], 1))])
        return x


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _pairwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """All distances ``(len(a), len(b))`` between float64 rows, metric convention."""
    if metric == "ip":
        return -(a @ b.T)
    if metric == "angular":
        return 1.0 - np.clip(_unit_rows(a) @ _unit_rows(b).T, -1.0, 1.0)
    sq = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
    sq -= 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def _paired(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Distance between row i of ``a`` and row i of ``b``, ``(len(a),)``, without the
    cancellation of ``_pairwise`` (exact copies give exactly 0)."""
    if metric == "ip":
        return -np.einsum("ij,ij->i", a, b)
    if metric == "angular":
        ua, ub = _unit_rows(a), _unit_rows(b)
        both = (np.abs(ua).sum(axis=1) > 0) & (np.abs(ub).sum(axis=1) > 0)
        chord_sq = np.einsum("ij,ij->i", ua - ub, ua - ub)
        return np.where(both, 0.5 * chord_sq, 1.0)
    diff = a - b
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _sample_indices(n: int, sample_size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of min(sample_size, n) rows out of n."""
    if int(sample_size) < 1:
        raise LongtailError(f"sample_size must be >= 1, got {sample_size}")
    size = min(int(sample_size), n)
    if size == n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False))


def _blocks(n: int, rows_per_block: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, rows_per_block):
        yield start, min(start + rows_per_block, n)


def _mean_to_sample(
    base: np.ndarray, queries: np.ndarray, space: _Space, sample_size: int, seed: int
) -> np.ndarray:
    sample = space.base_rows(base[_sample_indices(base.shape[0], sample_size, seed)])
    out = np.empty(queries.shape[0])
    step = max(1, _BLOCK_ENTRIES // sample.shape[0])
    for start, stop in _blocks(queries.shape[0], step):
        block = space.query_rows(queries[start:stop])
        out[start:stop] = _pairwise(block, sample, space.metric).mean(axis=1)
    return out


def _nn_of_sample(base: np.ndarray, space: _Space, sample_size: int, seed: int) -> np.ndarray:
    n = base.shape[0]
    if n < 2:
        raise LongtailError("nearest-neighbour distances need at least 2 base rows")
    indices = _sample_indices(n, sample_size, seed)
    best = np.full(indices.size, np.inf)
    for s_start, s_stop in _blocks(indices.size, _SAMPLE_CHUNK):
        own = indices[s_start:s_stop]
        rows = space.base_rows(base[own])
        local = np.arange(own.size)
        step = max(1, _BLOCK_ENTRIES // own.size)
        for b_start, b_stop in _blocks(n, step):
            block = space.base_rows(base[b_start:b_stop])
            dist = _pairwise(rows, block, space.metric)
            inside = (own >= b_start) & (own < b_stop)
            dist[local[inside], own[inside] - b_start] = np.inf  # exclude self by index
            nearest = np.argmin(dist, axis=1)
            candidate = _paired(rows, block[nearest], space.metric)
            candidate[~np.isfinite(dist[local, nearest])] = np.inf  # block held only self
            chunk_best = best[s_start:s_stop]
            np.minimum(chunk_best, candidate, out=chunk_best)
    return best


def mean_distance_to_sample(
    base: np.ndarray, queries: np.ndarray, metric: str, sample_size: int = 1000, seed: int = 0
) -> np.ndarray:
    """Mean distance from each query to a fixed seeded random sample of base rows, ``(nq,)``.

    ``base`` ``(n, d)``, ``queries`` ``(nq, d)``; min(sample_size, n) rows are sampled
    without replacement; distances in float64 in the metric's convention.
    """
    base_m, queries_m = _matrix(base, "base"), _matrix(queries, "queries")
    if base_m.shape[1] != queries_m.shape[1]:
        raise LongtailError(
            f"base has dimension {base_m.shape[1]} but queries have {queries_m.shape[1]}"
        )
    return _mean_to_sample(base_m, queries_m, _Space(normalize_metric(metric)), sample_size, seed)


def base_nn_distances(
    base: np.ndarray, metric: str, sample_size: int = 1000, seed: int = 0
) -> np.ndarray:
    """For a seeded sample of base rows, the distance to the nearest OTHER base row, ``(m,)``.

    m = min(sample_size, n), in sorted sample-index order. Self is excluded by index, so exact
    duplicates count as neighbours at distance 0. Exact float64, computed in blocks with
    bounded memory (about 32 MiB of distances at a time).
    """
    return _nn_of_sample(_matrix(base, "base"), _Space(normalize_metric(metric)), sample_size, seed)


def _euclidean_view(
    gt: np.ndarray, base: np.ndarray, queries: np.ndarray, metric: str
) -> tuple[np.ndarray, _Space]:
    """Ground-truth distances and row transform turning ``metric`` into an L2 problem with
    the same neighbour order: angular -> chords of unit vectors, sqrt(2 (1 - cos));
    ip -> the MIPS-to-L2 augmentation, sqrt(|q|^2 + M - 2 <q, x>)."""
    if metric == "euclidean":
        return gt, _Space("euclidean")
    if metric == "angular":
        return np.sqrt(2.0 * np.maximum(gt, 0.0)), _Space("euclidean", "normalize")
    max_sq_norm = 0.0
    for start, stop in _blocks(base.shape[0], 65536):
        block = np.asarray(base[start:stop], dtype=np.float64)
        max_sq_norm = max(max_sq_norm, float(np.einsum("ij,ij->i", block, block).max()))
    q = np.asarray(queries, dtype=np.float64)
    q_sq = np.einsum("ij,ij->i", q, q)[:, None]
    converted = np.sqrt(np.maximum(q_sq + max_sq_norm + 2.0 * gt, 0.0))
    return converted, _Space("euclidean", "augment", max_sq_norm)


def hardness_measures(
    gt_distances: np.ndarray,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    k: int,
    sample_size: int = 1000,
    seed: int = 0,
    lid_k: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-query hardness ``(nq,)`` each: ``lid``, ``rc``, ``expansion`` (only when the ground
    truth is >= 2k deep), ``ood`` (ratio form, see ``ood_score``).

    RC and expansion use d_k; LID uses the first ``lid_k`` distances (None = the whole
    ground-truth depth K).

    ``gt_distances`` ``(nq, K)`` in the metric's convention, ascending. All measures are
    computed in an L2 view of the problem with the same neighbour order (angular: unit-vector
    chords; ip: the MIPS-to-L2 augmentation), so ratios and logs are meaningful for every
    metric. RC and OOD use one seeded base sample of min(sample_size, n) rows.
    """
    gt, k = _gt_columns(gt_distances, k)
    base_m, queries_m = _matrix(base, "base"), _matrix(queries, "queries")
    if queries_m.shape[0] != gt.shape[0]:
        raise LongtailError(
            f"gt_distances has {gt.shape[0]} rows but there are {queries_m.shape[0]} queries"
        )
    if base_m.shape[1] != queries_m.shape[1]:
        raise LongtailError(
            f"base has dimension {base_m.shape[1]} but queries have {queries_m.shape[1]}"
        )
    l2_gt, space = _euclidean_view(gt, base_m, queries_m, normalize_metric(metric))
    measures: dict[str, np.ndarray] = {"lid": lid_mle(l2_gt, lid_k)}
    mean_sample = _mean_to_sample(base_m, queries_m, space, sample_size, seed)
    measures["rc"] = relative_contrast(mean_sample, l2_gt, k)
    if l2_gt.shape[1] >= 2 * k:
        measures["expansion"] = expansion(l2_gt, k)
    base_nn = _nn_of_sample(base_m, space, sample_size, seed)
    measures["ood"] = ood_score(l2_gt[:, 0], base_nn)
    return measures


# --------------------------------------------------------------------------- slices


def _hardness_order(values: np.ndarray, higher_is_harder: bool) -> np.ndarray:
    """Query indices from easiest to hardest; NaN last (hardest), ties by index ascending."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise LongtailError(f"values must be 1-D, got shape {v.shape}")
    missing = np.isnan(v)
    key = np.where(missing, 0.0, v if higher_is_harder else -v)
    return np.lexsort((np.arange(v.size), key, missing))


def quartile_slices(values: np.ndarray, higher_is_harder: bool) -> np.ndarray:
    """Hardness quartile label per query, ``(nq,)`` str ``"q1"`` (easiest) .. ``"q4"``.

    Queries are ordered easiest to hardest (NaN = hardest; ties: lower index easier); the
    query at position p gets quartile floor(4 p / nq) + 1, so sizes differ by at most one.
    """
    order = _hardness_order(values, higher_is_harder)
    n = order.size
    labels = np.empty(n, dtype="<U2")
    labels[order] = np.array(["q1", "q2", "q3", "q4"])[(4 * np.arange(n)) // max(n, 1)]
    return labels


def hardest_mask(values: np.ndarray, higher_is_harder: bool, share: float = 0.1) -> np.ndarray:
    """Boolean mask ``(nq,)`` of the hardest round(share * nq) queries (at least one when
    nq > 0; halves round up), same ordering as ``quartile_slices``. 0 < share <= 1."""
    if not 0.0 < float(share) <= 1.0:
        raise LongtailError(f"share must be in (0, 1], got {share}")
    order = _hardness_order(values, higher_is_harder)
    n = order.size
    count = min(n, max(1, _half_up(share * n))) if n else 0
    mask = np.zeros(n, dtype=bool)
    mask[order[n - count :]] = True
    return mask


# --------------------------------------------------------------------------- correlation


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` (no NaN), tied values sharing their average rank."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two ``(n,)`` arrays (average ranks for ties).

    Pairs with a NaN on either side are dropped; NaN when fewer than 3 pairs remain or
    either side has no variance.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise LongtailError(
            f"spearman needs two 1-D arrays of one length, got {x.shape} and {y.shape}"
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3:
        return float("nan")
    rx = _average_ranks(x[keep])
    ry = _average_ranks(y[keep])
    rx -= rx.mean()
    ry -= ry.mean()
    denominator = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    if denominator == 0.0:
        return float("nan")
    return float(np.clip(np.dot(rx, ry) / denominator, -1.0, 1.0))
