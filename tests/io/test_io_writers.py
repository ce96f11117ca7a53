"""write_vectors / write_dataset_hdf5 / write_neighbors_hdf5: round trips and atomicity."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from annkit.errors import InputError
from annkit.io import (
    read_ids,
    read_vectors,
    write_dataset_hdf5,
    write_neighbors_hdf5,
    write_vectors,
)


@pytest.mark.parametrize("suffix", [".npy", ".fvecs", ".fbin"])
def test_float_round_trip(tmp_path, rng, suffix):
    data = rng.standard_normal((33, 9)).astype(np.float32)
    path = tmp_path / f"v{suffix}"
    write_vectors(path, data)
    np.testing.assert_array_equal(read_vectors(path), data)


@pytest.mark.parametrize(
    ("suffix", "low", "high"),
    [(".bvecs", 0, 256), (".u8bin", 0, 256), (".i8bin", -128, 128), (".ivecs", -(2**31), 2**31)],
)
def test_integer_round_trip(tmp_path, rng, suffix, low, high):
    data = rng.integers(low, high, size=(21, 5), dtype=np.int64)
    path = tmp_path / f"v{suffix}"
    write_vectors(path, data.astype(np.float64) if suffix == ".bvecs" else data)
    np.testing.assert_array_equal(read_vectors(path), data.astype(np.float32))


@pytest.mark.parametrize("suffix", [".ivecs", ".ibin", ".npy"])
def test_id_round_trip(tmp_path, rng, suffix):
    ids = rng.integers(-1, 10_000, size=(12, 7))
    path = tmp_path / f"gt{suffix}"
    write_vectors(path, ids)
    out = read_ids(path)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ids)


def test_written_layouts_match_the_documented_headers(tmp_path):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_vectors(tmp_path / "v.fbin", data)
    write_vectors(tmp_path / "v.fvecs", data)
    write_vectors(tmp_path / "v.bvecs", data)
    fbin = (tmp_path / "v.fbin").read_bytes()
    assert np.frombuffer(fbin[:8], "<u4").tolist() == [2, 3]
    assert np.frombuffer(fbin[8:], "<f4").tolist() == list(range(6))
    fvecs = np.fromfile(tmp_path / "v.fvecs", dtype="<i4").reshape(2, 4)
    assert fvecs[:, 0].tolist() == [3, 3]
    assert fvecs[:, 1:].view("<f4").ravel().tolist() == list(range(6))
    bvecs = (tmp_path / "v.bvecs").read_bytes()
    assert bvecs == b"\x03\0\0\0\0\1\2" + b"\x03\0\0\0\3\4\5"


def test_write_accepts_a_memmapped_view(tmp_path, rng):
    data = rng.standard_normal((10, 4)).astype(np.float32)
    write_vectors(tmp_path / "a.fvecs", data)
    view = read_vectors(tmp_path / "a.fvecs")  # a non-contiguous memmap view
    write_vectors(tmp_path / "b.fbin", view)
    np.testing.assert_array_equal(read_vectors(tmp_path / "b.fbin"), data)


def test_write_replaces_atomically_and_leaves_no_temp_files(tmp_path, rng, monkeypatch):
    path = tmp_path / "v.npy"
    first = rng.standard_normal((5, 2)).astype(np.float32)
    write_vectors(path, first)
    assert [p.name for p in tmp_path.iterdir()] == ["v.npy"]

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(InputError, match=r"v\.npy: cannot write: No space left on device$"):
        write_vectors(path, np.zeros((3, 3), dtype=np.float32))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["v.npy"]
    np.testing.assert_array_equal(read_vectors(path), first)


def test_write_dataset_hdf5_layout(tmp_path, rng):
    base = rng.standard_normal((20, 4))
    queries = rng.standard_normal((3, 4))
    neighbors = rng.integers(0, 20, size=(3, 5))
    distances = rng.random((3, 5))
    weights = np.array([1.0, 2.0, 3.0])
    path = tmp_path / "out.hdf5"
    write_dataset_hdf5(
        path,
        base=base,
        queries=queries,
        metric="cosine",
        neighbors=neighbors,
        distances=distances,
        weights=weights,
    )
    with h5py.File(path) as handle:
        assert handle["train"].dtype == np.float32 and handle["train"].shape == (20, 4)
        assert handle["test"].dtype == np.float32
        assert handle["neighbors"].dtype == np.int64
        assert handle["distances"].dtype == np.float32
        assert handle["test_weights"].dtype == np.float64
        assert handle.attrs["distance"] == "angular"
        assert handle.attrs["point_type"] == "float"
        np.testing.assert_array_equal(handle["neighbors"][()], neighbors)
    assert [p.name for p in tmp_path.iterdir()] == ["out.hdf5"]


def test_write_dataset_hdf5_checks_shapes(tmp_path):
    with pytest.raises(
        InputError,
        match=r"^o\.hdf5: base vectors have dimension 4 but queries "
        r"have dimension 3$",
    ):
        write_dataset_hdf5(
            tmp_path / "o.hdf5", base=np.zeros((2, 4)), queries=np.zeros((1, 3)), metric="euclidean"
        )
    with pytest.raises(InputError, match=r"^o\.hdf5: 2 weights but there are 1 queries$"):
        write_dataset_hdf5(
            tmp_path / "o.hdf5",
            base=np.zeros((2, 4)),
            queries=np.zeros((1, 4)),
            metric="euclidean",
            weights=[1.0, 2.0],
        )
    assert list(tmp_path.iterdir()) == []


def test_write_neighbors_hdf5(tmp_path, rng):
    ids = rng.integers(-1, 100, size=(4, 10))
    distances = rng.random((4, 10))
    write_neighbors_hdf5(tmp_path / "result.hdf5", ids, distances)
    with h5py.File(tmp_path / "result.hdf5") as handle:
        assert set(handle) == {"neighbors", "distances"}
        assert handle["neighbors"].dtype == np.int64
        assert handle["distances"].dtype == np.float32
        np.testing.assert_array_equal(handle["neighbors"][()], ids)
    np.testing.assert_array_equal(read_ids(tmp_path / "result.hdf5"), ids)
    with pytest.raises(InputError, match="neighbors has shape \\(4, 10\\) but distances has"):
        write_neighbors_hdf5(tmp_path / "x.hdf5", ids, distances[:, :5])
