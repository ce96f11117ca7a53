"""Long-tail views of recall: tail percentiles, traffic-weighted recall and frequency bands.

Pure numpy; no printing, no file I/O. The per-query hardness measures and hardness slices
are in :mod:`annkit.hardness`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from annkit.errors import InputError

DEFAULT_CUTS: tuple[float, float] = (0.2, 0.6)
"""Frequency band cut points: head = top 20% of queries by weight, torso = next 40%, tail."""


class LongtailError(InputError, ValueError):
    """Invalid input to a long-tail or hardness function (an InputError that is also a
    ValueError)."""


# --------------------------------------------------------------------------- validation


def _vector(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a non-empty, finite 1-D float64 array."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise LongtailError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise LongtailError(f"{name} is empty")
    bad = ~np.isfinite(array)
    if bad.any():
        raise LongtailError(f"{name} has {int(bad.sum())} non-finite value(s)")
    return array


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a 2-D array with at least one row and column (dtype kept)."""
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise LongtailError(f"{name} must be a non-empty 2-D array, got shape {array.shape}")
    return array


def _half_up(x: float) -> int:
    """Round to the nearest integer, halves up (robust to 0.6 * 10 = 6.000000000000001)."""
    return int(math.floor(x + 0.5 + 1e-9))


# --------------------------------------------------------------------------- tail metrics


#: decimals of the recall percentiles: interpolating between recall steps of 1/k leaves
#: binary noise (0.7450000000000001) that would otherwise reach every table and JSON file
PERCENTILE_DECIMALS = 12


def tail_metrics(per_query_recall: np.ndarray) -> dict:
    """Summary of a per-query recall vector ``(nq,)`` with values in [0, 1].

    Returns ``mean``, ``p1``, ``p5``, ``p10`` (percentiles, linear interpolation, rounded
    to PERCENTILE_DECIMALS so that 0.7450000000000001 reads 0.745),
    ``share_below_0_5`` (share of queries with recall < 0.5), ``share_zero`` (recall == 0)
    and ``queries`` (nq). Raises LongtailError (a ValueError) on empty or non-finite input.
    """
    recall = _vector(per_query_recall, "per_query_recall")
    p1, p5, p10 = (
        round(float(value), PERCENTILE_DECIMALS)
        for value in np.percentile(recall, [1.0, 5.0, 10.0], method="linear")
    )
    return {
        "mean": float(recall.mean()),
        "p1": p1,
        "p5": p5,
        "p10": p10,
        "share_below_0_5": float(np.mean(recall < 0.5)),
        "share_zero": float(np.mean(recall == 0.0)),
        "queries": int(recall.size),
    }


def _check_weights(weights: np.ndarray, n: int | None = None) -> np.ndarray:
    w = _vector(weights, "weights")
    if n is not None and w.size != n:
        raise LongtailError(f"weights has {w.size} values but there are {n} queries")
    if (w < 0).any():
        raise LongtailError("weights must be >= 0")
    return w


def weighted_recall(per_query_recall: np.ndarray, weights: np.ndarray) -> float:
    """Traffic-weighted mean recall: sum(w * r) / sum(w); ``weights`` ``(nq,)`` >= 0, sum > 0."""
    recall = _vector(per_query_recall, "per_query_recall")
    w = _check_weights(weights, recall.size)
    total = w.sum()
    if total <= 0:
        raise LongtailError("weights sum to 0: at least one query needs a positive weight")
    return float(np.dot(w, recall) / total)


# --------------------------------------------------------------------------- frequency bands


def _check_cuts(cuts: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(c) for c in cuts)
    if not values:
        raise LongtailError("cuts must hold at least one cut point")
    if any(not 0.0 < c < 1.0 for c in values):
        raise LongtailError(f"cuts must lie strictly between 0 and 1, got {values}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise LongtailError(f"cuts must be strictly increasing, got {values}")
    return values


def band_names(cuts: Sequence[float] = DEFAULT_CUTS) -> tuple[str, ...]:
    """Names of the ``len(cuts) + 1`` bands, most frequent first.

    Two cuts give ``("head", "torso", "tail")``; any other count gives ``band1 .. bandN``.
    """
    count = len(_check_cuts(cuts)) + 1
    if count == 3:
        return ("head", "torso", "tail")
    return tuple(f"band{i}" for i in range(1, count + 1))


def frequency_bands(weights: np.ndarray, cuts: Sequence[float] = DEFAULT_CUTS) -> np.ndarray:
    """Frequency band label per query, ``(nq,)`` str.

    Queries are ranked by weight descending (ties: lower query index first); the query at
    rank position p gets band j, the first j with p < round(cuts[j] * nq) (halves round up),
    else the last band. Default: head = top 20% of queries, torso = next 40%, tail = rest.
    """
    checked = _check_cuts(cuts)
    names = np.array(band_names(checked))
    w = _check_weights(weights)
    n = w.size
    order = np.argsort(-w, kind="stable")
    bounds = np.array([_half_up(c * n) for c in checked])
    band_at_position = np.searchsorted(bounds, np.arange(n), side="right")
    labels = np.empty(n, dtype=names.dtype)
    labels[order] = names[band_at_position]
    return labels
