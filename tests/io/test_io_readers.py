"""Readers against files written by hand in the documented layouts (not by annkit)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from annkit.errors import DatasetError
from annkit.io import describe_file, read_ids, read_vectors, read_weights


def _is_memmapped(array: np.ndarray) -> bool:
    """True if the array is a np.memmap or a view whose base chain ends in an mmap."""
    if isinstance(array, np.memmap):
        return True
    base = array.base
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


# ---------------------------------------------------------------- TEXMEX *vecs


def test_fvecs_is_memory_mapped(tmp_path, rng, raw):
    data = rng.standard_normal((50, 12)).astype(np.float32)
    path = raw.vecs(tmp_path / "base.fvecs", data, "<f4")
    out = read_vectors(path)
    assert out.shape == (50, 12) and out.dtype == np.float32
    np.testing.assert_array_equal(out, data)
    assert _is_memmapped(out)
    assert not out.flags.owndata and not out.flags.writeable


def test_bvecs_converts_uint8_to_float32(tmp_path, rng, raw):
    data = rng.integers(0, 256, size=(30, 16)).astype(np.uint8)
    out = read_vectors(raw.vecs(tmp_path / "base.bvecs", data, "u1"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data.astype(np.float32))


def test_ivecs_as_vectors_and_as_ids(tmp_path, rng, raw):
    data = rng.integers(-1, 1000, size=(7, 5)).astype(np.int32)
    path = raw.vecs(tmp_path / "gt.ivecs", data, "<i4")
    vectors = read_vectors(path)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, data.astype(np.float32))
    ids = read_ids(path)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, data)


def test_single_record_fvecs(tmp_path, raw):
    path = raw.vecs(tmp_path / "one.fvecs", np.array([[1.5, -2.0, 3.0]]), "<f4")
    np.testing.assert_array_equal(read_vectors(path), [[1.5, -2.0, 3.0]])


# ---------------------------------------------------------------- big-ann *bin


def test_fbin_is_memory_mapped(tmp_path, rng, raw):
    data = rng.standard_normal((64, 10)).astype(np.float32)
    out = read_vectors(raw.bin(tmp_path / "base.fbin", data, "<f4"))
    np.testing.assert_array_equal(out, data)
    assert isinstance(out, np.memmap)
    assert out.offset == 8


@pytest.mark.parametrize(
    ("suffix", "dtype", "low", "high"),
    [(".u8bin", "u1", 0, 256), (".i8bin", "i1", -128, 128)],
)
def test_8bit_bin_converted_to_float32(tmp_path, rng, raw, suffix, dtype, low, high):
    data = rng.integers(low, high, size=(20, 6)).astype(dtype)
    out = read_vectors(raw.bin(tmp_path / f"base{suffix}", data, dtype))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data.astype(np.float32))


def test_ibin_ids(tmp_path, rng, raw):
    ids = rng.integers(0, 500, size=(9, 4)).astype(np.int32)
    out = read_ids(raw.bin(tmp_path / "gt.ibin", ids, "<i4"))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ids)


def test_ibin_with_trailing_distances_big_ann_layout(tmp_path, rng):
    ids = rng.integers(0, 500, size=(9, 4)).astype(np.int32)
    distances = rng.random((9, 4)).astype(np.float32)
    path = tmp_path / "gt.ibin"
    with open(path, "wb") as handle:
        np.array([9, 4], dtype="<u4").tofile(handle)
        ids.tofile(handle)
        distances.tofile(handle)
    np.testing.assert_array_equal(read_ids(path), ids)
    assert describe_file(path)["arrays"]["distances"]["shape"] == [9, 4]


# ---------------------------------------------------------------- .npy


def test_npy_float32_is_memory_mapped(tmp_path, rng):
    data = rng.standard_normal((25, 7)).astype(np.float32)
    np.save(tmp_path / "base.npy", data)
    out = read_vectors(tmp_path / "base.npy")
    np.testing.assert_array_equal(out, data)
    assert isinstance(out, np.memmap)


@pytest.mark.parametrize("dtype", ["float16", "float64", "uint8", "int8", "int32", ">f4"])
def test_npy_other_dtypes_converted(tmp_path, rng, dtype):
    data = (rng.standard_normal((12, 3)) * 50).astype(dtype)
    np.save(tmp_path / "base.npy", data)
    out = read_vectors(tmp_path / "base.npy")
    assert out.dtype == np.float32 and out.shape == (12, 3)
    np.testing.assert_array_equal(out, data.astype(np.float32))


def test_npy_fortran_order(tmp_path, rng):
    data = np.asfortranarray(rng.standard_normal((6, 4)).astype(np.float32))
    np.save(tmp_path / "f.npy", data)
    np.testing.assert_array_equal(read_vectors(tmp_path / "f.npy"), data)


def test_npy_ids(tmp_path, rng):
    ids = rng.integers(0, 100, size=(5, 3)).astype(np.uint32)
    ids[0, 2] = 0
    np.save(tmp_path / "gt.npy", ids)
    out = read_ids(tmp_path / "gt.npy")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ids)


def test_uppercase_extension_is_accepted(tmp_path, rng, raw):
    data = rng.standard_normal((3, 2)).astype(np.float32)
    np.testing.assert_array_equal(read_vectors(raw.bin(tmp_path / "B.FBIN", data, "<f4")), data)


# ---------------------------------------------------------------- HDF5


def test_hdf5_train_contiguous_is_memory_mapped(tmp_path, rng, raw):
    data = rng.standard_normal((30, 5)).astype(np.float32)
    path = raw.hdf5(tmp_path / "d.hdf5", train=data, test=data[:3])
    out = read_vectors(path)
    np.testing.assert_array_equal(out, data)
    assert isinstance(out, np.memmap)


def test_hdf5_memmap_offset_with_userblock(tmp_path, rng):
    data = rng.standard_normal((30, 5)).astype(np.float32)
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=1024) as handle:
        handle.create_dataset("train", data=data)
    out = read_vectors(path)
    np.testing.assert_array_equal(out, data)
    assert isinstance(out, np.memmap)


def test_hdf5_compressed_is_read_into_memory(tmp_path, rng):
    data = rng.standard_normal((30, 5)).astype(np.float32)
    path = tmp_path / "z.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("train", data=data, compression="gzip", chunks=(10, 5))
    out = read_vectors(path)
    assert not isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, data)


def test_hdf5_float64_is_converted(tmp_path, rng, raw):
    data = rng.standard_normal((4, 3))
    out = read_vectors(raw.hdf5(tmp_path / "d.hdf5", train=data))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, data, rtol=1e-6)


def test_hdf5_single_2d_dataset_without_train(tmp_path, rng, raw):
    data = rng.standard_normal((8, 4)).astype(np.float32)
    path = raw.hdf5(tmp_path / "emb.h5", embeddings=data, labels=np.arange(8))
    np.testing.assert_array_equal(read_vectors(path), data)


def test_hdf5_two_2d_datasets_without_train_is_ambiguous(tmp_path, rng, raw):
    data = rng.standard_normal((8, 4)).astype(np.float32)
    path = raw.hdf5(tmp_path / "emb.h5", a=data, b=data)
    with pytest.raises(
        DatasetError,
        match=r"^emb\.h5: no 'train' dataset and 2 2-D datasets \(a, b\); cannot tell which",
    ):
        read_vectors(path)


def test_hdf5_neighbors_as_ids(ann_file):
    path = ann_file()
    with h5py.File(path) as handle:
        expected = handle["neighbors"][()]
    ids = read_ids(path)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, expected)


# ---------------------------------------------------------------- weights


def test_weights_from_text_and_npy(tmp_path):
    (tmp_path / "w.txt").write_text("# query weights\n1\n2.5\n\n0  # unused query\n")
    np.testing.assert_array_equal(read_weights(tmp_path / "w.txt"), [1.0, 2.5, 0.0])
    np.save(tmp_path / "w.npy", np.array([3, 4], dtype=np.int32))
    out = read_weights(tmp_path / "w.npy")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [3.0, 4.0])


def test_weights_text_with_garbage(tmp_path):
    (tmp_path / "w.txt").write_text("1\nabc\n")
    with pytest.raises(DatasetError, match=r"^w\.txt: line 2: 'abc' is not a number$"):
        read_weights(tmp_path / "w.txt")


# ---------------------------------------------------------------- describe


def test_describe_single_array_formats(tmp_path, rng, raw):
    data = rng.standard_normal((11, 3)).astype(np.float32)
    raw.vecs(tmp_path / "a.fvecs", data, "<f4")
    raw.bin(tmp_path / "a.u8bin", np.zeros((11, 3)), "u1")
    np.save(tmp_path / "a.npy", data.astype(np.float16))
    assert describe_file(tmp_path / "a.fvecs")["arrays"] == {
        "data": {"shape": [11, 3], "dtype": "float32"}
    }
    info = describe_file(tmp_path / "a.u8bin")
    assert info["format"] == "u8bin" and info["size_bytes"] == 8 + 33
    assert info["arrays"]["data"] == {"shape": [11, 3], "dtype": "uint8"}
    assert describe_file(tmp_path / "a.npy")["arrays"]["data"]["dtype"] == "float16"


def test_describe_hdf5_lists_datasets_and_attrs(tmp_path, ann_file):
    path = ann_file()
    with h5py.File(path, "a") as handle:
        handle.create_dataset(
            "group/text", data=np.array([b"x", b"y"], dtype=object), dtype=h5py.string_dtype()
        )
    info = describe_file(path)
    assert info["format"] == "hdf5"
    assert info["arrays"]["train"] == {"shape": [40, 8], "dtype": "float32"}
    assert info["arrays"]["neighbors"] == {"shape": [5, 10], "dtype": "int32"}
    assert info["arrays"]["group/text"] == {"shape": [2], "dtype": "string"}
    assert info["attrs"] == {"distance": "euclidean", "point_type": "float"}
