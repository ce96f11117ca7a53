"""Labels: the CSR class, filters and selectivity, .spmat files and HDF5 label groups."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit.errors import DatasetError
from annkit.io import load_dataset, load_dataset_files, write_dataset_hdf5, write_vectors
from annkit.io.labels import read_label_group, read_labels_file, read_spmat, write_spmat
from annkit.labels import (
    Labels,
    check_labels,
    group_by_filter,
    passing_counts,
    passing_ids,
    postings,
    selectivity,
    summarize_labels,
)
from annkit.sources import open_dataset, sample_queries


def spmat_bytes(nrow: int, ncol: int, indptr, indices, nnz: int | None = None) -> bytes:
    """A big-ann-benchmarks .spmat file by hand (independent of annkit's writer)."""
    indices = np.asarray(indices, dtype="<i4")
    nnz = len(indices) if nnz is None else nnz
    return (
        np.array([nrow, ncol, nnz], dtype="<i8").tobytes()
        + np.asarray(indptr, dtype="<i8").tobytes()
        + indices.tobytes()
        + np.ones(len(indices), dtype="<f4").tobytes()
    )


BASE_ROWS = [[0, 1], [1], [2, 1, 1], [], [0]]


def test_rows_are_sorted_and_deduplicated():
    labels = Labels.from_rows(BASE_ROWS, 3, ["a", "b", "c"])
    assert labels.indptr.tolist() == [0, 2, 3, 5, 5, 6]
    assert labels.indices.tolist() == [0, 1, 1, 1, 2, 0]
    assert labels.indptr.dtype == np.int64 and labels.indices.dtype == np.int32
    assert labels.filters() == [(0, 1), (1,), (1, 2), (), (0,)]
    assert labels.labels_per_row().tolist() == [2, 1, 2, 0, 1]
    assert labels.rows_per_label().tolist() == [2, 3, 1]
    assert labels.label_name(2) == "c"


def test_take_and_repeat_follow_rows():
    labels = Labels.from_rows(BASE_ROWS, 3)
    assert labels.take(np.array([2, 0, 3])).filters() == [(1, 2), (0, 1), ()]
    assert labels.repeat(2).filters() == [f for f in labels.filters() for _ in range(2)]


def test_passing_ids_selectivity_and_groups():
    base = Labels.from_rows(BASE_ROWS, 4)
    queries = Labels.from_rows([[1], [0, 1], [], [3], [1], [2, 0]], 4)
    assert passing_ids(base, [1]).tolist() == [0, 1, 2]
    assert passing_ids(postings(base), [1, 0]).tolist() == [0]
    assert passing_ids(base, []).tolist() == [0, 1, 2, 3, 4]
    assert passing_ids(base, [3]).tolist() == []  # a label no vector has
    assert passing_counts(base, queries).tolist() == [3, 1, 5, 0, 3, 0]
    assert selectivity(base, queries).tolist() == [0.6, 0.2, 1.0, 0.0, 0.6, 0.0]
    groups = group_by_filter(queries)
    assert list(groups) == [(1,), (0, 1), (), (3,), (0, 2)]
    assert groups[(1,)].tolist() == [0, 4]


def test_summary_counts_share_passing():
    base = Labels.from_rows(BASE_ROWS, 3, ["a", "b", "c"])
    queries = Labels.from_rows([[1], [0, 1], [], [2, 0]], 3)
    summary = summarize_labels(base, queries)
    assert summary.n_labels == 3 and summary.labels_per_vector_max == 2
    assert summary.top_labels == (("b", 0.6), ("a", 0.4), ("c", 0.2))
    assert summary.unfiltered_share == 0.25
    assert summary.queries_none_pass == 1
    assert dict(summary.selectivity_percentiles or ())["max"] == 0.6
    assert dict(summary.bands or ()) == {
        "< 0.1%": 1,
        "0.1% - 1%": 0,
        "1% - 10%": 0,
        ">= 10%, filtered": 2,
    }


@pytest.mark.parametrize(
    ("indptr", "indices", "n_labels", "message"),
    [
        ([0, 2, 1], [0, 1], 3, "x: indptr is not monotonic: it decreases after row 1 (2 then 1)"),
        ([0, 1, 3], [0, 1], 3, "x: indptr ends at 3 but there are 2 label ids (wrong nnz"),
        ([1, 2], [0, 1], 3, "x: indptr starts at 1, not 0 (damaged)"),
        (
            [0, 1, 2],
            [0, 7],
            3,
            "x: label id 7 (row 1) is out of range: there are 3 labels (ids 0..2)",
        ),
        ([0, 1], [-1], 3, "x: label id -1 (row 0) is out of range"),
    ],
)
def test_check_labels_refuses_damage(indptr, indices, n_labels, message):
    with pytest.raises(DatasetError) as info:
        check_labels(np.array(indptr), np.array(indices), n_labels, where="x")
    assert str(info.value).startswith(message)


def test_check_labels_counts_rows_and_names():
    with pytest.raises(DatasetError, match=r"^x: 2 rows of labels for 3 vectors$"):
        check_labels([0, 1, 1], [0], 2, where="x", rows=3)
    with pytest.raises(DatasetError, match=r"^x: 1 label names for 2 labels$"):
        check_labels([0, 1], [0], 2, ["a"], where="x")


def test_spmat_round_trip_and_hand_written_file(tmp_path: Path):
    labels = Labels.from_rows(BASE_ROWS, 3)
    path = tmp_path / "b.spmat"
    write_spmat(path, labels)
    assert path.read_bytes() == spmat_bytes(5, 3, labels.indptr, labels.indices)
    assert read_spmat(path).same_as(labels)
    assert read_labels_file(path, "base", rows=5).same_as(labels)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00" * 10, "d.spmat: truncated file: 10 bytes is shorter than the 24-byte"),
        (
            spmat_bytes(2, 3, [0, 1, 2], [0, 1])[:-3],
            "d.spmat: truncated file: the header claims 2 rows, 3 labels, 2 nonzeros (64 bytes)"
            " but the file has only 61 bytes",
        ),
        (
            spmat_bytes(2, 3, [0, 1, 2], [0, 1], nnz=1),
            "d.spmat: file size 64 bytes does not match the header's 2 rows, 3 labels, "
            "1 nonzeros (56 bytes expected: wrong nnz or damaged)",
        ),
        (
            spmat_bytes(2, 3, [0, 2, 1], [0, 1]),
            "d.spmat: indptr is not monotonic: it decreases after row 1 (2 then 1) (damaged)",
        ),
        (
            spmat_bytes(2, 3, [0, 1, 2], [0, 3]),
            "d.spmat: label id 3 (row 1) is out of range: there are 3 labels (ids 0..2)",
        ),
        (
            np.array([-2, 3, 0], dtype="<i8").tobytes(),
            "d.spmat: damaged .spmat header: nrow -2, ncol 3, nnz 0",
        ),
    ],
)
def test_damaged_spmat_is_refused(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "d.spmat"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        read_spmat(path)
    assert str(info.value).startswith(message)


def test_unknown_label_file_type(tmp_path: Path):
    path = tmp_path / "l.txt"
    path.write_text("0 1\n")
    with pytest.raises(DatasetError, match=r"^l.txt: unknown label file type '.txt'; supported"):
        read_labels_file(path, "base")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 9), max_size=5), min_size=1, max_size=30),
)
def test_spmat_and_group_round_trip(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("labels")
    labels = Labels.from_rows(rows, 10, [f"l{i}" for i in range(10)])
    write_spmat(folder / "r.spmat", labels)
    back = read_spmat(folder / "r.spmat")
    assert back.filters() == [tuple(sorted(set(row))) for row in rows]
    with h5py.File(folder / "g.hdf5", "w") as handle:
        from annkit.io.hdf5 import write_label_group

        write_label_group(handle, "train_labels", labels)
    assert read_label_group(folder / "g.hdf5", "train_labels").same_as(labels)


@pytest.fixture
def labelled_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "lab.hdf5"
    write_dataset_hdf5(
        path,
        base=rng.standard_normal((5, 4)).astype(np.float32),
        queries=rng.standard_normal((3, 4)).astype(np.float32),
        metric="euclidean",
        base_labels=Labels.from_rows(BASE_ROWS, 3, ["a", "b", "c"]),
        query_labels=Labels.from_rows([[1], [], [0, 2]], 3, ["a", "b", "c"]),
    )
    return path


def test_dataset_carries_its_label_groups(labelled_file: Path):
    dataset = load_dataset(labelled_file)
    assert dataset.base_labels is not None and dataset.query_labels is not None
    assert dataset.base_labels.filters() == [(0, 1), (1,), (1, 2), (), (0,)]
    assert dataset.base_labels.names == ("a", "b", "c")
    assert dataset.query_labels.filters() == [(1,), (), (0, 2)]
    sample = sample_queries(dataset, 2, seed=0)
    rows = sample.query_rows
    assert rows is not None and sample.query_labels is not None
    assert sample.query_labels.filters() == [dataset.query_labels.filters()[r] for r in rows]


def test_label_files_reach_open_dataset(tmp_path: Path, labelled_file: Path):
    rng = np.random.default_rng(4)
    write_vectors(tmp_path / "b.fbin", rng.standard_normal((5, 4)).astype(np.float32))
    write_vectors(tmp_path / "q.fbin", rng.standard_normal((3, 4)).astype(np.float32))
    write_spmat(tmp_path / "b.spmat", Labels.from_rows(BASE_ROWS, 3))
    write_spmat(tmp_path / "q.spmat", Labels.from_rows([[2], [0], []], 3))
    dataset = open_dataset(
        tmp_path / "b.fbin",
        queries=tmp_path / "q.fbin",
        metric="euclidean",
        base_labels=tmp_path / "b.spmat",
        query_labels=tmp_path / "q.spmat",
    )
    assert dataset.query_labels is not None and dataset.query_labels.filters() == [(2,), (0,), ()]
    # a label file replaces a dataset file's own group
    replaced = open_dataset(labelled_file, query_labels=tmp_path / "q.spmat")
    assert replaced.query_labels is not None and replaced.query_labels.filters()[0] == (2,)
    # an HDF5 file as a label file gives its group for that side
    files = load_dataset_files(
        tmp_path / "b.fbin",
        tmp_path / "q.fbin",
        metric="euclidean",
        base_labels=labelled_file,
        query_labels=labelled_file,
    )
    assert files.base_labels is not None and files.base_labels.names == ("a", "b", "c")
    with pytest.raises(DatasetError, match=r"^b.spmat: 5 rows of labels for 3 vectors$"):
        open_dataset(labelled_file, query_labels=tmp_path / "b.spmat")


def _rewrite_group(path: Path, key: str, **changes) -> None:
    with h5py.File(path, "a") as handle:
        group = handle[key]
        for name, value in changes.items():
            if name == "shape":
                group.attrs["shape"] = value
            else:
                del group[name]
                if value is not None:
                    group.create_dataset(name, data=value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"indptr": np.array([0, 2, 1, 3, 3, 4], dtype=np.int64)},
            "lab.hdf5: train_labels: indptr is not monotonic: it decreases after row 1",
        ),
        (
            {"indices": np.array([0, 1, 1, 1, 2], dtype=np.int32)},
            "lab.hdf5: train_labels: indptr ends at 6 but there are 5 label ids (wrong nnz",
        ),
        (
            {"indices": np.array([0, 1, 1, 1, 9, 0], dtype=np.int32)},
            "lab.hdf5: train_labels: label id 9 (row 2) is out of range: there are 3 labels",
        ),
        (
            {"shape": np.array([4, 3])},
            "lab.hdf5: train_labels: attribute shape says 4 rows but indptr holds 5 (damaged)",
        ),
        ({"indptr": None}, "lab.hdf5: train_labels: missing dataset 'indptr'"),
        (
            {"indptr": np.array([0, 2, 3, 5, 5, 6, 6], dtype=np.int64), "shape": [6, 3]},
            "lab.hdf5: train_labels: 6 rows of labels for 5 vectors",
        ),
    ],
)
def test_damaged_label_group_is_refused(labelled_file: Path, changes: dict, message: str):
    _rewrite_group(labelled_file, "train_labels", **changes)
    with pytest.raises(DatasetError) as info:
        load_dataset(labelled_file)
    assert str(info.value).startswith(message)
