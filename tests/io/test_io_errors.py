"""Every bad input gives a DatasetError/InputError with a one-line message naming the file."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

from annkit.errors import DatasetError, InputError
from annkit.io import (
    describe_file,
    load_dataset,
    load_dataset_files,
    read_ids,
    read_vectors,
    read_weights,
    write_vectors,
)

SUPPORTED = ".npy, .fvecs, .bvecs, .ivecs, .fbin, .u8bin, .i8bin, .hdf5, .h5"


def _message(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- files and extensions


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(DatasetError) as excinfo:
        read_vectors(path)
    assert _message(excinfo) == f"data.txt: unknown vector file type '.txt'; supported: {SUPPORTED}"


def test_no_extension(tmp_path):
    (tmp_path / "data").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"^data: unknown vector file type \(no extension\)"):
        read_vectors(tmp_path / "data")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.fvecs"
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}: no such file$"):
        read_vectors(path)
    with pytest.raises(DatasetError, match="no such file"):
        read_ids(tmp_path / "nope.ivecs")
    with pytest.raises(DatasetError, match="no such file"):
        describe_file(tmp_path / "nope.hdf5")


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "dir.fvecs").mkdir()
    with pytest.raises(DatasetError, match="is a folder, not a file"):
        read_vectors(tmp_path / "dir.fvecs")


# ---------------------------------------------------------------- *bin headers


def test_truncated_fbin(tmp_path, rng, raw):
    data = rng.standard_normal((3, 4)).astype(np.float32)
    path = raw.bin(tmp_path / "v.fbin", data, "<f4", header=(10, 4))
    with pytest.raises(DatasetError) as excinfo:
        read_vectors(path)
    assert _message(excinfo) == (
        "v.fbin: truncated file: the header claims 10 x 4 float32 (168 bytes) "
        "but the file has only 56 bytes"
    )


def test_header_claiming_far_more_than_the_file_has(tmp_path, raw):
    # 4 billion x 4 billion must be rejected from the header alone, never allocated.
    path = raw.bin(tmp_path / "huge.u8bin", np.zeros((1, 4)), "u1", header=(2**32 - 1, 2**32 - 1))
    with pytest.raises(
        DatasetError,
        match=r"^huge\.u8bin: truncated file: the header claims "
        r"4294967295 x 4294967295 uint8",
    ):
        read_vectors(path)


def test_fbin_longer_than_header(tmp_path, rng, raw):
    path = raw.bin(tmp_path / "v.fbin", rng.random((3, 4)), "<f4", header=(2, 4))
    with pytest.raises(
        DatasetError,
        match=r"^v\.fbin: file size 56 bytes does not match the header's 2 x 4 float32 "
        r"\(40 bytes expected\)$",
    ):
        read_vectors(path)


def test_fbin_shorter_than_header(tmp_path):
    (tmp_path / "v.fbin").write_bytes(b"\x01\x00\x00")
    with pytest.raises(
        DatasetError, match=r"^v\.fbin: truncated file: 3 bytes is shorter than the 8-byte header$"
    ):
        read_vectors(tmp_path / "v.fbin")


def test_fbin_empty_set(tmp_path, raw):
    path = raw.bin(tmp_path / "v.fbin", np.zeros((0, 4)), "<f4")
    with pytest.raises(DatasetError, match=r"^v\.fbin: empty: the header says 0 vectors$"):
        read_vectors(path)


def test_fbin_zero_dimension(tmp_path, raw):
    path = raw.bin(tmp_path / "v.fbin", np.zeros((5, 0)), "<f4")
    with pytest.raises(DatasetError, match=r"^v\.fbin: header says dimension 0"):
        read_vectors(path)


def test_ibin_is_not_a_vector_format(tmp_path, raw):
    path = raw.bin(tmp_path / "gt.ibin", np.zeros((2, 2)), "<i4")
    with pytest.raises(DatasetError, match="unknown vector file type '.ibin'"):
        read_vectors(path)


# ---------------------------------------------------------------- *vecs records


def test_truncated_fvecs_message_from_the_brief(tmp_path, rng, raw):
    path = raw.vecs(tmp_path / "data.fvecs", rng.random((1, 128)), "<f4")
    with open(path, "ab") as handle:
        handle.write(b"\0" * (1000 - 516))
    with pytest.raises(DatasetError) as excinfo:
        read_vectors(path)
    assert _message(excinfo) == (
        "data.fvecs: truncated file: 1000 bytes is not a whole number of 516-byte records "
        "(dimension 128, from the first record)"
    )


def test_truncated_bvecs(tmp_path, rng, raw):
    path = raw.vecs(tmp_path / "b.bvecs", rng.integers(0, 255, (4, 10)), "u1")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(
        DatasetError,
        match=r"^b\.bvecs: truncated file: 53 bytes is not a whole number of "
        r"14-byte records",
    ):
        read_vectors(path)


def test_fvecs_records_with_differing_dimension(tmp_path, rng):
    # Three records of dimension 4 then one record of dimension 2 followed by 2 padding floats,
    # so the size is a whole number of records and only the dimension fields can tell.
    path = tmp_path / "mixed.fvecs"
    records = np.zeros((5, 5), dtype="<f4")
    records[:, 1:] = rng.random((5, 4))
    dims = records.view("<i4")
    dims[:, 0] = 4
    dims[3, 0] = 2
    dims[4, 0] = 7
    records.tofile(path)
    with pytest.raises(DatasetError) as excinfo:
        read_vectors(path)
    assert _message(excinfo) == (
        "mixed.fvecs: records have different dimensions: record 3 has dimension 2 "
        "but the first has 4 (2 records differ)"
    )


def test_fvecs_first_dimension_not_positive(tmp_path):
    np.array([-3, 0, 0, 0], dtype="<i4").tofile(tmp_path / "neg.fvecs")
    with pytest.raises(
        DatasetError,
        match=r"^neg\.fvecs: the first record's dimension field "
        r"is -3; expected a positive dimension$",
    ):
        read_vectors(tmp_path / "neg.fvecs")


def test_fvecs_empty_file(tmp_path):
    (tmp_path / "e.fvecs").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"^e\.fvecs: empty: the file holds no vectors"):
        read_vectors(tmp_path / "e.fvecs")


def test_fvecs_huge_dimension_field(tmp_path):
    np.array([2**31 - 1, 0], dtype="<i4").tofile(tmp_path / "big.fvecs")
    with pytest.raises(DatasetError, match=r"^big\.fvecs: truncated file: 8 bytes is not a whole"):
        read_vectors(tmp_path / "big.fvecs")


# ---------------------------------------------------------------- .npy


def test_npy_not_2d(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(5, dtype=np.float32))
    np.save(tmp_path / "three.npy", np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(
        DatasetError,
        match=r"^one\.npy: expected a 2-D \(n, d\) array of vectors, "
        r"got shape \(5,\)$",
    ):
        read_vectors(tmp_path / "one.npy")
    with pytest.raises(DatasetError, match=r"^three\.npy: expected a 2-D .* \(2, 3, 4\)$"):
        read_vectors(tmp_path / "three.npy")


def test_npy_empty_set(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(
        DatasetError, match=r"^e\.npy: empty: the file holds no vectors \(0 rows\)$"
    ):
        read_vectors(tmp_path / "e.npy")


def test_npy_truncated(tmp_path, rng):
    path = tmp_path / "t.npy"
    np.save(path, rng.random((100, 4)).astype(np.float32))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(
        DatasetError,
        match=r"^t\.npy: truncated file: the header claims shape "
        r"\(100, 4\) float32 \(1728 bytes\) but the file has only 500 bytes$",
    ):
        read_vectors(path)


def test_npy_object_array_is_never_unpickled(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"^obj\.npy: holds Python objects"):
        read_vectors(tmp_path / "obj.npy")


def test_npy_garbage(tmp_path):
    (tmp_path / "g.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DatasetError, match=r"^g\.npy: not a valid \.npy file"):
        read_vectors(tmp_path / "g.npy")


def test_npy_complex_and_float_ids(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 2), dtype=np.complex64))
    with pytest.raises(DatasetError, match=r"^c\.npy: has dtype complex64; expected a plain"):
        read_vectors(tmp_path / "c.npy")
    np.save(tmp_path / "f.npy", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(DatasetError, match=r"^f\.npy: has dtype float32; ground-truth ids must"):
        read_ids(tmp_path / "f.npy")


# ---------------------------------------------------------------- ids


def test_negative_ids_other_than_minus_one(tmp_path, raw):
    ok = np.array([[0, 1, -1], [2, -1, -1]])
    np.testing.assert_array_equal(read_ids(raw.vecs(tmp_path / "ok.ivecs", ok, "<i4")), ok)
    bad = np.array([[0, 1, 2], [3, -5, -1], [-2, 0, 0]])
    with pytest.raises(DatasetError) as excinfo:
        read_ids(raw.bin(tmp_path / "bad.ibin", bad, "<i4"))
    assert _message(excinfo) == (
        "bad.ibin: 2 ids are negative (first in row 1); only -1 may mark a missing neighbour"
    )


def test_ids_unknown_extension(tmp_path, raw):
    path = raw.bin(tmp_path / "gt.fbin", np.zeros((2, 2)), "<f4")
    with pytest.raises(
        DatasetError,
        match=r"^gt\.fbin: unknown ground-truth file type '\.fbin'; "
        r"supported: \.ivecs, \.ibin, \.npy, \.hdf5, \.h5$",
    ):
        read_ids(path)


# ---------------------------------------------------------------- HDF5


def test_not_an_hdf5_file(tmp_path):
    (tmp_path / "fake.hdf5").write_bytes(b"this is plain text, not HDF5" * 10)
    with pytest.raises(DatasetError, match=r"^fake\.hdf5: not an HDF5 file or damaged \("):
        read_vectors(tmp_path / "fake.hdf5")
    with pytest.raises(DatasetError, match="not an HDF5 file or damaged"):
        describe_file(tmp_path / "fake.hdf5")


def test_truncated_hdf5(tmp_path, ann_file):
    path = ann_file("cut.hdf5")
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(DatasetError, match=r"^cut\.hdf5: "):
        read_vectors(path)


def test_hdf5_train_wrong_ndim(tmp_path, raw):
    path = raw.hdf5(tmp_path / "d.hdf5", train=np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(DatasetError) as excinfo:
        read_vectors(path)
    assert _message(excinfo) == (
        "d.hdf5: dataset 'train' has 3-D shape (2, 3, 4); expected a 2-D (n, d) array of vectors"
    )


def test_hdf5_train_string_dtype(tmp_path):
    path = tmp_path / "s.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "train", data=np.array([b"a", b"b"], dtype=object), dtype=h5py.string_dtype()
        )
    with pytest.raises(
        DatasetError, match=r"^s\.hdf5: dataset 'train' has dtype string; expected numeric vectors$"
    ):
        read_vectors(path)


def test_hdf5_train_empty(tmp_path, raw):
    path = raw.hdf5(tmp_path / "e.hdf5", train=np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(DatasetError, match=r"^e\.hdf5: dataset 'train' is empty \(0 rows\)$"):
        read_vectors(path)


def test_hdf5_neighbors_float(tmp_path, raw):
    path = raw.hdf5(tmp_path / "n.hdf5", neighbors=np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(
        DatasetError,
        match=r"^n\.hdf5: dataset 'neighbors' has dtype float32; "
        r"expected integer ids$",
    ):
        read_ids(path)


def test_hdf5_no_neighbors(tmp_path, raw):
    path = raw.hdf5(tmp_path / "n.hdf5", train=np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(
        DatasetError,
        match=r"^n\.hdf5: missing dataset 'neighbors' "
        r"\(ground-truth ids\); datasets present: train$",
    ):
        read_ids(path)


# ---------------------------------------------------------------- weights and writers


def test_weights_binary_file_rejected(tmp_path, raw):
    path = raw.bin(tmp_path / "w.fbin", np.zeros((2, 2)), "<f4")
    with pytest.raises(DatasetError, match=r"^w\.fbin: query weights must be a \.npy or a text"):
        read_weights(path)


def test_weights_npy_2d_rejected(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((3, 2)))
    with pytest.raises(DatasetError, match=r"^w\.npy: query weights must be a 1-D array"):
        read_weights(tmp_path / "w.npy")


@pytest.mark.parametrize(
    ("filename", "values", "message"),
    [
        (
            "b.bvecs",
            [[0, 300]],
            r"^b\.bvecs: \.bvecs needs integer values in 0\.\.255; got "
            r"values 0\.\.300$",
        ),
        (
            "b.u8bin",
            [[0.5, 1.0]],
            r"^b\.u8bin: \.u8bin needs integer values in 0\.\.255; got "
            r"fractions$",
        ),
        ("b.i8bin", [[-129, 0]], r"^b\.i8bin: \.i8bin needs integer values in -128\.\.127"),
        ("b.ivecs", [[np.nan, 1]], r"^b\.ivecs: \.ivecs needs integer values"),
    ],
)
def test_write_integer_formats_check_values(tmp_path, filename, values, message):
    with pytest.raises(InputError, match=message):
        write_vectors(tmp_path / filename, np.array(values))
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_shapes_and_extensions(tmp_path):
    with pytest.raises(InputError, match=r"^v\.fbin: cannot write a 1-D array"):
        write_vectors(tmp_path / "v.fbin", np.zeros(4))
    with pytest.raises(InputError, match=r"^v\.fbin: cannot write an empty array"):
        write_vectors(tmp_path / "v.fbin", np.zeros((0, 4)))
    with pytest.raises(DatasetError, match=r"^v\.csv: unknown vector file type '\.csv'"):
        write_vectors(tmp_path / "v.csv", np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"cannot write: folder .* does not exist$"):
        write_vectors(tmp_path / "missing" / "v.fbin", np.zeros((2, 2)))


def test_damaged_global_heap_is_rejected_not_hung(ann_file):
    # One wrong byte in the size of the 'distance' string inside its global heap collection
    # makes libhdf5's decoder loop forever; annkit must detect it before reading the attribute.
    path = ann_file("heap.hdf5", attrs={"distance": "angular", "point_type": "float"})
    data = bytearray(path.read_bytes())
    collection = data.find(b"GCOL")
    assert collection > 0
    size_field = collection + 16 + 8  # collection header, then object 1's index/refs/reserved
    assert int.from_bytes(data[size_field : size_field + 8], "little") == len("angular")
    data[size_field] = 57
    path.write_bytes(bytes(data))
    message = rf"^heap\.hdf5: damaged HDF5 file \(corrupt global heap at byte {collection}\)$"
    with pytest.raises(DatasetError, match=message):
        describe_file(path)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_truncated_contiguous_hdf5_dataset(tmp_path, rng):
    # Cut the file inside train's raw data and patch the superblock's end-of-file address
    # (version-0 superblock, byte 40) so the file itself opens: the missing bytes must still be
    # reported (by libhdf5's own size check or annkit's) before anything is allocated or read.
    path = tmp_path / "cut.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("train", data=rng.random((500, 8)))  # float64: read, not mapped
    with h5py.File(path) as handle:
        offset = handle["train"].id.get_offset()
    data = bytearray(path.read_bytes())
    assert data[8] == 0 and offset + 500 * 8 * 8 == len(data)
    data = data[: offset + 1000]
    data[40:48] = len(data).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"^cut\.h5: (truncated file|damaged HDF5 file) "):
        read_vectors(path)


def test_damaged_attribute_type_is_not_read(ann_file):
    # Turning the 'point_type' string's datatype into a variable-length *sequence* of garbage
    # makes libhdf5 crash (SIGSEGV) when the value is read; annkit must not read it. Run in a
    # child process so a regression fails this test instead of killing the test run.
    path = ann_file("vlen.hdf5", attrs={"distance": "angular", "point_type": "float"})
    data = bytearray(path.read_bytes())
    name_at = data.find(b"point_type\0")
    type_at = data.find(b"\x19\x01", name_at, name_at + 24)
    assert name_at > 0 and type_at > 0
    data[type_at + 1] = 0xE9
    path.write_bytes(bytes(data))
    code = (
        "import sys; from annkit.io import describe_file, load_dataset\n"
        "info = describe_file(sys.argv[1])\n"
        "print(info['attrs']['point_type'], info['attrs']['distance'])\n"
        "print(load_dataset(sys.argv[1]).metric)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.splitlines() == ["<not shown: not a number or string> angular", "angular"]


def test_float64_beyond_float32_range_becomes_inf_quietly(tmp_path, raw):
    np.save(tmp_path / "big.npy", np.array([[1e300, 1.0], [1.0, 2.0]]))
    raw.bin(tmp_path / "q.fbin", np.ones((1, 2)), "<f4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(read_vectors(tmp_path / "big.npy")[0, 0])
    with pytest.raises(DatasetError, match=r"^big\.npy: 1 of 2 rows contain NaN or inf values"):
        load_dataset_files(tmp_path / "big.npy", tmp_path / "q.fbin", metric="l2")
