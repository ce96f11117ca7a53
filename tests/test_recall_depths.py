"""Recall at other depths (10@100), ann-benchmarks' relative distance error and the engine's
work unit (issue 19, items 9 and 17), each checked against an independent computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bundles import make_index
from cli_runner import run_cli

from annkit.errors import InputError
from annkit.evaluate import measure_setting
from annkit.measure import Measure, parse_depths
from annkit.metrics import recall_at_depth, relative_distance_error
from annkit.types import DEFAULT_WORK_UNIT, RunRecord, work_axis_label, work_marker


def _angular_distances(dataset) -> np.ndarray:
    """All query-to-base angular distances (1 - cosine) in float64, by numpy alone."""
    base = dataset.base.astype(np.float64)
    queries = dataset.queries.astype(np.float64)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return 1.0 - queries @ base.T


@pytest.fixture(scope="module")
def numpy_truth(words10k):
    """(all distances (nq, n), true top-100 ids nearest first) of words-10k by numpy."""
    distances = _angular_distances(words10k)
    order = np.argsort(distances, axis=1, kind="stable")[:, :100]
    return distances, order


def test_recall_10_at_100_equals_numpy_on_words10k(hnsw_words10k, words10k, numpy_truth):
    measure = Measure(k=100, runs=1, depths=((10, 100), (1, 10)))
    evaluation = measure_setting(hnsw_words10k, words10k, measure, {"ef": 100}, with_slices=False)
    assert evaluation.recall_at is not None and list(evaluation.recall_at) == ["10@100", "1@10"]
    returned = evaluation.returned_ids
    assert returned is not None and returned.shape == (words10k.n_queries, 100)
    _, true_ids = numpy_truth
    expected = np.mean(
        [
            len(set(true_ids[row, :10].tolist()) & set(returned[row, :100].tolist())) / 10
            for row in range(words10k.n_queries)
        ]
    )
    first = np.mean([true_ids[row, 0] in returned[row, :10] for row in range(len(returned))])
    # numpy's exact order may break a tie at the 10th neighbour the other way: a hair apart
    assert evaluation.recall_at["10@100"] == pytest.approx(expected, abs=2e-3)
    assert evaluation.recall_at["1@10"] == pytest.approx(first, abs=2e-3)
    assert 0.5 < evaluation.recall_at["10@100"] <= 1.0
    # and in the record a bench run would write
    record = RunRecord.from_dict(
        json.loads(json.dumps(RunRecord.from_evaluation(evaluation, "r").to_dict()))
    )
    assert record.recall_at == evaluation.recall_at


def test_relative_distance_error_equals_numpy(hnsw_words10k, words10k, numpy_truth):
    evaluation = measure_setting(
        hnsw_words10k, words10k, Measure(k=10, runs=1), {"ef": 10}, with_slices=False
    )
    distances, true_ids = numpy_truth
    returned = evaluation.returned_ids
    assert returned is not None and (returned >= 0).all()
    rows = np.arange(len(returned))[:, None]
    found_total = distances[rows, returned].sum()
    true_total = distances[rows, true_ids[:, :10]].sum()
    expected = found_total / true_total - 1.0  # ann-benchmarks' rel, minus 1
    assert evaluation.relative_distance_error == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert evaluation.relative_distance_error > 0  # ef=10 misses some neighbours
    assert evaluation.to_dict()["relative_distance_error"] == evaluation.relative_distance_error


def test_the_metrics_on_small_cases():
    true_ids = np.array([[1, 2, 3], [4, 5, 6], [-1, -1, -1]])
    found = np.array([[3, 9, 1, 1], [7, 8, 9, 4], [1, 2, 3, 4]])
    assert recall_at_depth(true_ids, found, 2, 4).tolist() == [0.5, 0.5, 1.0]
    assert recall_at_depth(true_ids, found, 3, 3).tolist() == pytest.approx([2 / 3, 0.0, 1.0])
    true_d = np.array([[1.0, 2.0], [1.0, 1.0]])
    found_d = np.array([[1.0, 3.0], [2.0, np.inf]])  # a missing second neighbour
    # (1 + 3 + 2) / (1 + 2 + 1) - 1: only returned positions count
    assert relative_distance_error(true_d, found_d, 2) == pytest.approx(0.5)
    assert relative_distance_error(np.zeros((1, 2)), np.ones((1, 2)), 2) is None


def test_depths_are_checked_in_one_line():
    assert parse_depths(["10@100", " 1@10 "]) == ((10, 100), (1, 10))
    with pytest.raises(InputError, match=r"^recall depth '10x100': use A@B, e.g. 10@100$"):
        parse_depths(["10x100"])
    with pytest.raises(InputError) as caught:
        Measure(k=10, depths=((10, 100),))
    assert str(caught.value) == (
        "recall at 10@100 counts among the first 100 results: search with -k 100 or more (k is 10)"
    )
    with pytest.raises(InputError, match=r"^recall at 20@10: use A@B with 1 <= A <= B"):
        Measure(k=10, depths=((20, 10),))


def test_evaluate_recall_at_on_the_command_line(hnsw_words10k):
    index = hnsw_words10k.path
    result = run_cli("evaluate", index, "words-10k", "-k", "20", "--recall-at", "10@20", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["recall_at"]) == {"10@20"} and 0 < out["recall_at"]["10@20"] <= 1
    assert out["relative_distance_error"] >= 0
    table = run_cli("evaluate", index, "words-10k", "-k", "20", "--recall-at", "10@20", "-q")
    assert table.exit_code == 0 and "recall 10@20" in table.stdout
    assert "relative distance error" in table.stdout
    refused = run_cli("evaluate", index, "words-10k", "--recall-at", "10@100")
    assert refused.exit_code == 2
    assert refused.stderr.strip().endswith("search with -k 100 or more (k is 10)")


@pytest.mark.parametrize(
    ("factory", "unit"),
    [
        ("IVF16,PQ48x4fs", "PQ code distances"),
        ("IVF16,PQ48x4fs,RFlat", "PQ code distances"),
        ("IVF16,Flat", DEFAULT_WORK_UNIT),
    ],
)
def test_a_fast_scan_record_says_its_work_unit(tmp_path, words10k, factory, unit):
    bundle = make_index(tmp_path / "faiss", words10k, "faiss", {"factory": factory})
    evaluation = measure_setting(
        bundle, words10k, Measure(k=10, runs=1), {"nprobe": 4}, with_slices=False
    )
    assert evaluation.distance_computations is not None and evaluation.work_unit == unit
    record = RunRecord.from_evaluation(evaluation, "faiss-1").to_dict()
    assert record["work_unit"] == unit
    result = run_cli("evaluate", tmp_path / "faiss", "words-10k", "-p", "nprobe=4", "-q")
    assert result.exit_code == 0, result.output
    assert ("(codes)" in result.stdout) == (unit != DEFAULT_WORK_UNIT)


def test_work_unit_markers_and_axis_labels():
    assert work_marker(None) == "" and work_marker(DEFAULT_WORK_UNIT) == ""
    assert work_marker("PQ code distances") == "codes"
    assert work_axis_label([None, DEFAULT_WORK_UNIT]) == DEFAULT_WORK_UNIT
    assert work_axis_label(["PQ code distances", None]) == (
        "PQ code distances / distance computations"
    )
