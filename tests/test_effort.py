"""Minimum effort per query: bisection over the effort grid on the bundled real dataset,
plus the exact bisection on a fake engine whose per-query thresholds are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from annkit.bundle import Bundle, build_index, load_bundle, save_bundle
from annkit.effort import (
    check_grid,
    effort_parameter,
    effort_report,
    minimum_effort,
    per_query_columns,
)
from annkit.engines.base import Engine, ParamSpec, engine_names, get_engine, register, unregister
from annkit.errors import InputError, ParamError
from annkit.evaluate import true_neighbor_distances
from annkit.metrics import exact_distances, recall_per_query
from annkit.slices import build_profile
from annkit.types import Dataset, SearchResult

K = 10
TARGET = 0.9


@pytest.fixture(scope="module")
def truth(words10k: Dataset) -> np.ndarray:
    return true_neighbor_distances(words10k, K)


@pytest.fixture(scope="module")
def result(hnsw_words10k: Bundle, words10k: Dataset, truth: np.ndarray):
    return minimum_effort(hnsw_words10k, words10k, K, TARGET, truth=truth)


def _recall_alone(bundle: Bundle, dataset: Dataset, truth: np.ndarray, row: int, ef: int) -> float:
    """Recall@K of query ``row`` searched on its own at ``ef``."""
    bundle.engine.set_query_params(ef=ef)
    query = dataset.queries[row : row + 1]
    found = bundle.engine.search(query, K)
    distances = exact_distances(dataset.base, query, found.ids, dataset.metric)
    return float(recall_per_query(truth[row : row + 1], found.ids, distances, K)[0])


@pytest.mark.slow
def test_reported_minimum_reaches_target_and_previous_value_does_not(
    result, hnsw_words10k: Bundle, words10k: Dataset, truth: np.ndarray
) -> None:
    grid = result.grid
    assert grid == hnsw_words10k.engine.effort_grid(K, words10k.n_base) and result.param == "ef"
    reached = np.flatnonzero(result.reached)
    assert reached.size > 0.95 * words10k.n_queries
    reaches = below_before = 0
    for row in reached:
        position = grid.index(int(result.min_effort[row]))
        reaches += _recall_alone(hnsw_words10k, words10k, truth, row, grid[position]) >= TARGET
        if (
            position == 0
            or _recall_alone(hnsw_words10k, words10k, truth, row, grid[position - 1]) < TARGET
        ):
            below_before += 1
    # hnswlib's single-threaded search is deterministic per query, and the bisection tested
    # exactly these two values for each query, so both hold for every query.
    assert reaches == reached.size
    assert below_before == reached.size


@pytest.mark.slow
def test_bisection_matches_a_full_scan_on_a_sample(
    result, hnsw_words10k: Bundle, words10k: Dataset, truth: np.ndarray
) -> None:
    rows = np.sort(np.random.default_rng(0).choice(words10k.n_queries, 150, replace=False))
    queries = words10k.queries[rows]
    meets = []
    for ef in result.grid:
        hnsw_words10k.engine.set_query_params(ef=ef)
        found = hnsw_words10k.engine.search(queries, K)
        distances = exact_distances(words10k.base, queries, found.ids, words10k.metric)
        meets.append(recall_per_query(truth[rows], found.ids, distances, K) >= TARGET)
    meets_by_query = np.array(meets).T
    grid = np.array(result.grid + [np.inf], dtype=np.float64)
    smallest = grid[[int(np.argmax(m)) if m.any() else len(result.grid) for m in meets_by_query]]
    # A query whose recall dips at a higher ef (graph search is not strictly monotone) may get
    # a larger value from bisection than the scan's smallest; on words-10k this is rare.
    agree = np.mean(smallest == result.min_effort[rows])
    assert agree >= 0.95


def test_search_counts(result, words10k: Dataset) -> None:
    size = len(result.grid)
    assert result.full_scan == words10k.n_queries * size
    assert result.searches < result.full_scan
    assert result.rounds <= math.ceil(math.log2(size + 1))
    assert result.searches <= words10k.n_queries * result.rounds
    assert result.search_calls <= result.rounds * size


def test_engine_query_params_are_restored(
    hnsw_words10k: Bundle, words10k: Dataset, truth: np.ndarray
) -> None:
    hnsw_words10k.engine.set_query_params(ef=77)
    minimum_effort(hnsw_words10k, words10k, K, TARGET, grid=[10, 40], truth=truth)
    assert hnsw_words10k.engine.query["ef"] == 77


def test_report_distribution_heavy_and_correlations(
    result, words10k: Dataset, truth: np.ndarray
) -> None:
    profile = build_profile(words10k, truth, K)
    report = effort_report(result, profile)
    overall = report["distribution"]["all"]
    median = np.percentile(result.min_effort, 50, method="inverted_cdf")
    assert overall["median"] == median and overall["queries"] == words10k.n_queries
    assert overall["median"] <= overall["p90"] <= overall["p99"]
    for name in ("head", "torso", "tail", "hard-lid", "lid-q4"):
        assert report["distribution"][name]["queries"] == int(profile.masks[name].sum())
    heavy = np.flatnonzero(result.min_effort >= 10 * median)
    assert report["heavy"]["indices"] == heavy.tolist()
    assert report["heavy"]["share"] == pytest.approx(heavy.size / words10k.n_queries)
    assert set(report["spearman"]) == {"weight", "lid", "rc", "expansion", "ood"}
    # harder queries (high LID, low relative contrast) need more effort on real data
    assert report["spearman"]["lid"]["spearman"] > 0.2
    assert report["spearman"]["rc"]["spearman"] < -0.2
    columns = per_query_columns(result, profile, text=["q"] * words10k.n_queries)
    assert list(columns) == [
        "query",
        "text",
        "min_effort",
        "reached",
        "weight",
        "band",
        "lid",
        "rc",
        "expansion",
        "ood",
    ]


def test_not_reached_queries(hnsw_words10k: Bundle, words10k: Dataset, truth: np.ndarray) -> None:
    outcome = minimum_effort(hnsw_words10k, words10k, K, 1.0, grid=[10, 12], truth=truth)
    missing = ~outcome.reached
    assert missing.any() and np.isinf(outcome.min_effort[missing]).all()
    report = effort_report(outcome, None)
    overall = report["distribution"]["all"]
    assert overall["not_reached"] == int(missing.sum())
    assert set(np.flatnonzero(missing)) <= set(report["heavy"]["indices"])
    columns = per_query_columns(outcome, None)
    row = int(np.flatnonzero(missing)[0])
    assert columns["min_effort"][row] == "" and columns["reached"][row] is False


def test_flat_engine_has_no_effort(words10k: Dataset, tmp_path: Path) -> None:
    usable = [
        name
        for name in engine_names()
        if get_engine(name).effort_param_for(
            {param: spec.default for param, spec in get_engine(name).build_specs.items()}
        )
    ]
    assert {"annoy", "hnsw", "ivfpq"} <= set(usable) and "flat" not in usable
    message = (
        "engine flat has no effort parameter (it searches exactly); "
        f"use an index of {', '.join(usable)}"
    )
    with pytest.raises(ParamError) as caught:
        effort_parameter("flat")
    assert str(caught.value) == message
    engine, seconds = build_index("flat", words10k.base, words10k.metric)
    bundle = load_bundle(save_bundle(engine, tmp_path / "flat", build_seconds=seconds))
    with pytest.raises(ParamError, match="engine flat has no effort parameter"):
        minimum_effort(bundle, words10k, K, TARGET)


def test_default_grid_comes_from_the_engine(
    hnsw_words10k: Bundle, words10k: Dataset, truth: np.ndarray
) -> None:
    """The effort grid is the engine's own: a different grid on the instance is used as is."""
    engine = hnsw_words10k.engine
    engine.effort_grid = lambda k, n_base: [70, 7]  # type: ignore[method-assign]
    try:
        outcome = minimum_effort(hnsw_words10k, words10k, K, TARGET, truth=truth)
    finally:
        del engine.effort_grid
    assert outcome.grid == [7, 70]


