"""Exact filtered ground truth equals an independent brute force (numpy, float64, an
explicit mask, ties to the lower id), ids and all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit.errors import InputError
from annkit.filtered import compute_filtered_ground_truth
from annkit.groundtruth import write_ground_truth
from annkit.io import load_dataset, write_vectors
from annkit.io.labels import write_spmat
from annkit.labels import Labels
from annkit.sources import open_dataset


def brute_force(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    base_rows: list[set[int]],
    query_rows: list[set[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids and float64 distances among the base vectors carrying all of a query's
    labels, ties to the lower id, padded with -1 / +inf; no annkit code."""
    b = np.asarray(base, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    ids = np.full((len(q), k), -1, dtype=np.int64)
    dist = np.full((len(q), k), np.inf)
    n_labels = 1 + max(max(row, default=0) for row in [*base_rows, *query_rows])
    carries = np.zeros((len(b), n_labels), dtype=bool)  # carries[i, l]: row i has label l
    for i, row in enumerate(base_rows):
        carries[i, sorted(row)] = True
    if metric == "euclidean":  # every query against every base vector, float64
        squared = (q * q).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (q @ b.T)
        all_dist = np.sqrt(np.maximum(squared, 0.0))
    elif metric == "angular":
        cosine = (q @ b.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(b, axis=1))
        all_dist = np.maximum(1.0 - cosine, 0.0)
    else:
        all_dist = -(q @ b.T)
    for i, wanted in enumerate(query_rows):
        mask = carries[:, sorted(wanted)].all(axis=1)
        d = all_dist[i]
        candidates = np.flatnonzero(mask)
        order = candidates[np.lexsort((candidates, d[candidates]))][:k]
        ids[i, : len(order)] = order
        dist[i, : len(order)] = d[order]
    return ids, dist


def tiny_case(metric: str, seed: int = 11):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((400, 8)).astype(np.float32)
    base[50] = base[7]  # an exact tie: the lower id first
    queries = rng.standard_normal((40, 8)).astype(np.float32)
    queries[0] = base[7]
    base_rows = [set(rng.choice(5, size=rng.integers(0, 4), replace=False).tolist()) for _ in base]
    base_rows[7] = base_rows[50] = {0, 1}
    base_rows[3] = {5}  # label 5: exactly one vector passes
    query_rows = [
        set(rng.choice(5, size=rng.integers(0, 3), replace=False).tolist()) for _ in queries
    ]
    query_rows[0] = {0}
    query_rows[1] = {6}  # no base vector carries label 6: an empty truth
    query_rows[2] = {5}  # one passing vector: fewer than k
    query_rows[3] = {0, 1, 2, 3}  # a rare AND
    query_rows[4] = set()  # unfiltered
    return base, queries, base_rows, query_rows


def as_labels(rows: list[set[int]]) -> Labels:
    return Labels.from_rows([sorted(row) for row in rows], 7)


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
@pytest.mark.parametrize("block_rows", [None, 17])
def test_tiny_filtered_truth_equals_brute_force(metric: str, block_rows: int | None):
    base, queries, base_rows, query_rows = tiny_case(metric)
    truth = compute_filtered_ground_truth(
        base,
        queries,
        20,
        metric,
        as_labels(base_rows),
        as_labels(query_rows),
        threads=1,
        base_block_rows=block_rows,
    )
    ids, dist = brute_force(base, queries, 20, metric, base_rows, query_rows)
    np.testing.assert_array_equal(truth.ids, ids)
    np.testing.assert_allclose(truth.distances, dist, rtol=0, atol=1e-9)
    assert truth.ids[1].tolist() == [-1] * 20 and np.all(np.isinf(truth.distances[1]))
    assert truth.ids[2, 0] == 3 and truth.ids[2, 1:].tolist() == [-1] * 19
    if metric != "ip":  # the query is base row 7, tied with row 50: the lower id first
        assert truth.ids[0, :2].tolist() == [7, 50]


def test_label_rows_must_match_the_vectors():
    base, queries, base_rows, query_rows = tiny_case("euclidean")
    with pytest.raises(InputError, match=r"^399 rows of labels for 400 base vectors$"):
        compute_filtered_ground_truth(
            base, queries, 5, "euclidean", as_labels(base_rows[:-1]), as_labels(query_rows)
        )


@pytest.fixture(scope="module")
def words_labelled():
    return load_dataset("words-10k-labelled")


def test_bundled_truth_equals_brute_force(words_labelled):
    """The bundled file's neighbours and annkit's filtered truth both equal the brute force
    on the real vectors and labels."""
    data = words_labelled
    base_rows = [set(row) for row in data.base_labels.filters()]
    query_rows = [set(row) for row in data.query_labels.filters()]
    ids, dist = brute_force(data.base, data.queries, 100, "angular", base_rows, query_rows)
    np.testing.assert_array_equal(data.neighbors, ids)
    truth = compute_filtered_ground_truth(
        data.base,
        data.queries,
        100,
        "angular",
        data.base_labels,
        data.query_labels,
        threads=1,
    )
    np.testing.assert_array_equal(truth.ids, ids)
    np.testing.assert_allclose(truth.distances, dist, rtol=0, atol=1e-9)
    assert int(np.sum(ids[:, -1] < 0)) == 4  # fewer than 100 passing


def test_bundled_unfiltered_rows_match_words_10k(words_labelled):
    plain = load_dataset("words-10k")
    np.testing.assert_array_equal(words_labelled.base, plain.base)
    unfiltered = words_labelled.query_labels.labels_per_row() == 0
    assert int(unfiltered.sum()) == 321
    np.testing.assert_array_equal(words_labelled.neighbors[unfiltered], plain.neighbors[unfiltered])


def test_write_ground_truth_carries_the_labels(tmp_path: Path, words_labelled):
    out = tmp_path / "gt.hdf5"
    run = write_ground_truth("words-10k-labelled", None, 10, out, threads=1, max_queries=200)
    rows = open_dataset("words-10k-labelled", max_queries=200).query_rows
    assert rows is not None
    sample_filters = [words_labelled.query_labels.filters()[r] for r in rows]
    assert run.filtered_queries == sum(1 for f in sample_filters if f)
    assert run.short_queries == 0
    written = load_dataset(out)
    assert written.base_labels is not None and written.query_labels is not None
    assert written.base_labels.same_as(words_labelled.base_labels)
    assert written.query_labels.filters() == sample_filters
    np.testing.assert_array_equal(written.queries, words_labelled.queries[rows])
    np.testing.assert_array_equal(written.neighbors, words_labelled.neighbors[rows, :10])


def test_query_labels_need_base_labels(tmp_path: Path):
    rng = np.random.default_rng(5)
    write_vectors(tmp_path / "b.fbin", rng.standard_normal((30, 4)).astype(np.float32))
    write_vectors(tmp_path / "q.fbin", rng.standard_normal((5, 4)).astype(np.float32))
    write_spmat(tmp_path / "q.spmat", Labels.from_rows([[0]] * 5, 2))
    with pytest.raises(InputError, match="the queries have labels but the base vectors have none"):
        write_ground_truth(
            tmp_path / "b.fbin",
            tmp_path / "q.fbin",
            5,
            tmp_path / "out.hdf5",
            metric="euclidean",
            query_labels=tmp_path / "q.spmat",
        )
    assert not (tmp_path / "out.hdf5").exists()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_base=st.integers(1, 120),
    k=st.integers(1, 30),
    n_labels=st.integers(1, 6),
    metric=st.sampled_from(["euclidean", "angular", "ip"]),
)
def test_filtered_truth_property(seed, n_base, k, n_labels, metric):
    """Any labels, any k: the filtered truth equals the brute force; every returned id
    passes its query's filter and rows are padded exactly where fewer than k pass."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_base, 5)).astype(np.float32)
    queries = rng.standard_normal((12, 5)).astype(np.float32)
    draw = lambda: set(rng.choice(n_labels, size=rng.integers(0, 3), replace=True).tolist())  # noqa: E731
    base_rows = [draw() for _ in base]
    query_rows = [draw() for _ in queries]
    truth = compute_filtered_ground_truth(
        base, queries, k, metric, as_labels(base_rows), as_labels(query_rows), threads=1
    )
    ids, dist = brute_force(base, queries, min(k, n_base), metric, base_rows, query_rows)
    np.testing.assert_array_equal(truth.ids, ids)
    np.testing.assert_allclose(truth.distances, dist, rtol=0, atol=1e-9)
    for row, wanted in zip(truth.ids, query_rows, strict=True):
        assert all(wanted <= base_rows[i] for i in row if i >= 0)
