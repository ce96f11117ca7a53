"""Filtered search strategies and filtered recall, checked against exact computations on the
bundled labelled words (words-10k-labelled) and on tiny hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.engines.base import Engine, get_engine
from annkit.errors import InputError
from annkit.filtering import (
    FilteredSearch,
    Workload,
    filtered_recall,
    selectivity_band,
    subset_search,
)
from annkit.io import load_dataset
from annkit.labels import Labels
from annkit.metrics import EPSILON, exact_distances
from annkit.types import Dataset

K = 10


@pytest.fixture(scope="module")
def labelled() -> Dataset:
    return load_dataset("words-10k-labelled")


@pytest.fixture(scope="module")
def workload(labelled: Dataset) -> Workload:
    assert labelled.base_labels is not None and labelled.query_labels is not None
    return Workload.of(labelled.base_labels, labelled.query_labels)


def built(name: str, dataset: Dataset, build: dict, query: dict) -> Engine:
    engine = get_engine(name)(dataset.metric, dataset.dim, **build)
    engine.build(dataset.base, threads=1)
    engine.count = dataset.n_base
    engine.set_query_params(**query)
    return engine


def test_filtered_recall_counts_passing_ids_within_the_mth_true_distance() -> None:
    true = np.array([[0.1, 0.2, np.inf], [0.1, 0.2, 0.3], [np.inf, np.inf, np.inf]])
    ids = np.array([[4, 5, 6], [1, 1, 2], [-1, -1, -1]])
    found = np.array([[0.1, 0.2, 0.25], [0.1, 0.1, 0.3], [np.inf, np.inf, np.inf]])
    passes = np.array([[True, True, False], [True, True, True], [False, False, False]])
    counts = np.array([2, 5, 0])  # 2 pass the first filter, none the third
    recall, short = filtered_recall(true, ids, found, passes, counts, 3, EPSILON)
    # row 0: m = 2, both passing ids within 0.2; row 1: the duplicate counts once: 2 of 3;
    # row 2: nothing passes, the empty result is right
    np.testing.assert_allclose(recall, [1.0, 2 / 3, 1.0])
    assert short.tolist() == [False, True, False]


def test_selectivity_bands() -> None:
    assert [selectivity_band(share, True) for share in (0.0005, 0.005, 0.05, 0.5)] + [
        selectivity_band(1.0, False)
    ] == [
        "sel<0.1%",
        "sel0.1-1%",
        "sel1-10%",
        "sel>=10%",
        "unfiltered",
    ]


def test_subset_search_is_the_filtered_ground_truth(labelled: Dataset, workload: Workload) -> None:
    """Exact search over the passing vectors equals the file's exact filtered truth."""
    assert labelled.neighbors is not None
    for key, rows in list(workload.groups.items())[:25]:
        allowed = workload.passing[key]
        if not key or allowed.size == 0:
            continue
        result = subset_search(labelled.base, labelled.queries[rows], allowed, K, "angular")
        width = min(K, allowed.size)
        np.testing.assert_array_equal(result.ids[:, :width], labelled.neighbors[rows, :width])
        assert (result.distance_computations == allowed.size).all()


@pytest.mark.parametrize("strategy", ["native", "post", "subset", "auto"])
def test_every_strategy_on_exact_search_finds_the_filtered_truth(
    labelled: Dataset, workload: Workload, strategy: str
) -> None:
    engine = built("flat", labelled, {}, {})
    rows = np.arange(labelled.n_queries)
    result = FilteredSearch(
        engine, labelled.base, labelled.queries, "angular", workload, strategy, K
    ).search(rows)
    truth = exact_distances(labelled.base, labelled.queries, labelled.neighbors[:, :K], "angular")
    found = exact_distances(labelled.base, labelled.queries, result.ids, "angular")
    passes = workload.passes(rows, result.ids)
    assert (passes | (result.ids < 0)).all()  # nothing failing the filter comes back
    recall, short = filtered_recall(truth, result.ids, found, passes, workload.counts, K, EPSILON)
    assert recall.mean() == 1.0 and not short.any()


@pytest.mark.parametrize(
    ("name", "build", "query"),
    [
        ("hnsw", {"M": 16}, {"ef": 64}),
        ("faiss", {"factory": "HNSW16,Flat"}, {"efSearch": 64}),
        ("faiss", {"factory": "IVF16,Flat"}, {"nprobe": 4}),
    ],
)
def test_native_filters_return_only_passing_ids(
    labelled: Dataset, workload: Workload, name: str, build: dict, query: dict
) -> None:
    engine = built(name, labelled, build, query)
    rows = np.flatnonzero(workload.filtered)[:120]
    result = FilteredSearch(
        engine, labelled.base, labelled.queries, "angular", workload, "native", K
    ).search(rows)
    assert (workload.passes(rows, result.ids) | (result.ids < 0)).all()
    assert (result.ids >= 0).sum() > 0.9 * len(rows) * K


def test_auto_plans_subset_below_the_threshold(labelled: Dataset, workload: Workload) -> None:
    engine = built("faiss", labelled, {"factory": "HNSW16,Flat"}, {"efSearch": 64})
    search = FilteredSearch(engine, labelled.base, labelled.queries, "angular", workload, "auto", K)
    assert search.threshold is not None and 0 < search.threshold < labelled.n_base
    filtered = workload.filtered
    below = workload.counts <= search.threshold
    assert (search.choices[filtered & below] == "subset").all()
    assert (search.choices[filtered & ~below] == "native").all()
    assert (search.choices[~filtered] == "none").all()
    again = FilteredSearch(engine, labelled.base, labelled.queries, "angular", workload, "auto", K)
    assert again.threshold == search.threshold  # counted, so the plan is deterministic


def test_a_filter_nothing_passes_gives_the_empty_result() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((50, 8)).astype(np.float32)
    queries = rng.standard_normal((2, 8)).astype(np.float32)
    base_labels = Labels.from_rows([[0]] * 50, 2)
    query_labels = Labels.from_rows([[1], []], 2)  # label 1 is on no base vector
    workload = Workload.of(base_labels, query_labels)
    dataset = Dataset("tiny", "euclidean", base, queries)
    engine = built("flat", dataset, {}, {})
    for strategy in ("native", "post", "subset", "auto"):
        result = FilteredSearch(engine, base, queries, "euclidean", workload, strategy, 5).search(
            np.arange(2)
        )
        assert (result.ids[0] == -1).all() and (result.ids[1] >= 0).all()


def test_a_strategy_the_engine_cannot_run_is_one_line(
    labelled: Dataset, workload: Workload
) -> None:
    engine = built("annoy", labelled, {"n_trees": 2}, {})
    with pytest.raises(InputError, match=r"^engine annoy cannot filter during its search"):
        FilteredSearch(engine, labelled.base, labelled.queries, "angular", workload, "native", K)
    with pytest.raises(InputError, match=r"^unknown filter strategy 'pre'"):
        FilteredSearch(engine, labelled.base, labelled.queries, "angular", workload, "pre", K)
