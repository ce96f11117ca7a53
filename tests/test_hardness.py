"""Tests for annkit.hardness: LID, relative contrast, expansion, OOD, hardness slices and
Spearman correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit import hardness
from annkit.errors import InputError
from annkit.hardness import (
    HARDER_IS_HIGHER,
    base_nn_distances,
    expansion,
    hardest_mask,
    hardness_measures,
    lid_mle,
    mean_distance_to_sample,
    ood_score,
    quartile_slices,
    relative_contrast,
    spearman,
)


def _exact_knn_distances(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    diff = queries[:, None, :].astype(np.float64) - base[None, :, :].astype(np.float64)
    dist = np.sqrt((diff**2).sum(axis=2))
    return np.sort(dist, axis=1)[:, :k]


# --------------------------------------------------------------------------- LID, RC, expansion


def test_lid_matches_direct_formula():
    rng = np.random.default_rng(1)
    gt = np.sort(rng.uniform(0.1, 2.0, size=(5, 8)), axis=1)
    expected = -1.0 / np.mean(np.log(gt / gt[:, -1:]), axis=1)
    np.testing.assert_allclose(lid_mle(gt), expected)
    expected_k4 = -1.0 / np.mean(np.log(gt[:, :4] / gt[:, 3:4]), axis=1)
    np.testing.assert_allclose(lid_mle(gt, k=4), expected_k4)


def test_lid_zero_and_undefined_rows():
    gt = np.array(
        [
            [0.0, 1.0, 2.0, 4.0],  # duplicate of the query: the zero term is ignored
            [0.0, 0.0, 0.0, 0.0],  # d_k == 0
            [2.0, 2.0, 2.0, 2.0],  # all terms vanish
            [-1.0, 1.0, 2.0, 3.0],  # negative distance (raw ip)
            [1.0, 2.0, 3.0, np.inf],  # padding
        ]
    )
    lid = lid_mle(gt)
    expected_first = -1.0 / np.mean(np.log(np.array([1.0, 2.0, 4.0]) / 4.0))
    assert lid[0] == pytest.approx(expected_first)
    assert np.isnan(lid[1:]).all()


def test_lid_rejects_unsorted_or_bad_k():
    with pytest.raises(ValueError, match="sorted"):
        lid_mle(np.array([[2.0, 1.0]]))
    with pytest.raises(ValueError):
        lid_mle(np.ones((2, 3)), k=4)


def _line_data(n: int = 4001, dim: int = 16, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A dense 1-D uniform grid embedded along a random direction, and one query near the
    middle (slightly off the grid so it is not a base point)."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    offset = rng.normal(size=dim)
    positions = np.arange(n, dtype=np.float64) * 0.01
    base = offset + positions[:, None] * direction
    query = offset + (positions[n // 2] + 0.0037) * direction
    return base, query[None, :]


def test_lid_on_a_line_is_about_one():
    base, query = _line_data()
    gt = _exact_knn_distances(base, query, 200)
    assert 0.7 <= lid_mle(gt, k=100)[0] <= 1.3
    assert expansion(gt, 100)[0] == pytest.approx(2.0, rel=0.05)  # d_2k / d_k on a line


def test_lid_on_uniform_cube_is_about_dimension():
    rng = np.random.default_rng(3)
    base = rng.uniform(size=(20_000, 8))
    queries = rng.uniform(0.3, 0.7, size=(100, 8))  # interior: few boundary effects
    gt = _exact_knn_distances(base, queries, 20)
    assert 5.0 <= float(np.mean(lid_mle(gt, k=20))) <= 11.0


def test_relative_contrast_matches_direct():
    gt = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 1.0], [0.0, 0.0, 0.0]])
    mean = np.array([8.0, 3.0, 2.0])
    np.testing.assert_allclose(relative_contrast(mean, gt)[:2], [2.0, 3.0])
    np.testing.assert_allclose(relative_contrast(mean, gt, k=1)[:2], [8.0, 6.0])
    assert np.isinf(relative_contrast(mean, gt)[2])  # k-th neighbour is a duplicate
    with pytest.raises(ValueError):
        relative_contrast(mean[:2], gt)


def test_expansion_matches_direct_and_checks_depth():
    gt = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 1.0, 1.0]])
    result = expansion(gt, 2)
    assert result[0] == pytest.approx(3.0)
    assert np.isnan(result[1])
    np.testing.assert_allclose(expansion(gt, 1), [2.0, np.nan])
    with pytest.raises(ValueError, match="4 deep"):
        expansion(gt[:, :3], 2)


# --------------------------------------------------------------------------- base samples


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_mean_distance_to_sample_full_sample_matches_direct(metric):
    rng = np.random.default_rng(4)
    base = rng.normal(size=(30, 5)).astype(np.float32)
    queries = rng.normal(size=(7, 5)).astype(np.float32)
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "euclidean":
        direct = np.linalg.norm(q[:, None] - b[None], axis=2)
    elif metric == "angular":
        cos = (q @ b.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(b, axis=1))
        direct = 1.0 - cos
    else:
        direct = -(q @ b.T)
    result = mean_distance_to_sample(base, queries, metric, sample_size=100)
    np.testing.assert_allclose(result, direct.mean(axis=1), rtol=1e-9, atol=1e-9)


def test_mean_distance_to_sample_is_seeded():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(500, 4))
    queries = rng.normal(size=(6, 4))
    first = mean_distance_to_sample(base, queries, "l2", sample_size=50, seed=7)
    again = mean_distance_to_sample(base, queries, "l2", sample_size=50, seed=7)
    other = mean_distance_to_sample(base, queries, "l2", sample_size=50, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    with pytest.raises(InputError, match="unknown metric"):
        mean_distance_to_sample(base, queries, "hamming")


def test_base_nn_distances_excludes_self_keeps_duplicates():
    base = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [10.0, 10.0]], dtype=np.float32)
    result = base_nn_distances(base, "euclidean", sample_size=10)
    np.testing.assert_array_equal(result[:2], [0.0, 0.0])
    np.testing.assert_allclose(result[2:], [5.0, math.hypot(7.0, 6.0)])
    with pytest.raises(ValueError, match="at least 2"):
        base_nn_distances(base[:1], "euclidean")


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_base_nn_distances_blocked_matches_brute_force(metric, monkeypatch):
    monkeypatch.setattr(hardness, "_BLOCK_ENTRIES", 64)  # many tiny blocks
    monkeypatch.setattr(hardness, "_SAMPLE_CHUNK", 7)
    rng = np.random.default_rng(6)
    base = rng.normal(size=(60, 3))
    base[10] = base[40]  # an exact duplicate pair
    result = base_nn_distances(base, metric, sample_size=60)
    if metric == "euclidean":
        pair = np.linalg.norm(base[:, None] - base[None], axis=2)
    elif metric == "angular":
        unit = base / np.linalg.norm(base, axis=1, keepdims=True)
        pair = 1.0 - unit @ unit.T
    else:
        pair = -(base @ base.T)
    np.fill_diagonal(pair, np.inf)
    np.testing.assert_allclose(result, pair.min(axis=1), atol=1e-12)
    if metric == "euclidean":
        assert result[10] == 0.0 and result[40] == 0.0


def test_base_nn_distances_sample_is_seeded_subset():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(200, 3))
    pair = np.linalg.norm(base[:, None] - base[None], axis=2)
    np.fill_diagonal(pair, np.inf)
    sampled = base_nn_distances(base, "euclidean", sample_size=20, seed=3)
    assert sampled.shape == (20,)
    assert np.isin(sampled, pair.min(axis=1)).all()
    np.testing.assert_array_equal(sampled, base_nn_distances(base, "euclidean", 20, seed=3))


def test_ood_scores():
    base_nn = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3
    query_nn = np.array([0.0, 1.5, 3.0, 6.0])
    np.testing.assert_allclose(ood_score(query_nn, base_nn), [0.0, 0.5, 1.0, 2.0])
    zero_median = ood_score(np.array([0.0, 1.0]), np.zeros(3))
    assert zero_median[0] == 0.0 and np.isinf(zero_median[1])
    with pytest.raises(ValueError):
        ood_score(np.array([-1.0]), base_nn)


# --------------------------------------------------------------------------- hardness_measures


def test_hardness_measures_euclidean_keys_and_values():
    rng = np.random.default_rng(8)
    base = rng.normal(size=(300, 6)).astype(np.float32)
    queries = rng.normal(size=(12, 6)).astype(np.float32)
    gt = _exact_knn_distances(base, queries, 10)
    measures = hardness_measures(gt, base, queries, "euclidean", k=5, sample_size=1000)
    assert list(measures) == ["lid", "rc", "expansion", "ood"]
    for values in measures.values():
        assert values.shape == (12,)
    np.testing.assert_allclose(measures["lid"], lid_mle(gt))  # LID: whole ground-truth depth
    limited = hardness_measures(gt, base, queries, "euclidean", k=5, lid_k=5)
    np.testing.assert_allclose(limited["lid"], lid_mle(gt, 5))
    mean = mean_distance_to_sample(base, queries, "euclidean", sample_size=1000)
    np.testing.assert_allclose(measures["rc"], relative_contrast(mean, gt, 5))
    np.testing.assert_allclose(measures["expansion"], expansion(gt, 5))
    base_nn = base_nn_distances(base, "euclidean", sample_size=1000)
    np.testing.assert_allclose(measures["ood"], ood_score(gt[:, 0], base_nn), rtol=1e-6)
    shallow = hardness_measures(gt[:, :9], base, queries, "euclidean", k=5)
    assert "expansion" not in shallow


def test_hardness_measures_angular_uses_chord_distances():
    rng = np.random.default_rng(9)
    base = rng.normal(size=(200, 5))
    queries = rng.normal(size=(8, 5))
    unit_b = base / np.linalg.norm(base, axis=1, keepdims=True)
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cos_gt = np.sort(1.0 - unit_q @ unit_b.T, axis=1)[:, :8]
    chord_gt = _exact_knn_distances(unit_b, unit_q, 8)
    measures = hardness_measures(cos_gt, base, queries, "cosine", k=4, sample_size=50)
    np.testing.assert_allclose(measures["lid"], lid_mle(chord_gt), rtol=1e-6)
    np.testing.assert_allclose(measures["expansion"], expansion(chord_gt, 4), rtol=1e-6)
    euclid = hardness_measures(chord_gt, unit_b, unit_q, "euclidean", k=4, sample_size=50)
    np.testing.assert_allclose(measures["rc"], euclid["rc"], rtol=1e-6)
    np.testing.assert_allclose(measures["ood"], euclid["ood"], rtol=1e-6)


def test_hardness_measures_ip_is_finite():
    rng = np.random.default_rng(10)
    base = rng.normal(size=(200, 5)) * rng.uniform(0.5, 2.0, size=(200, 1))
    queries = rng.normal(size=(8, 5))
    ip_gt = np.sort(-(queries @ base.T), axis=1)[:, :8]
    measures = hardness_measures(ip_gt, base, queries, "ip", k=4, sample_size=50)
    assert set(measures) == {"lid", "rc", "expansion", "ood"}
    for values in measures.values():
        assert np.isfinite(values).all() and (values > 0).all()
    # the ip view is plain L2 on augmented vectors: [x, sqrt(M - |x|^2)] and [q, 0]
    sq = (base**2).sum(axis=1)
    aug_b = np.hstack([base, np.sqrt(sq.max() - sq)[:, None]])
    aug_q = np.hstack([queries, np.zeros((8, 1))])
    aug_gt = _exact_knn_distances(aug_b, aug_q, 8)
    np.testing.assert_allclose(measures["lid"], lid_mle(aug_gt), rtol=1e-6)


def test_hardness_measures_checks_shapes():
    with pytest.raises(ValueError, match="rows"):
        hardness_measures(np.ones((3, 4)), np.ones((10, 2)), np.ones((2, 2)), "euclidean", 2)


# --------------------------------------------------------------------------- slices


def test_quartile_slices_balanced_and_directed():
    rng = np.random.default_rng(11)
    values = rng.permutation(100).astype(float)
    labels = quartile_slices(values, higher_is_harder=True)
    for name in ("q1", "q2", "q3", "q4"):
        assert (labels == name).sum() == 25
    assert set(values[labels == "q4"]) == set(range(75, 100))
    flipped = quartile_slices(values, higher_is_harder=False)
    assert set(values[flipped == "q4"]) == set(range(25))


def test_quartile_slices_nan_is_hardest_and_ties_deterministic():
    values = np.array([np.nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    for higher in (True, False):
        assert quartile_slices(values, higher)[0] == "q4"
    ties = quartile_slices(np.zeros(8), higher_is_harder=True)
    assert ties.tolist() == ["q1", "q1", "q2", "q2", "q3", "q3", "q4", "q4"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), max_size=50))
def test_quartile_slices_sizes_differ_by_at_most_one(values):
    labels = quartile_slices(np.array(values, dtype=float), higher_is_harder=True)
    counts = [(labels == name).sum() for name in ("q1", "q2", "q3", "q4")]
    assert sum(counts) == len(values)
    assert max(counts) - min(counts) <= 1


def test_hardest_mask():
    values = np.arange(100.0)
    mask = hardest_mask(values, higher_is_harder=True)
    assert mask.sum() == 10 and set(values[mask]) == set(range(90, 100))
    mask = hardest_mask(values, higher_is_harder=False, share=0.25)
    assert set(values[mask]) == set(range(25))
    with_nan = np.array([1.0, np.nan, 3.0, 2.0, 0.5])
    assert hardest_mask(with_nan, higher_is_harder=False, share=0.1).tolist() == [
        False,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError):
        hardest_mask(values, True, share=0.0)


def test_harder_is_higher_directions():
    assert HARDER_IS_HIGHER == {"lid": True, "rc": False, "expansion": False, "ood": True}


# --------------------------------------------------------------------------- spearman


def test_spearman_hand_computed_with_ties():
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 3, 2, 4]: r = 4.5 / sqrt(4.5 * 5)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 3, 2, 4])) == pytest.approx(
        4.5 / math.sqrt(22.5)
    )
    # no ties: 1 - 6 sum(d^2) / (n (n^2 - 1)) with d = [0, 0, 1, -1, 0] -> 1 - 12 / 120
    assert spearman(np.arange(5.0), np.array([0.0, 1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.9)


def test_spearman_monotone_and_undefined():
    x = np.linspace(0.1, 5.0, 20)
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)
    with_nan = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    assert spearman(with_nan, np.array([1.0, 2.0, -100.0, 3.0, 4.0])) == pytest.approx(1.0)
    assert math.isnan(spearman(np.array([1.0, 2.0]), np.array([2.0, 1.0])))
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    with pytest.raises(ValueError):
        spearman(np.ones(3), np.ones(4))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-5, 5), st.integers(-5, 5)),
        min_size=3,
        max_size=30,
    )
)
def test_spearman_properties(pairs):
    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    rho = spearman(a, b)
    if math.isnan(rho):
        assert np.ptp(a) == 0 or np.ptp(b) == 0
        return
    assert -1.0 <= rho <= 1.0
    assert spearman(b, a) == pytest.approx(rho)
    assert spearman(a**3 + 2 * a, b) == pytest.approx(rho)  # invariant to monotone maps
    assert spearman(a, -b) == pytest.approx(-rho)
