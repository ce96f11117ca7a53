"""big-ann-benchmarks ``.fbin`` / ``.u8bin`` / ``.i8bin`` / ``.ibin`` files.

An 8-byte header (little-endian uint32 ``n``, uint32 ``d``) followed by ``n * d`` values:
float32, uint8, int8 or int32. A ground-truth ``.ibin`` may also be followed by ``n * d``
float32 distances (the big-ann-benchmarks ground-truth layout); the distances are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.errors import DatasetError, InputError
from annkit.io._common import (
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
    write_blocks,
)

BIN_DTYPES: dict[str, np.dtype] = {
    ".fbin": np.dtype("<f4"),
    ".u8bin": np.dtype("u1"),
    ".i8bin": np.dtype("i1"),
    ".ibin": np.dtype("<i4"),
}
HEADER_BYTES = 8
_INTEGER_RANGES = {".u8bin": (0, 255), ".i8bin": (-128, 127), ".ibin": (-(2**31), 2**31 - 1)}


@dataclass(frozen=True)
class BinLayout:
    """Header of a ``*bin`` file, checked against the file size."""

    n: int
    d: int
    dtype: np.dtype
    with_distances: bool = False


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in BIN_DTYPES:
        raise DatasetError(f"{display_name(path)}: not a .fbin/.u8bin/.i8bin/.ibin file")
    return suffix


def bin_layout(path: PathLike) -> BinLayout:
    """Read and verify the 8-byte header: n > 0, d > 0 and 8 + n*d*itemsize == file size."""
    p = require_file(path)
    name = display_name(p)
    suffix = _suffix(p)
    dtype = BIN_DTYPES[suffix]
    size = file_size(p)
    if size < HEADER_BYTES:
        raise DatasetError(
            f"{name}: truncated file: {size} bytes is shorter than the {HEADER_BYTES}-byte header"
        )
    n, d = (int(v) for v in np.frombuffer(read_exact(p, HEADER_BYTES), dtype="<u4"))
    if d == 0:
        raise DatasetError(f"{name}: header says dimension 0; expected a positive dimension")
    if n == 0:
        raise DatasetError(f"{name}: empty: the header says 0 vectors")
    expected = HEADER_BYTES + n * d * dtype.itemsize
    claim = f"{n} x {d} {dtype.name}"
    if suffix == ".ibin" and size == HEADER_BYTES + n * d * 8:
        return BinLayout(n=n, d=d, dtype=dtype, with_distances=True)
    if size < expected:
        raise DatasetError(
            f"{name}: truncated file: the header claims {claim} ({expected} bytes) "
            f"but the file has only {size} bytes"
        )
    if size != expected:
        raise DatasetError(
            f"{name}: file size {size} bytes does not match the header's {claim} "
            f"({expected} bytes expected)"
        )
    return BinLayout(n=n, d=d, dtype=dtype)


def read_bin(path: PathLike) -> np.memmap:
    """Memory-map a ``*bin`` file as an (n, d) read-only array of its stored dtype."""
    p = require_file(path)
    layout = bin_layout(p)
    return np.memmap(
        p, dtype=layout.dtype, mode="r", offset=HEADER_BYTES, shape=(layout.n, layout.d)
    )


def read_bin_vectors(path: PathLike) -> np.ndarray:
    """(n, d) float32 vectors; ``.fbin`` stays memory-mapped, 8-bit types are converted."""
    p = Path(path)
    if _suffix(p) == ".ibin":
        raise DatasetError(
            f"{display_name(p)}: .ibin holds ids; vectors must be .fbin/.u8bin/.i8bin"
        )
    data = read_bin(p)
    if data.dtype == np.float32:
        return data
    return to_float32(data)


def read_bin_ids(path: PathLike) -> np.ndarray:
    """(n, k) int64 ids from an ``.ibin`` file (negative ids other than -1 are an error)."""
    p = Path(path)
    if _suffix(p) != ".ibin":
        raise DatasetError(f"{display_name(p)}: ground-truth ids must be .ibin, not {p.suffix}")
    ids = read_bin(p).astype(np.int64)
    find_bad_ids(ids, display_name(p))
    return ids


def write_bin(path: PathLike, array: np.ndarray) -> None:
    """Write an (n, d) array with the 8-byte (n, d) header, atomically. ``.u8bin``/``.i8bin``/
    ``.ibin`` need integer values in their type's range."""
    p = Path(path)
    name = display_name(p)
    suffix = _suffix(p)
    dtype = BIN_DTYPES[suffix]
    arr = as_2d_for_write(array, name)
    n, d = arr.shape
    if n >= 2**32 or d >= 2**32:
        raise InputError(f"{name}: cannot write shape {arr.shape}: n and d must be below 2**32")
    if suffix in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[suffix]
        check_integer_values(arr, low, high, name, suffix)
    with atomic_write(p) as tmp, open(tmp, "wb") as handle:
        handle.write(np.array([n, d], dtype="<u4").tobytes())
        write_blocks(handle, arr, lambda block: block.astype(dtype))


def describe_bin(path: PathLike) -> dict:
    """Format and shape of a ``*bin`` file from its header (data not read)."""
    p = require_file(path)
    layout = bin_layout(p)
    arrays = {"data": {"shape": [layout.n, layout.d], "dtype": layout.dtype.name}}
    if layout.with_distances:
        arrays["distances"] = {"shape": [layout.n, layout.d], "dtype": "float32"}
    return {"format": p.suffix.lower().lstrip("."), "arrays": arrays, "attrs": {}}
