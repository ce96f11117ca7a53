"""NumPy ``.npy`` files (never unpickled; the header is verified before any data is read)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from annkit.errors import DatasetError, InputError
from annkit.io._common import (
    PathLike,
    atomic_write,
    check_matrix_shape,
    display_name,
    file_size,
    find_bad_ids,
    require_file,
    to_float32,
)


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares, already checked against the file size."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int


def npy_header(path: PathLike) -> NpyHeader:
    """Parse and verify a ``.npy`` header: a plain numeric dtype and enough bytes for the data."""
    p = require_file(path)
    name = display_name(p)
    size = file_size(p)
    try:
        with open(p, "rb") as handle:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(handle)
            else:
                raise DatasetError(
                    f"{name}: unsupported .npy format version {version[0]}.{version[1]}"
                )
            offset = handle.tell()
    except DatasetError:
        raise
    except OSError as exc:
        raise DatasetError(f"{name}: cannot read: {exc.strerror}") from exc
    except Exception as exc:  # noqa: BLE001 - numpy parses the untrusted header text with
        # ast/tokenize, which can fail in many ways (ValueError, SyntaxError, TokenError...).
        raise DatasetError(f"{name}: not a valid .npy file ({_first_line(exc)})") from exc
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in shape):
        raise DatasetError(
            f"{name}: not a valid .npy file (shape {tuple(shape)} is not a tuple of "
            "non-negative integers)"
        )
    if dtype.hasobject:
        raise DatasetError(
            f"{name}: holds Python objects, which annkit never unpickles; save a numeric array"
        )
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise DatasetError(f"{name}: has dtype {dtype}; expected a plain numeric array")
    expected = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size < expected:
        raise DatasetError(
            f"{name}: truncated file: the header claims shape {tuple(shape)} {dtype} "
            f"({expected} bytes) but the file has only {size} bytes"
        )
    return NpyHeader(shape=tuple(shape), dtype=dtype, fortran_order=fortran, data_offset=offset)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{display_name(path)}: cannot read ({_first_line(exc)})") from exc


def read_npy_vectors(path: PathLike) -> np.ndarray:
    """(n, d) float32 vectors from a 2-D numeric ``.npy``; float32 data is memory-mapped,
    other numeric dtypes (float16/64, int8, uint8, ...) are converted in memory."""
    p = require_file(path)
    header = npy_header(p)
    check_matrix_shape(header.shape, display_name(p))
    if header.dtype == np.float32:
        return _load(p, mmap=True)
    return to_float32(_load(p, mmap=False))


def read_npy_ids(path: PathLike) -> np.ndarray:
    """(n, k) int64 ids from a 2-D integer ``.npy`` (negative ids other than -1 are an error)."""
    p = require_file(path)
    name = display_name(p)
    header = npy_header(p)
    check_matrix_shape(header.shape, name, what="ids")
    if header.dtype.kind not in "iu":
        raise DatasetError(f"{name}: has dtype {header.dtype}; ground-truth ids must be integers")
    ids = _load(p, mmap=False)
    if header.dtype == np.uint64 and ids.max() > np.iinfo(np.int64).max:
        raise DatasetError(f"{name}: holds ids too large for int64")
    ids = ids.astype(np.int64)
    find_bad_ids(ids, name)
    return ids


def read_npy_1d(path: PathLike, what: str) -> np.ndarray:
    """A 1-D numeric ``.npy`` (an (n, 1) column is accepted) as float64, e.g. query weights."""
    p = require_file(path)
    name = display_name(p)
    header = npy_header(p)
    shape = header.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise DatasetError(f"{name}: {what} must be a 1-D array, got shape {shape}")
    return _load(p, mmap=False).astype(np.float64).reshape(-1)


def write_npy(path: PathLike, array: np.ndarray) -> None:
    """Write a numeric array as ``.npy`` keeping its dtype, atomically."""
    p = Path(path)
    arr = np.asanyarray(array)
    if arr.dtype.kind not in "biuf" or arr.dtype.fields is not None:
        raise InputError(f"{display_name(p)}: cannot write dtype {arr.dtype} to .npy")
    with atomic_write(p) as tmp, open(tmp, "wb") as handle:
        np.save(handle, arr, allow_pickle=False)


def describe_npy(path: PathLike) -> dict:
    """Format, shape and dtype of a ``.npy`` file from its header (data not read)."""
    header = npy_header(path)
    return {
        "format": "npy",
        "arrays": {"data": {"shape": list(header.shape), "dtype": str(header.dtype)}},
        "attrs": {},
    }
