"""Exact ground truth: equals the bundled float64 truth, independent of block sizes."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.groundtruth import compute_ground_truth


def test_matches_bundled_float64_truth(words10k):
    truth = compute_ground_truth(words10k.base, words10k.queries, 100, "angular")
    assert truth.ids.dtype == np.int64 and truth.ids.shape == (1000, 100)
    np.testing.assert_array_equal(truth.ids, words10k.neighbors)


def test_blocks_do_not_change_result(words10k):
    queries = words10k.queries[:100]
    whole = compute_ground_truth(words10k.base, queries, 20, "angular")
    blocked = compute_ground_truth(
        words10k.base, queries, 20, "angular", base_block_rows=777, query_block_rows=13
    )
    np.testing.assert_array_equal(whole.ids, blocked.ids)
    np.testing.assert_array_equal(whole.distances, blocked.distances)


@pytest.mark.parametrize("metric", ["angular", "euclidean", "ip"])
def test_threads_do_not_change_result(words10k, metric):
    """The normalisation, norms and float64 re-rank are split over threads: same bits."""
    queries = words10k.queries[:300]
    one = compute_ground_truth(words10k.base, queries, 30, metric, threads=1)
    two = compute_ground_truth(words10k.base, queries, 30, metric, threads=2, base_block_rows=3001)
    np.testing.assert_array_equal(one.ids, two.ids)
    np.testing.assert_array_equal(one.distances, two.distances)


@pytest.mark.parametrize("metric", ["euclidean", "ip", "angular"])
def test_matches_numpy_and_ties_go_to_lower_index(metric):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((500, 8)).astype(np.float32)
    base[250] = base[10]  # an exact duplicate: tie must go to index 10 first
    queries = np.concatenate([base[10:11] + 1e-3, rng.standard_normal((30, 8))]).astype(np.float32)
    truth = compute_ground_truth(base, queries, 15, metric, base_block_rows=64)
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "euclidean":
        dist = np.sqrt(((q[:, None] - b[None]) ** 2).sum(-1))
    elif metric == "ip":
        dist = -(q @ b.T)
    else:
        dist = 1 - (q @ b.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(b, axis=1))
    expected = np.argsort(dist, axis=1, kind="stable")[:, :15]
    np.testing.assert_array_equal(truth.ids, expected)
    if metric != "ip":
        assert list(truth.ids[0, :2]) == [10, 250]


def test_k_larger_than_base_is_clipped():
    base = np.eye(5, dtype=np.float32)
    truth = compute_ground_truth(base, base[:2], 50, "euclidean")
    assert truth.ids.shape == (2, 5)