def test_grid_and_target_validation(hnsw_words10k: Bundle, words10k: Dataset) -> None:
    assert check_grid("hnsw", ["40", 10, "10"]) == [10, 40]
    with pytest.raises(ParamError, match="parameter ef: expected int, got 'x'"):
        check_grid("hnsw", ["x"])
    with pytest.raises(ParamError, match="search_k grid values must be >= 1"):
        check_grid("annoy", [-1, 100])
    with pytest.raises(InputError, match=r"target recall must be in \(0, 1\], got 1.5"):
        minimum_effort(hnsw_words10k, words10k, K, 1.5)
    with pytest.raises(ParamError, match="ef is the effort parameter"):
        minimum_effort(hnsw_words10k, words10k, K, TARGET, query_params={"ef": 5})


# --------------------------------------------------------------------------- exact bisection


class ThresholdEngine(Engine):
    """A fake engine: query i returns its true neighbours once ``ef`` >= threshold[i], else
    ids that are all wrong. Recall is then a step function of ef per query."""

    name = "threshold"
    description = "test double"
    build_params: dict = {}
    default_query_params = {"ef": ParamSpec(int, 1, "effort", minimum=1, effort=True)}

    def __init__(self, neighbours: np.ndarray, thresholds: np.ndarray, k: int) -> None:
        super().__init__("euclidean", 4)
        self.neighbours, self.thresholds = neighbours, thresholds
        self.wrong = neighbours[:, -k:]  # the k farthest points: recall 0
        self.count = len(neighbours[0])
        self.rows_searched = 0

    def build(self, base: np.ndarray, threads: int = 1) -> None:  # pragma: no cover
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        # identify rows by their first coordinate (the query index, see the test)
        rows = queries[:, 0].astype(np.int64)
        self.rows_searched += len(rows)
        good = self.thresholds[rows] <= self.query["ef"]
        ids = np.where(good[:, None], self.neighbours[rows, :k], self.wrong[rows, :k])
        return SearchResult(ids=ids, distances=np.zeros(ids.shape, dtype=np.float32))

    def save(self, directory: Path) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def load(cls, directory, metric, dim, count, params):  # type: ignore[no-untyped-def]
        raise NotImplementedError  # pragma: no cover


