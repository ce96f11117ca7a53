"""load_dataset (ann-benchmarks HDF5 / bundled names) and load_dataset_files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from annkit.errors import DatasetError, InputError
from annkit.io import (
    BUNDLED_DATASETS,
    bundled_names,
    load_dataset,
    load_dataset_files,
    resolve_dataset_path,
    write_dataset_hdf5,
    write_vectors,
)
from annkit.types import Dataset

# ---------------------------------------------------------------- bundled


def test_bundled_words_10k_by_name():
    dataset = load_dataset("words-10k")
    assert isinstance(dataset, Dataset)
    assert dataset.name == "words-10k"
    assert dataset.metric == "angular"
    assert dataset.base.shape == (10_000, 384) and dataset.base.dtype == np.float32
    assert dataset.queries.shape == (1_000, 384) and dataset.queries.dtype == np.float32
    assert dataset.neighbors.shape == (1_000, 100) and dataset.neighbors.dtype == np.int64
    assert dataset.weights.shape == (1_000,) and dataset.weights.dtype == np.float64
    assert dataset.gt_depth == 100
    assert isinstance(dataset.base, np.memmap)
    assert dataset.source.endswith("words-10k.hdf5")


def test_bundled_names_and_resolution(tmp_path):
    assert bundled_names() == ["words-10k", "words-10k-labelled"]
    assert BUNDLED_DATASETS == {
        "words-10k": "words-10k.hdf5",
        "words-10k-labelled": "words-10k-labelled.hdf5",
    }
    assert resolve_dataset_path("words-10k").is_file()
    assert resolve_dataset_path("words-10k-labelled").is_file()
    own = tmp_path / "mine.hdf5"
    own.write_bytes(b"")
    assert resolve_dataset_path(own) == own


def test_unknown_spec_lists_bundled_names(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("words-1m")
    assert str(excinfo.value) == (
        "words-1m: no such file, and not a bundled dataset (bundled: words-10k, words-10k-labelled)"
    )


# ---------------------------------------------------------------- ann-benchmarks HDF5


def test_load_ann_benchmarks_file(ann_file):
    path = ann_file("glove-tiny.hdf5", attrs={"distance": "cosine"})
    dataset = load_dataset(path)
    assert dataset.name == "glove-tiny"
    assert dataset.metric == "angular"
    assert (dataset.n_base, dataset.n_queries, dataset.dim, dataset.gt_depth) == (40, 5, 8, 10)
    assert dataset.neighbors.dtype == np.int64
    assert dataset.weights.dtype == np.float64
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(dataset.base, handle["train"][()])
        np.testing.assert_array_equal(dataset.neighbors, handle["neighbors"][()])
    assert dataset.source == str(path)


def test_metric_default_override_and_bytes_attribute(ann_file):
    # no distance attribute and no --metric: refused, never a silent euclidean (issue 19)
    with pytest.raises(InputError, match=r"^no metric: a\.hdf5 declares none; pass --metric"):
        load_dataset(ann_file("a.hdf5", attrs={}))
    assert load_dataset(ann_file("a.hdf5", attrs={}), metric="l2").metric == "euclidean"
    assert load_dataset(ann_file("b.hdf5", attrs={"distance": b"dot"})).metric == "ip"
    assert load_dataset(ann_file("c.hdf5"), metric="angular").metric == "angular"
    with pytest.raises(InputError, match="unknown metric 'hamming'"):
        load_dataset(ann_file("d.hdf5"), metric="hamming")
    with pytest.raises(
        DatasetError,
        match=r"^e\.hdf5: 'distance' attribute: unknown metric "
        r"'jaccard'",
    ):
        load_dataset(ann_file("e.hdf5", attrs={"distance": "jaccard"}))


def test_optional_datasets_may_be_absent(ann_file):
    dataset = load_dataset(ann_file(neighbors=None, distances=None, test_weights=None))
    assert dataset.neighbors is None and dataset.weights is None and dataset.gt_depth == 0


def test_missing_test_dataset(ann_file):
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(ann_file("t.hdf5", test=None))
    assert str(excinfo.value) == (
        "t.hdf5: missing dataset 'test' (queries); datasets present: "
        "distances, neighbors, test_weights, train"
    )


def test_missing_train_dataset(ann_file):
    with pytest.raises(DatasetError, match=r"^t\.hdf5: missing dataset 'train' \(base vectors\)"):
        load_dataset(ann_file("t.hdf5", train=None))


def test_hdf5_dimension_mismatch(ann_file, rng):
    path = ann_file("m.hdf5", test=rng.random((5, 6)).astype(np.float32))
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(path)
    assert str(excinfo.value) == (
        "m.hdf5: base vectors have dimension 8 but queries have dimension 6"
    )


def test_hdf5_neighbors_checks(ann_file):
    with pytest.raises(
        DatasetError,
        match=r"^n\.hdf5: ground truth has 4 rows but there are 5 "
        r"queries$",
    ):
        load_dataset(ann_file("n.hdf5", neighbors=np.zeros((4, 10), dtype=np.int32)))
    with pytest.raises(
        DatasetError,
        match=r"^o\.hdf5: ground truth holds id 40 but the base set "
        r"has only 40 vectors \(ids 0\.\.39\)$",
    ):
        load_dataset(ann_file("o.hdf5", neighbors=np.full((5, 10), 40)))
    with pytest.raises(DatasetError, match=r"^p\.hdf5: dataset 'neighbors' has 3-D shape"):
        load_dataset(ann_file("p.hdf5", neighbors=np.zeros((5, 10, 1), dtype=np.int32)))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(4), r"^w\.hdf5: 4 query weights but there are 5 queries$"),
        (
            np.array([1, 1, np.nan, 1, 1.0]),
            r"^w\.hdf5: query weights must be finite; weight 2 is "
            r"nan$",
        ),
        (np.array([1, 1, 1, -0.5, 1]), r"^w\.hdf5: query weights must be >= 0; weight 3 is -0\.5$"),
        (np.zeros(5), r"^w\.hdf5: query weights are all zero$"),
        (np.ones((5, 2)), r"^w\.hdf5: dataset 'test_weights' has shape \(5, 2\); expected 1-D"),
    ],
)
def test_hdf5_bad_weights(ann_file, weights, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(ann_file("w.hdf5", test_weights=weights))


def test_hdf5_nan_and_zero_vectors(ann_file, rng):
    base = rng.standard_normal((40, 8)).astype(np.float32)
    base[7, 3] = np.nan
    with pytest.raises(
        DatasetError,
        match=r"^x\.hdf5: train: 1 of 40 rows contain NaN or inf "
        r"values \(first: row 7\)$",
    ):
        load_dataset(ann_file("x.hdf5", train=base))
    assert load_dataset(ann_file("y.hdf5", train=base), validate=False).n_base == 40
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    queries[1] = 0
    path = ann_file("z.hdf5", test=queries, attrs={"distance": "angular"})
    with pytest.raises(DatasetError, match=r"^z\.hdf5: test: 1 of 5 rows are zero vectors"):
        load_dataset(path)
    assert load_dataset(path, metric="euclidean").n_queries == 5


def test_not_hdf5_spec(tmp_path, rng):
    write_vectors(tmp_path / "base.fvecs", rng.random((3, 2)))
    with pytest.raises(
        DatasetError,
        match=r"^base\.fvecs: a dataset file must be an "
        r"ann-benchmarks HDF5 file",
    ):
        load_dataset(tmp_path / "base.fvecs")
    (tmp_path / "junk.hdf5").write_text("hello")
    with pytest.raises(DatasetError, match=r"^junk\.hdf5: not an HDF5 file or damaged"):
        load_dataset(tmp_path / "junk.hdf5")


def test_write_dataset_hdf5_then_load(tmp_path, rng):
    base = rng.standard_normal((30, 6)).astype(np.float32)
    queries = rng.standard_normal((4, 6)).astype(np.float32)
    neighbors = rng.integers(0, 30, size=(4, 3))
    path = tmp_path / "made.h5"
    write_dataset_hdf5(
        path,
        base=base,
        queries=queries,
        metric="ip",
        neighbors=neighbors,
        weights=np.array([1.0, 2, 3, 4]),
    )
    dataset = load_dataset(path)
    assert (dataset.name, dataset.metric) == ("made", "ip")
    np.testing.assert_array_equal(dataset.base, base)
    assert isinstance(dataset.base, np.memmap)
    np.testing.assert_array_equal(dataset.neighbors, neighbors)
    np.testing.assert_array_equal(dataset.weights, [1, 2, 3, 4])


# ---------------------------------------------------------------- separate files


@pytest.fixture
def files(tmp_path, rng, raw):
    base = rng.standard_normal((50, 4)).astype(np.float32)
    queries = rng.standard_normal((6, 4)).astype(np.float32)
    raw.vecs(tmp_path / "sift.fvecs", base, "<f4")
    raw.bin(tmp_path / "queries.fbin", queries, "<f4")
    raw.vecs(tmp_path / "gt.ivecs", rng.integers(0, 50, size=(6, 5)), "<i4")
    (tmp_path / "weights.txt").write_text("\n".join(["1", "2", "3", "4", "5", "6"]) + "\n")
    return tmp_path, base, queries


def test_load_dataset_files(files):
    folder, base, queries = files
    dataset = load_dataset_files(
        folder / "sift.fvecs",
        folder / "queries.fbin",
        folder / "gt.ivecs",
        metric="l2",
        weights=folder / "weights.txt",
    )
    assert dataset.name == "sift+queries"  # the queries come from another file
    assert dataset.metric == "euclidean"
    np.testing.assert_array_equal(dataset.base, base)
    np.testing.assert_array_equal(dataset.queries, queries)
    assert dataset.neighbors.shape == (6, 5) and dataset.neighbors.dtype == np.int64
    np.testing.assert_array_equal(dataset.weights, [1, 2, 3, 4, 5, 6])
    assert "sift.fvecs" in dataset.source and "weights.txt" in dataset.source


def test_load_dataset_files_minimal_with_name(files):
    folder, _, _ = files
    dataset = load_dataset_files(
        folder / "sift.fvecs", folder / "queries.fbin", name="mine", metric="l2"
    )
    assert dataset.name == "mine" and dataset.neighbors is None and dataset.weights is None


def test_load_dataset_files_dimension_mismatch(files, rng, raw):
    folder, _, _ = files
    raw.bin(folder / "q3.fbin", rng.random((6, 3)), "<f4")
    with pytest.raises(DatasetError) as excinfo:
        load_dataset_files(folder / "sift.fvecs", folder / "q3.fbin", metric="l2")
    assert str(excinfo.value) == (
        "sift.fvecs + q3.fbin: base vectors have dimension 4 but queries have dimension 3"
    )


def test_load_dataset_files_weights_wrong_length(files):
    folder, _, _ = files
    (folder / "w5.txt").write_text("1\n2\n3\n4\n5\n")
    with pytest.raises(DatasetError) as excinfo:
        load_dataset_files(
            folder / "sift.fvecs", folder / "queries.fbin", weights=folder / "w5.txt", metric="l2"
        )
    assert str(excinfo.value) == "w5.txt: 5 query weights but there are 6 queries"


def test_load_dataset_files_groundtruth_rows(files, rng, raw):
    folder, _, _ = files
    raw.vecs(folder / "gt7.ivecs", rng.integers(0, 50, size=(7, 5)), "<i4")
    with pytest.raises(
        DatasetError,
        match=r"^gt7\.ivecs: ground truth has 7 rows but there are 6 "
        r"queries$",
    ):
        load_dataset_files(
            folder / "sift.fvecs", folder / "queries.fbin", folder / "gt7.ivecs", metric="l2"
        )


def test_load_dataset_files_empty_queries_and_angular_zero(files, raw):
    folder, _, _ = files
    raw.bin(folder / "none.fbin", np.zeros((0, 4)), "<f4")
    with pytest.raises(DatasetError, match=r"^none\.fbin: empty: the header says 0 vectors$"):
        load_dataset_files(folder / "sift.fvecs", folder / "none.fbin", metric="l2")
    raw.bin(folder / "zero.fbin", np.zeros((2, 4)), "<f4")
    with pytest.raises(DatasetError, match=r"^zero\.fbin: 2 of 2 rows are zero vectors"):
        load_dataset_files(folder / "sift.fvecs", folder / "zero.fbin", metric="cosine")
    dataset = load_dataset_files(folder / "sift.fvecs", folder / "zero.fbin", metric="l2")
    assert dataset.n_queries == 2
