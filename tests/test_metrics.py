"""Recall and exact distances against independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit.metrics import (
    duplicate_count,
    exact_distances,
    latency_percentiles,
    recall_per_query,
)


def numpy_distances(base, queries, ids, metric):
    b = base.astype(np.float64)[ids]
    q = queries.astype(np.float64)[:, None, :]
    if metric == "euclidean":
        return np.sqrt(((b - q) ** 2).sum(-1))
    if metric == "angular":
        return 1 - (b * q).sum(-1) / (np.linalg.norm(b, axis=-1) * np.linalg.norm(q, axis=-1))
    return -(b * q).sum(-1)


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_exact_distances_match_numpy(metric):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 12)).astype(np.float32)
    queries = rng.standard_normal((20, 12)).astype(np.float32)
    ids = rng.integers(0, 300, size=(20, 7))
    got = exact_distances(base, queries, ids, metric, block=3)
    np.testing.assert_allclose(
        got,
        np.maximum(numpy_distances(base, queries, ids, metric), -np.inf if metric == "ip" else 0),
        atol=1e-12,
    )


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_exact_distances_same_from_memmap_and_threads(metric, tmp_path):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((400, 16)).astype(np.float32)
    np.save(tmp_path / "base.npy", base)
    mapped = np.load(tmp_path / "base.npy", mmap_mode="r")
    queries = rng.standard_normal((50, 16)).astype(np.float32)
    ids = rng.integers(-1, 400, size=(50, 9))
    plain = exact_distances(base, queries, ids, metric)
    np.testing.assert_array_equal(plain, exact_distances(mapped, queries, ids, metric, block=7))
    np.testing.assert_array_equal(
        plain, exact_distances(base, queries, ids, metric, block=5, threads=2)
    )
    assert np.isinf(plain[ids < 0]).all()


def test_missing_ids_are_infinite():
    base = np.eye(4, dtype=np.float32)
    got = exact_distances(base, base[:1], np.array([[0, -1]]), "euclidean")
    assert got[0, 0] == 0 and np.isinf(got[0, 1])


def test_recall_epsilon_rule_and_duplicates():
    true = np.array([[0.1, 0.2, 0.3]])
    ids = np.array([[5, 5, 7]])
    found = np.array([[0.1, 0.1, 0.3005]])  # duplicate counted once; within 1e-3 counts
    assert recall_per_query(true, ids, found, 3)[0] == pytest.approx(2 / 3)
    assert recall_per_query(true, np.array([[1, 2, 3]]), np.array([[0.1, 0.2, 0.302]]), 3)[0] == (
        pytest.approx(2 / 3)
    )
    assert recall_per_query(true, np.array([[1, -1, -1]]), np.array([[0.1, 0, 0]]), 3)[0] == (
        pytest.approx(1 / 3)
    )
    assert duplicate_count(np.array([[5, 5, 7], [-1, -1, 2]])) == 1


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 20), st.integers(1, 10), st.integers(0, 10_000))
def test_recall_bounds_and_self_recall(n_queries, k, seed):
    rng = np.random.default_rng(seed)
    true = np.sort(rng.random((n_queries, k)), axis=1)
    assert np.all(recall_per_query(true, np.arange(k)[None].repeat(n_queries, 0), true, k) == 1)
    noise = rng.random((n_queries, k)) * 2
    recall = recall_per_query(true, rng.integers(0, 50, (n_queries, k)), noise, k)
    assert np.all((recall >= 0) & (recall <= 1))


def test_latency_percentiles():
    out = latency_percentiles(np.arange(1, 101) / 1000)
    assert out["p50"] == pytest.approx(50.5) and out["p99"] == pytest.approx(99.01)
    assert latency_percentiles(None)["p95"] is None


def test_recall_equals_independent_bruteforce_on_bundled_data(words10k):
    """annkit's recall of a perturbed result equals a from-scratch numpy computation."""
    from annkit.evaluate import true_neighbor_distances

    k = 10
    base, queries = words10k.base, words10k.queries
    b = base.astype(np.float64)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    dist = 1 - q @ b.T
    truth_kth = np.sort(dist, axis=1)[:, k - 1]
    rng = np.random.default_rng(3)
    # a result that is right for some neighbours and wrong for others
    order = np.argsort(dist, axis=1)[:, : 2 * k]
    found = np.take_along_axis(
        order,
        np.sort(rng.permuted(np.tile(np.arange(2 * k), (len(q), 1)), axis=1)[:, :k], axis=1),
        axis=1,
    )
    expected = np.array(
        [np.sum(dist[i, found[i]] <= truth_kth[i] + 1e-3) / k for i in range(len(q))]
    )
    true = true_neighbor_distances(words10k, k)
    got = recall_per_query(true, found, exact_distances(base, queries, found, "angular"), k)
    np.testing.assert_allclose(got, expected)
    assert 0.4 < got.mean() < 0.9