@pytest.mark.parametrize("grid_size", [1, 2, 5, 8])
def test_bisection_finds_each_querys_threshold(grid_size: int) -> None:
    rng = np.random.default_rng(grid_size)
    n_queries, n_base, k = 60, 400, 3
    queries = np.zeros((n_queries, 4), dtype=np.float32)
    queries[:, 0] = np.arange(n_queries)
    queries[:, 1:] = rng.standard_normal((n_queries, 3))
    base = rng.standard_normal((n_base, 4)).astype(np.float32) * 50
    dataset = Dataset(name="fake", metric="euclidean", base=base, queries=queries)
    truth_full = true_neighbor_distances(dataset, k)  # computed exactly (no ground truth given)
    all_d = ((queries[:, None, :].astype(np.float64) - base[None]) ** 2).sum(-1)
    neighbours = np.argsort(all_d, axis=1)
    grid = [2**i for i in range(grid_size)]
    thresholds = rng.choice(grid + [10**6], size=n_queries)  # 10**6: never reached
    engine = ThresholdEngine(neighbours, thresholds, k)
    manifest = {"dim": 4, "count": n_base, "metric": "euclidean", "build_params": {}}
    register(ThresholdEngine)
    try:
        outcome = minimum_effort(
            Bundle(Path("."), manifest, engine), dataset, k, 1.0, grid=grid, truth=truth_full
        )
    finally:
        unregister("threshold")
    expected = np.where(thresholds <= grid[-1], thresholds, np.inf).astype(np.float64)
    np.testing.assert_array_equal(outcome.min_effort, expected)
    assert outcome.searches == engine.rows_searched
    # each query is probed ceil(log2(G + 1)) or one fewer times
    rounds = math.ceil(math.log2(grid_size + 1))
    assert n_queries * (rounds - 1) <= outcome.searches <= n_queries * rounds
