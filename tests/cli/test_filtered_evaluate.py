"""Filtered recall through annkit evaluate: every strategy, the planner's choices per
selectivity band, and recall rechecked independently from the returned ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bundle import load_bundle
from annkit.evaluate import Measure, evaluate, measure_setting
from annkit.io import load_dataset
from annkit.labels import passing_ids, postings

DATA = "words-10k-labelled"


@pytest.fixture(scope="module")
def hnsw_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("filtered") / "hnsw"
    args = ("build", DATA, "-e", "faiss", "-p", "factory=HNSW16,Flat", "--threads", "1")
    result = run_cli(*args, "-o", out)
    assert result.exit_code == 0, result.output
    return out


def independent_recall(dataset, ids: np.ndarray, k: int) -> np.ndarray:
    """Filtered recall@k from scratch: numpy float64 distances to every base vector, an
    explicit mask per filter, the m-th passing distance (m = min(k, passing)) + 1e-3."""
    base = dataset.base.astype(np.float64)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    index = postings(dataset.base_labels)
    out = np.empty(dataset.n_queries)
    for row in range(dataset.n_queries):
        query = dataset.queries[row].astype(np.float64)
        distances = 1.0 - base @ (query / np.linalg.norm(query))
        allowed = passing_ids(index, dataset.query_labels.row(row))
        m = min(k, allowed.size)
        if m == 0:
            out[row] = 1.0
            continue
        kth = np.sort(distances[allowed])[m - 1]
        found = {int(i) for i in ids[row, :k] if i >= 0 and np.isin(i, allowed)}
        hits = sum(distances[i] <= kth + 1e-3 for i in found)
        out[row] = min(hits, m) / m
    return out


@pytest.mark.parametrize("strategy", ["auto", "native", "post", "subset"])
def test_filtered_recall_equals_an_independent_recount(hnsw_index: Path, strategy: str) -> None:
    dataset = load_dataset(DATA)
    bundle = load_bundle(hnsw_index)
    evaluation = measure_setting(
        bundle, dataset, Measure(k=10, runs=1, filter_strategy=strategy), {"efSearch": 32}
    )
    assert evaluation.returned_ids is not None
    expected = independent_recall(dataset, evaluation.returned_ids, 10)
    np.testing.assert_allclose(evaluation.per_query_recall, expected)
    assert evaluation.filter_strategy == strategy and evaluation.short_results is not None
    plan = evaluation.filter_plan
    assert plan is not None and sum(sum(v.values()) for v in plan.values()) == 1000
    if strategy == "subset":  # exact on every filtered query
        assert evaluation.slices["sel1-10%"].recall == 1.0


def test_evaluate_json_carries_bands_and_the_plan(hnsw_index: Path) -> None:
    result = run_cli("evaluate", hnsw_index, DATA, "-p", "efSearch=32", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["filter_strategy"] == "auto" and out["short_results"] == 0
    assert {"sel1-10%", "sel>=10%", "unfiltered"} <= set(out["slices"])
    assert set(out["filter_plan"]["sel1-10%"]) <= {"subset", "native"}
    assert out["filter_plan"]["unfiltered"] == {"none": 321}


def test_unfiltered_evaluation_is_unchanged_by_the_filter_fields(words10k) -> None:
    out = run_cli("evaluate", "--help").output
    assert "--filter-strategy" in out
    dataset = load_dataset("words-10k")
    assert dataset.query_labels is None


def test_commands_without_filtered_search_refuse_labelled_queries(hnsw_index: Path) -> None:
    for command in (
        ("explain", hnsw_index, DATA, "--query", 1),
        ("adapt", hnsw_index, DATA, "-o", hnsw_index.parent / "p.json"),
    ):
        result = run_cli(*command)
        assert result.exit_code == 2
        assert f"does not search with filters yet, and the queries of {DATA}" in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_strategy_the_index_cannot_run_is_one_line(tmp_path: Path) -> None:
    index = tmp_path / "annoy"
    built = run_cli("build", DATA, "-e", "annoy", "-p", "n_trees=2", "-o", index)
    assert built.exit_code == 0, built.output
    result = run_cli("evaluate", index, DATA, "--filter-strategy", "native")
    assert result.exit_code == 2
    assert result.output.startswith("Error: engine annoy cannot filter during its search")
    ok = run_cli("evaluate", index, DATA, "--filter-strategy", "post", "--json")
    assert ok.exit_code == 0, ok.output


def test_evaluate_keyword_form_scores_filters_too(hnsw_index: Path) -> None:
    evaluation = evaluate(load_bundle(hnsw_index), load_dataset(DATA), 10, {"efSearch": 16})
    assert evaluation.filter_strategy == "auto"


def test_query_searches_each_query_with_its_filter(hnsw_index: Path, tmp_path: Path) -> None:
    dataset = load_dataset(DATA)
    index = postings(dataset.base_labels)
    for strategy, extra in (
        ("native", ()),
        ("subset", ("--base", DATA)),
        ("auto", ("--base", DATA)),
    ):
        out = tmp_path / f"{strategy}.npy"
        args = ("query", hnsw_index, DATA, "-o", out, "--filter-strategy", strategy, *extra)
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        ids = np.load(out)
        for row in range(0, dataset.n_queries, 37):
            allowed = passing_ids(index, dataset.query_labels.row(row))
            assert np.isin(ids[row][ids[row] >= 0], allowed).all()
        if strategy == "subset":  # exact over the passing vectors: the filtered truth
            filtered = np.diff(dataset.query_labels.indptr) > 0  # unfiltered: the index's
            np.testing.assert_array_equal(ids[filtered, :10], dataset.neighbors[filtered, :10])
    refused = run_cli(
        "query", hnsw_index, DATA, "-o", tmp_path / "x.npy", "--filter-strategy", "subset"
    )
    assert refused.exit_code == 2
    assert refused.output == (
        "Error: --filter-strategy subset searches the base vectors: give them with --base\n"
    )


@pytest.mark.slow
def test_tune_for_a_selectivity_band_with_each_strategy(tmp_path: Path) -> None:
    found = {}
    for strategy in ("auto", "native"):
        result = run_cli(
            "tune", DATA, "-e", "faiss", "--build-grid", "factory=HNSW16,Flat",
            "--effort-grid", "16,32,64,128", "--target", "0.95", "--slice", "sel>=10%",
            "--threads", "1", "--filter-strategy", strategy, "--cache-dir", tmp_path, "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        found[strategy] = json.loads(result.stdout)["best"]
    # auto sends the rarer of these filters to exact search: less effort for the same band
    assert found["auto"]["effort"] < found["native"]["effort"]


def test_effort_bisects_each_query_under_its_strategy(hnsw_index: Path) -> None:
    medians = {}
    for strategy in ("subset", "native"):
        result = run_cli(
            "effort", hnsw_index, DATA, "--target", "0.9", "--grid", "10,20,40,80,160",
            "--filter-strategy", strategy, "--json", "-q",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        medians[strategy] = json.loads(result.stdout)["distribution"]["sel1-10%"]["median"]
    assert medians["subset"] == 10  # exact over the passing vectors: the least effort does
    assert medians["native"] >= medians["subset"]
