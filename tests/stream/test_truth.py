"""Exact truth of a live set equals an independent numpy brute force over the live rows,
mapped to ids; blocks and the cache change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.stream import LiveSet, Step, live_ground_truth
from annkit.stream.truth import cached_live_ground_truth, truth_key


def brute_force(base, queries, ids, rows, k, metric):
    """Independent reference: float64 distances to every live row, sorted, ties to the
    lower id."""
    vectors = base[rows].astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "euclidean":
        d = np.sqrt(((q[:, None, :] - vectors[None, :, :]) ** 2).sum(-1))
    elif metric == "angular":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        vn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        d = 1.0 - qn @ vn.T
    else:
        d = -(q @ vectors.T)
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
    return ids[order], np.take_along_axis(d, order, axis=1)


def live_after_changes(n_rows: int) -> LiveSet:
    live = LiveSet(n_rows)
    for step in (
        Step(1, "insert", start=0, end=300),
        Step(2, "delete", start=40, end=120),
        Step(3, "replace", tags_start=0, tags_end=30, ids_start=350, ids_end=380),
        Step(4, "insert", start=400, end=450),
    ):
        live.apply(step)
    return live


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
@pytest.mark.parametrize("block_rows", [None, 37])
def test_live_truth_equals_numpy_brute_force(metric, block_rows):
    rng = np.random.default_rng(11)
    base = rng.standard_normal((500, 12)).astype(np.float32)
    queries = rng.standard_normal((25, 12)).astype(np.float32)
    live = live_after_changes(500)
    ids, rows = live.ids(), live.rows()
    truth = live_ground_truth(base, queries, ids, rows, 10, metric, block_rows=block_rows)
    want_ids, want_distances = brute_force(base, queries, ids, rows, 10, metric)
    assert np.array_equal(truth.ids, want_ids)
    np.testing.assert_allclose(truth.distances, want_distances, rtol=1e-9, atol=1e-9)
    assert set(truth.ids.ravel()) <= set(ids.tolist())


def test_fewer_live_than_k_gives_every_live_id():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((50, 4)).astype(np.float32)
    queries = rng.standard_normal((3, 4)).astype(np.float32)
    ids = np.array([3, 9, 20], dtype=np.int64)
    truth = live_ground_truth(base, queries, ids, ids, 10, "euclidean")
    assert truth.ids.shape == (3, 3)
    assert all(sorted(row) == [3, 9, 20] for row in truth.ids.tolist())


def test_the_cache_gives_back_what_was_computed(tmp_path):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((200, 6)).astype(np.float32)
    queries = rng.standard_normal((7, 6)).astype(np.float32)
    live = live_after_changes(500)
    live.row_of = np.where(live.row_of < 200, live.row_of, live.row_of % 200)
    ids, rows = live.ids(), live.rows()
    key = truth_key("data", 4, live.digest(), 5, "euclidean")
    first, cached = cached_live_ground_truth(
        tmp_path, key, base, queries, ids, rows, 5, "euclidean"
    )
    assert not cached
    again, cached = cached_live_ground_truth(
        tmp_path, key, base, queries, ids, rows, 5, "euclidean"
    )
    assert cached and np.array_equal(first.ids, again.ids)
    assert np.array_equal(first.distances, again.distances)
    assert truth_key("data", 5, live.digest(), 5, "euclidean") != key


@pytest.mark.parametrize("block_rows", [None, 53])
def test_filtered_live_truth_equals_numpy_brute_force(block_rows):
    """With labels, each query's truth is among the live vectors carrying all its labels."""
    from annkit.labels import Labels

    rng = np.random.default_rng(8)
    base = rng.standard_normal((500, 10)).astype(np.float32)
    queries = rng.standard_normal((30, 10)).astype(np.float32)
    base_labels = Labels.from_rows(
        [sorted(set(rng.choice(5, size=rng.integers(0, 3)).tolist())) for _ in range(500)], 5
    )
    query_labels = Labels.from_rows(
        [[] if q % 4 == 0 else [int(q % 5)] for q in range(29)] + [[0, 1, 2, 3, 4]], 5
    )
    live = live_after_changes(500)
    ids, rows = live.ids(), live.rows()
    truth = live_ground_truth(
        base, queries, ids, rows, 10, "euclidean", block_rows=block_rows,
        base_labels=base_labels, query_labels=query_labels,
    )  # fmt: skip
    for q in range(30):
        wanted = set(query_labels.row(q).tolist())
        passing = np.array(
            [i for i, r in zip(ids, rows, strict=True) if wanted <= set(base_labels.row(r))],
            dtype=np.int64,
        )
        expected = np.full(10, -1)
        if passing.size:
            got_ids, _ = brute_force(
                base, queries[q : q + 1], passing, live.row_of[passing], 10, "euclidean"
            )
            expected[: got_ids.shape[1]] = got_ids[0]
        assert truth.ids[q].tolist() == expected.tolist(), q
        assert np.all(np.isinf(truth.distances[q][expected < 0]))
