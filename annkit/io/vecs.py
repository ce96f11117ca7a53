"""TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs`` files.

Each record is a little-endian int32 dimension ``d`` followed by ``d`` values: float32
(``.fvecs``), int32 (``.ivecs``) or uint8 (``.bvecs``). Every record must have the same ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.errors import DatasetError
from annkit.io._common import (
    BLOCK_ROWS,
    PathLike,
    as_2d_for_write,
    atomic_write,
    check_integer_values,
    display_name,
    file_size,
    find_bad_ids,
    read_exact,
    require_file,
    to_float32,
)

VECS_DTYPES: dict[str, np.dtype] = {
    ".fvecs": np.dtype("<f4"),
    ".ivecs": np.dtype("<i4"),
    ".bvecs": np.dtype("u1"),
}


@dataclass(frozen=True)
class VecsLayout:
    """Shape of a ``*vecs`` file as derived from its first record and its size."""

    n: int
    d: int
    dtype: np.dtype
    record_bytes: int


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in VECS_DTYPES:
        raise DatasetError(f"{display_name(path)}: not a .fvecs/.ivecs/.bvecs file")
    return suffix


def vecs_layout(path: PathLike) -> VecsLayout:
    """Read the first dimension field and check the file size is a whole number of records."""
    p = require_file(path)
    name = display_name(p)
    dtype = VECS_DTYPES[_suffix(p)]
    size = file_size(p)
    if size == 0:
        raise DatasetError(f"{name}: empty: the file holds no vectors (0 bytes)")
    if size < 4:
        raise DatasetError(
            f"{name}: truncated file: {size} bytes is shorter than one 4-byte dimension field"
        )
    d = int(np.frombuffer(read_exact(p, 4), dtype="<i4")[0])
    if d <= 0:
        raise DatasetError(
            f"{name}: the first record's dimension field is {d}; expected a positive dimension"
        )
    record = 4 + d * dtype.itemsize
    if size % record:
        raise DatasetError(
            f"{name}: truncated file: {size} bytes is not a whole number of {record}-byte records "
            f"(dimension {d}, from the first record)"
        )
    return VecsLayout(n=size // record, d=d, dtype=dtype, record_bytes=record)


def _check_dimension_fields(path: Path, layout: VecsLayout) -> None:
    """Check every record's dimension field equals the first one, in blocks of records."""
    raw = np.memmap(path, dtype="u1", mode="r", shape=(layout.n, layout.record_bytes))
    bad_count = 0
    first_bad = -1
    first_value = 0
    for start in range(0, layout.n, BLOCK_ROWS):
        head = np.ascontiguousarray(raw[start : start + BLOCK_ROWS, :4])
        dims = head.view("<i4").ravel()
        bad = np.flatnonzero(dims != layout.d)
        if bad.size:
            if first_bad < 0:
                first_bad = start + int(bad[0])
                first_value = int(dims[bad[0]])
            bad_count += int(bad.size)
    del raw
    if bad_count:
        raise DatasetError(
            f"{display_name(path)}: records have different dimensions: record {first_bad} has "
            f"dimension {first_value} but the first has {layout.d} ({bad_count} records differ)"
        )


def read_vecs(path: PathLike) -> np.ndarray:
    """Memory-map a ``*vecs`` file as an (n, d) array of its stored dtype (read-only view)."""
    p = require_file(path)
    layout = vecs_layout(p)
    _check_dimension_fields(p, layout)
    if layout.dtype.itemsize == 4:
        records = np.memmap(p, dtype=layout.dtype, mode="r", shape=(layout.n, layout.d + 1))
        return records[:, 1:]
    records = np.memmap(p, dtype="u1", mode="r", shape=(layout.n, layout.record_bytes))
    return records[:, 4:]


def read_vecs_vectors(path: PathLike) -> np.ndarray:
    """(n, d) float32 vectors; ``.fvecs`` stays memory-mapped, other types are converted."""
    data = read_vecs(path)
    if data.dtype == np.float32:
        return data
    return to_float32(data)


def read_vecs_ids(path: PathLike) -> np.ndarray:
    """(n, k) int64 ids from an ``.ivecs`` file (negative ids other than -1 are an error)."""
    p = Path(path)
    if _suffix(p) != ".ivecs":
        raise DatasetError(f"{display_name(p)}: ground-truth ids must be .ivecs, not {p.suffix}")
    ids = read_vecs(p).astype(np.int64)
    find_bad_ids(ids, display_name(p))
    return ids


def write_vecs(path: PathLike, array: np.ndarray) -> None:
    """Write an (n, d) array as ``.fvecs`` (float32), ``.ivecs`` (int32) or ``.bvecs``
    (uint8 values required), atomically."""
    p = Path(path)
    name = display_name(p)
    suffix = _suffix(p)
    dtype = VECS_DTYPES[suffix]
    arr = as_2d_for_write(array, name)
    d = arr.shape[1]
    if suffix == ".bvecs":
        check_integer_values(arr, 0, 255, name, ".bvecs")
    elif suffix == ".ivecs":
        check_integer_values(arr, -(2**31), 2**31 - 1, name, ".ivecs")
    header = np.array([d], dtype="<i4").view("u1")

    with atomic_write(p) as tmp, open(tmp, "wb") as handle:
        for start in range(0, arr.shape[0], BLOCK_ROWS):
            block = np.asarray(arr[start : start + BLOCK_ROWS]).astype(dtype)
            records = np.empty((block.shape[0], 4 + d * dtype.itemsize), dtype="u1")
            records[:, :4] = header
            records[:, 4:] = block.view("u1").reshape(block.shape[0], -1)
            handle.write(records.tobytes())


def describe_vecs(path: PathLike) -> dict:
    """Format and shape of a ``*vecs`` file from its first record and size (data not read)."""
    p = require_file(path)
    layout = vecs_layout(p)
    return {
        "format": p.suffix.lower().lstrip("."),
        "arrays": {"data": {"shape": [layout.n, layout.d], "dtype": layout.dtype.name}},
        "attrs": {},
    }
