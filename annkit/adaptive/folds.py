"""Cross-fitting folds: which fold each query is in, and how many queries the folds need."""

from __future__ import annotations

import numpy as np

from annkit.errors import InputError

MIN_QUERIES_PER_FOLD = 20


def fold_assignment(n_queries: int, folds: int, seed: int) -> np.ndarray:
    """Fold number (n,) of each query: a seeded permutation dealt round-robin."""
    order = np.random.default_rng(seed).permutation(n_queries)
    assignment = np.empty(n_queries, dtype=np.int64)
    assignment[order] = np.arange(n_queries) % folds
    return assignment


def check_query_count(n_queries: int, folds: int) -> None:
    """InputError saying how many queries ``folds`` folds need."""
    needed = folds * MIN_QUERIES_PER_FOLD
    if n_queries < needed:
        raise InputError(
            f"adapt needs at least {needed} training queries for {folds} folds "
            f"({MIN_QUERIES_PER_FOLD} per fold), got {n_queries}; give more queries, fewer "
            "--folds, or --train-queries FILE"
        )
