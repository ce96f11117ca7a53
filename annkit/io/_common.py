"""Helpers shared by the file-family modules: names in messages, size checks, atomic writes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from annkit.errors import DatasetError, InputError
from annkit.files import atomic_write  # noqa: F401 - the one atomic writer, used by io

# Rows handled at a time when scanning or converting arrays that may be memory-mapped.
BLOCK_ROWS = 65_536

PathLike = str | os.PathLike


def display_name(path: PathLike) -> str:
    """The file name used to prefix error messages (``data.fvecs``)."""
    p = Path(path)
    return p.name or str(p)


def to_float32(array: np.ndarray) -> np.ndarray:
    """Convert to float32 (a copy unless already float32). Values beyond float32's range become
    +-inf without a warning; validate_vectors reports them."""
    with np.errstate(over="ignore"):
        return np.asarray(array).astype(np.float32, copy=False)


def require_file(path: PathLike) -> Path:
    """Return ``path`` as a Path, raising DatasetError if it is missing or not a regular file."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.is_dir():
        raise DatasetError(f"{p}: is a folder, not a file")
    return p


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes, with OS errors turned into DatasetError."""
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise DatasetError(f"{display_name(path)}: cannot read: {exc.strerror}") from exc


def read_exact(path: Path, count: int, offset: int = 0) -> bytes:
    """Read ``count`` bytes at ``offset``; DatasetError if the file is shorter."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(count)
    except OSError as exc:
        raise DatasetError(f"{display_name(path)}: cannot read: {exc.strerror}") from exc
    if len(data) != count:
        raise DatasetError(f"{display_name(path)}: truncated file: cannot read its header")
    return data


def check_matrix_shape(shape: tuple[int, ...], name: str, what: str = "vectors") -> None:
    """Require a 2-D shape with at least one row and one column."""
    if len(shape) != 2:
        raise DatasetError(
            f"{name}: expected a 2-D (n, d) array of {what}, got shape {tuple(shape)}"
        )
    n, d = shape
    if d <= 0:
        raise DatasetError(f"{name}: dimension is {d}; expected a positive dimension")
    if n <= 0:
        raise DatasetError(f"{name}: empty: the file holds no {what} (0 rows)")


def find_bad_ids(ids: np.ndarray, name: str) -> None:
    """Raise DatasetError if a 2-D id array holds negative ids other than -1 (the padding)."""
    bad = ids < -1
    count = int(np.count_nonzero(bad))
    if count:
        row = int(np.argmax(np.any(bad, axis=1)))
        raise DatasetError(
            f"{name}: {count} ids are negative (first in row {row}); "
            "only -1 may mark a missing neighbour"
        )


def as_2d_for_write(array: np.ndarray, name: str) -> np.ndarray:
    """Check an array to be written is 2-D, numeric and non-empty."""
    arr = np.asanyarray(array)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: cannot write dtype {arr.dtype}: expected a numeric array")
    if arr.ndim != 2:
        raise InputError(f"{name}: cannot write a {arr.ndim}-D array: expected 2-D (n, d)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name}: cannot write an empty array of shape {arr.shape}")
    return arr


def check_integer_values(array: np.ndarray, low: int, high: int, name: str, fmt: str) -> None:
    """Require every value to be an integer in [low, high] (checked in row blocks)."""
    kind = array.dtype.kind
    if kind == "b":
        return
    if kind in "iu" and np.iinfo(array.dtype).min >= low and np.iinfo(array.dtype).max <= high:
        return
    for start in range(0, array.shape[0], BLOCK_ROWS):
        block = np.asarray(array[start : start + BLOCK_ROWS])
        if kind == "f" and not (np.isfinite(block).all() and (block == np.round(block)).all()):
            raise InputError(f"{name}: {fmt} needs integer values in {low}..{high}; got fractions")
        lo, hi = block.min(), block.max()
        if lo < low or hi > high:
            raise InputError(
                f"{name}: {fmt} needs integer values in {low}..{high}; got values {lo}..{hi}"
            )


def write_blocks(
    handle: BinaryIO, array: np.ndarray, convert: Callable[[np.ndarray], np.ndarray]
) -> None:
    """Write ``convert(block)`` for each block of rows of ``array`` to an open binary file."""
    for start in range(0, array.shape[0], BLOCK_ROWS):
        block = np.asarray(array[start : start + BLOCK_ROWS])
        handle.write(np.ascontiguousarray(convert(block)).tobytes())
