"""Checks on loaded vectors and on how the parts of a dataset fit together."""

from __future__ import annotations

import numpy as np

from annkit.errors import DatasetError
from annkit.io._common import BLOCK_ROWS
from annkit.memory import release_pages


def validate_vectors(array: np.ndarray, what: str, metric: str) -> None:
    """Raise DatasetError if ``array`` (n, d) is empty or not 2-D, holds NaN/inf values, or
    (metric ``angular``) holds all-zero rows, which have no direction.

    ``what`` prefixes the message (e.g. ``"data.hdf5: train"``). Rows are scanned in blocks
    of 65,536 so a memory-mapped file larger than RAM is checked in bounded memory.
    """
    if array.ndim != 2:
        raise DatasetError(
            f"{what}: expected a 2-D (n, d) array of vectors, got shape {array.shape}"
        )
    n, d = array.shape
    if n == 0 or d == 0:
        raise DatasetError(f"{what}: empty: no vectors (shape {array.shape})")
    check_zero = metric == "angular"
    nonfinite_rows = zero_rows = 0
    first_nonfinite = first_zero = -1
    for start in range(0, n, BLOCK_ROWS):
        block = np.asarray(array[start : start + BLOCK_ROWS])
        if block.dtype.kind == "f":
            bad = ~np.isfinite(block).all(axis=1)
            count = int(np.count_nonzero(bad))
            if count:
                if first_nonfinite < 0:
                    first_nonfinite = start + int(np.argmax(bad))
                nonfinite_rows += count
        if check_zero:
            with np.errstate(invalid="ignore"):  # a signalling NaN: reported below, not warned
                zero = ~block.any(axis=1)
            count = int(np.count_nonzero(zero))
            if count:
                if first_zero < 0:
                    first_zero = start + int(np.argmax(zero))
                zero_rows += count
        release_pages(array[start : start + BLOCK_ROWS])  # a mapped file stays out of memory
    if nonfinite_rows:
        raise DatasetError(
            f"{what}: {nonfinite_rows} of {n} rows contain NaN or inf values "
            f"(first: row {first_nonfinite})"
        )
    if zero_rows:
        raise DatasetError(
            f"{what}: {zero_rows} of {n} rows are zero vectors, which have no direction under "
            f"the angular metric (first: row {first_zero}); remove them or use another metric"
        )


def check_dataset_parts(
    source: str,
    base: np.ndarray,
    queries: np.ndarray,
    neighbors: np.ndarray | None,
    weights: np.ndarray | None,
) -> None:
    """Check base/queries share a dimension, ground truth has one row per query with ids below
    the base size, and weights are one finite, non-negative number per query.

    ``source`` prefixes the messages (a file name, or ``"base.fvecs + queries.fvecs"``).
    """
    if base.shape[1] != queries.shape[1]:
        raise DatasetError(
            f"{source}: base vectors have dimension {base.shape[1]} but queries have "
            f"dimension {queries.shape[1]}"
        )
    n_base, n_queries = base.shape[0], queries.shape[0]
    if neighbors is not None:
        if neighbors.ndim != 2 or neighbors.shape[1] == 0:
            raise DatasetError(
                f"{source}: ground truth must be a 2-D (queries, k) array of ids, "
                f"got shape {neighbors.shape}"
            )
        if neighbors.shape[0] != n_queries:
            raise DatasetError(
                f"{source}: ground truth has {neighbors.shape[0]} rows but there are "
                f"{n_queries} queries"
            )
        largest = int(neighbors.max())
        if largest >= n_base:
            raise DatasetError(
                f"{source}: ground truth holds id {largest} but the base set has only "
                f"{n_base} vectors (ids 0..{n_base - 1})"
            )
    if weights is not None:
        if weights.ndim != 1 or weights.shape[0] != n_queries:
            raise DatasetError(
                f"{source}: {weights.size} query weights but there are {n_queries} queries"
            )
        finite = np.isfinite(weights)
        if not finite.all():
            row = int(np.argmax(~finite))
            raise DatasetError(
                f"{source}: query weights must be finite; weight {row} is {weights[row]}"
            )
        negative = weights < 0
        if negative.any():
            row = int(np.argmax(negative))
            raise DatasetError(
                f"{source}: query weights must be >= 0; weight {row} is {weights[row]}"
            )
        if not (weights > 0).any():
            raise DatasetError(f"{source}: query weights are all zero")
