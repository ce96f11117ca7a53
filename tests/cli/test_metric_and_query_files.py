"""The metric comes from the data, queries and ground truth from ann-benchmarks HDF5 files,
and --max-queries samples them: the second new user's cases, each one reproduced."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from annkit.cli.main import cli
from annkit.groundtruth import compute_ground_truth
from annkit.io.bundled import bundled_path
from annkit.types import Dataset

WORDS = bundled_path("words-10k")


def run(*args: object):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def hnsw_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An angular hnsw index of words-10k (M=8, one thread)."""
    out = tmp_path_factory.mktemp("idx") / "hnsw8"
    result = run("build", "words-10k", "-e", "hnsw", "-p", "M=8", "--threads", "1", "-o", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def split_files(words10k: Dataset, tmp_path: Path) -> dict[str, Path]:
    """The bundled set exported as a user would: query and ground-truth arrays (.npy, which
    cannot declare a metric) and a queries-only ann-benchmarks HDF5 (test, neighbors,
    distances, no train) that declares angular."""
    queries = tmp_path / "q.npy"
    np.save(queries, words10k.queries[:200])
    truth = tmp_path / "gt.npy"
    np.save(truth, words10k.neighbors[:200, :10].astype(np.int32))
    only = tmp_path / "queries-only.hdf5"
    with h5py.File(only, "w") as handle:
        handle.attrs["distance"] = "angular"
        handle["test"] = words10k.queries[:200]
        handle["neighbors"] = words10k.neighbors[:200, :10].astype(np.int32)
        handle["distances"] = np.zeros((200, 10), dtype=np.float32)
        handle["test_weights"] = words10k.weights[:200]
    return {"queries": queries, "truth": truth, "only": only}


def test_evaluate_with_separate_queries_keeps_the_angular_metric_of_the_base_file(
    hnsw_index: Path, split_files: dict[str, Path]
) -> None:
    """Before: "dataset ... is scored with euclidean" about a file that says angular."""
    result = run(
        "evaluate",
        hnsw_index,
        WORDS,
        "--queries",
        split_files["queries"],
        "--groundtruth",
        split_files["truth"],
        "-p",
        "ef=40",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert '"metric": "angular"' in result.output


def test_groundtruth_of_separate_queries_is_angular_when_the_base_file_says_so(
    words10k: Dataset, split_files: dict[str, Path], tmp_path: Path
) -> None:
    """Before: quietly euclidean truth, which differed in some top-k rows."""
    out = tmp_path / "gt.hdf5"
    result = run("groundtruth", WORDS, split_files["queries"], "-k", "10", "-o", out)
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as handle:
        assert handle.attrs["distance"] == "angular"
        ids = handle["neighbors"][:]
    expected = compute_ground_truth(words10k.base, words10k.queries[:200], 10, "angular").ids
    np.testing.assert_array_equal(ids, expected)


def test_ids_only_groundtruth_says_how_it_was_made(
    split_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ids.hdf5"
    result = run("groundtruth", WORDS, split_files["queries"], "-k", "5", "--ids-only", "-o", out)
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as handle:
        assert handle.attrs["distance"] == "angular"
        assert int(handle.attrs["k"]) == 5
        assert "words-10k" in str(handle.attrs["source"])
        assert set(handle) == {"neighbors", "distances"}


def test_files_without_a_declared_metric_are_refused_not_defaulted(
    words10k: Dataset, split_files: dict[str, Path], tmp_path: Path
) -> None:
    base = tmp_path / "base.npy"
    np.save(base, words10k.base[:500])
    result = run("groundtruth", base, split_files["queries"], "-k", "5", "-o", tmp_path / "g.h5")
    assert result.exit_code == 2
    assert result.output == (
        "Error: no metric: base.npy, q.npy declare none; pass --metric euclidean, angular or ip\n"
    )
    assert not (tmp_path / "g.h5").exists()
    result = run("build", base, "-e", "flat", "-o", tmp_path / "flat")
    assert result.exit_code == 2
    assert result.output == (
        "Error: no metric: base.npy declares none; pass --metric euclidean, angular or ip\n"
    )
    # an explicit --metric is the user's word: accepted
    ok = run("build", base, "-e", "flat", "--metric", "angular", "-o", tmp_path / "flat")
    assert ok.exit_code == 0, ok.output


def test_files_that_disagree_on_the_metric_are_refused(
    words10k: Dataset, split_files: dict[str, Path], tmp_path: Path
) -> None:
    base = tmp_path / "euclid.hdf5"
    with h5py.File(base, "w") as handle:
        handle.attrs["distance"] = "euclidean"
        handle["train"] = words10k.base[:500]
    result = run("groundtruth", base, split_files["only"], "-k", "5", "-o", tmp_path / "g.h5")
    assert result.exit_code == 2
    assert result.output == (
        "Error: the files disagree on the metric (euclid.hdf5 says euclidean, "
        "queries-only.hdf5 says angular): pass --metric\n"
    )


def test_a_queries_only_hdf5_serves_as_queries_and_as_ground_truth(
    hnsw_index: Path, split_files: dict[str, Path], tmp_path: Path
) -> None:
    """Before: "cannot tell which holds the vectors"; the user exported arrays with h5py."""
    only = split_files["only"]
    result = run("evaluate", hnsw_index, WORDS, "--queries", only, "--groundtruth", only, "--json")
    assert result.exit_code == 0, result.output
    assert '"queries": 200' in result.output
    out = tmp_path / "ids.npy"
    result = run("query", hnsw_index, only, "-k", "10", "-o", out)
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (200, 10)


def test_max_queries_takes_the_same_seeded_sample_everywhere(
    hnsw_index: Path, words10k: Dataset, tmp_path: Path
) -> None:
    result = run("evaluate", hnsw_index, "words-10k", "--max-queries", "150", "--json")
    assert result.exit_code == 0, result.output
    assert '"queries": 150' in result.output
    assert "words-10k[150 of 1000 queries, seed 0]" in result.output
    ids = tmp_path / "ids.npy"
    assert run("query", hnsw_index, WORDS, "-o", ids, "--max-queries", "150").exit_code == 0
    truth = tmp_path / "gt.hdf5"
    assert run("groundtruth", "words-10k", "-k", "10", "-o", truth, "--max-queries", "150")
    with h5py.File(truth, "r") as handle:
        sampled = handle["test"][:]
    assert sampled.shape == (150, words10k.dim)
    rows = [int(np.flatnonzero((words10k.queries == row).all(axis=1))[0]) for row in sampled]
    assert rows == sorted(rows)  # a sample in the file's order


def test_name_labels_the_dataset(hnsw_index: Path) -> None:
    result = run("evaluate", hnsw_index, "words-10k", "--name", "my words", "--json")
    assert result.exit_code == 0, result.output
    assert '"dataset": "my words"' in result.output


def test_explain_shows_hardness_and_where_the_search_ended(hnsw_index: Path) -> None:
    result = run("explain", hnsw_index, "words-10k", "--query-text", "SI", "-p", "ef=10")
    # "si" starts several queries: the user is told which
    assert result.exit_code == 2 and "start with 'SI'" in result.output
    result = run("explain", hnsw_index, "words-10k", "--query-text", "six", "-p", "ef=10")
    assert result.exit_code == 0, result.output
    assert "hardness: lid " in result.output and "harder than" in result.output
    assert "search ended: partial" in result.output
    data = run("explain", hnsw_index, "words-10k", "--query", "17", "-p", "ef=10", "--json").output
    assert '"ending": "partial"' in data and '"harder_than"' in data
