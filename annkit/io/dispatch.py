"""Pick the reader or writer for a file by its extension."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from annkit.errors import DatasetError, InputError
from annkit.io import bin as bin_files
from annkit.io import hdf5, npy, vecs
from annkit.io._common import (
    PathLike,
    as_2d_for_write,
    display_name,
    file_size,
    require_file,
)

HDF5 = hdf5.HDF5_SUFFIXES
VECTOR_SUFFIXES = (".npy", ".fvecs", ".bvecs", ".ivecs", ".fbin", ".u8bin", ".i8bin", *HDF5)
ID_SUFFIXES = (".ivecs", ".ibin", ".npy", *HDF5)
WRITE_SUFFIXES = (".npy", ".fvecs", ".bvecs", ".ivecs", ".fbin", ".u8bin", ".i8bin", ".ibin")
DESCRIBE_SUFFIXES = (*WRITE_SUFFIXES, *HDF5)


def _suffix(path: Path, supported: tuple[str, ...], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in supported:
        shown = f"'{path.suffix}'" if path.suffix else "(no extension)"
        raise DatasetError(
            f"{display_name(path)}: unknown {what} file type {shown}; "
            f"supported: {', '.join(supported)}"
        )
    return suffix


def read_vectors(path: PathLike) -> np.ndarray:
    """Read an (n, d) float32 array of vectors; the format is chosen by extension.

    ``.npy`` (any numeric dtype), ``.fvecs``/``.bvecs``/``.ivecs`` (TEXMEX), ``.fbin``/
    ``.u8bin``/``.i8bin`` (big-ann-benchmarks) and ``.hdf5``/``.h5`` (``train``, or the only
    2-D dataset). float32 data is memory-mapped read-only where the format allows.
    """
    p = require_file(path)
    suffix = _suffix(p, VECTOR_SUFFIXES, "vector")
    if suffix == ".npy":
        return npy.read_npy_vectors(p)
    if suffix in vecs.VECS_DTYPES:
        return vecs.read_vecs_vectors(p)
    if suffix in bin_files.BIN_DTYPES:
        return bin_files.read_bin_vectors(p)
    return hdf5.read_hdf5_vectors(p)


def read_queries(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Query vectors and the query weights the file carries (or None). An HDF5 file gives
    its ``test`` set and ``test_weights`` (ann-benchmarks layout, ``train`` optional); any
    other format is read as :func:`read_vectors` reads it."""
    p = require_file(path)
    suffix = _suffix(p, VECTOR_SUFFIXES, "vector")
    if suffix in HDF5:
        queries = hdf5.read_hdf5_queries(p)
        return queries.vectors, queries.weights
    return read_vectors(p), None


def declared_metric(path: PathLike) -> str | None:
    """The metric a file declares (an HDF5 file's ``distance`` attribute, normalised), or
    None for formats that cannot declare one and for HDF5 files without the attribute."""
    p = require_file(path)
    if p.suffix.lower() not in HDF5:
        return None
    distance = hdf5.read_declared_distance(p)
    if distance is None:
        return None
    from annkit.types import normalize_metric

    try:
        return normalize_metric(distance)
    except InputError as exc:
        raise DatasetError(f"{display_name(p)}: 'distance' attribute: {exc}") from exc


def read_ids(path: PathLike) -> np.ndarray:
    """Read (nq, k) int64 ground-truth ids from ``.ivecs``, ``.ibin``, an integer ``.npy`` or
    an HDF5 file's ``neighbors``. Negative ids other than -1 (padding) are an error."""
    p = require_file(path)
    suffix = _suffix(p, ID_SUFFIXES, "ground-truth")
    if suffix == ".ivecs":
        return vecs.read_vecs_ids(p)
    if suffix == ".ibin":
        return bin_files.read_bin_ids(p)
    if suffix == ".npy":
        return npy.read_npy_ids(p)
    return hdf5.read_hdf5_ids(p)


def read_weights(path: PathLike) -> np.ndarray:
    """Read (nq,) float64 query weights from a ``.npy`` or a text file, one number per line
    (blank lines and ``#`` comments ignored)."""
    p = require_file(path)
    name = display_name(p)
    if p.suffix.lower() == ".npy":
        return npy.read_npy_1d(p, "query weights")
    if suffix_is_binary(p):
        raise DatasetError(
            f"{name}: query weights must be a .npy or a text file with one number per line"
        )
    values: list[float] = []
    try:
        with open(p, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                try:
                    values.append(float(text))
                except ValueError:
                    raise DatasetError(
                        f"{name}: line {line_number}: {text[:40]!r} is not a number"
                    ) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name}: not a text file of numbers (one per line)") from exc
    except OSError as exc:
        raise DatasetError(f"{name}: cannot read: {exc.strerror}") from exc
    if not values:
        raise DatasetError(f"{name}: no query weights in the file")
    return np.asarray(values, dtype=np.float64)


def suffix_is_binary(path: Path) -> bool:
    """True for the binary array formats annkit knows (not valid as a weights text file)."""
    return path.suffix.lower() in DESCRIBE_SUFFIXES


def write_vectors(path: PathLike, array: np.ndarray) -> None:
    """Write an (n, d) array atomically in the format given by the extension: ``.npy`` (dtype
    kept), ``.fvecs``/``.fbin`` (float32), ``.ivecs``/``.ibin`` (int32), ``.bvecs``/``.u8bin``
    (uint8 values), ``.i8bin`` (int8 values)."""
    p = Path(path)
    suffix = _suffix(p, WRITE_SUFFIXES, "vector")
    arr = as_2d_for_write(array, display_name(p))
    if suffix == ".npy":
        npy.write_npy(p, arr)
    elif suffix in vecs.VECS_DTYPES:
        vecs.write_vecs(p, arr)
    else:
        bin_files.write_bin(p, arr)


def describe_file(path: PathLike) -> dict:
    """Describe a file without loading its data: ``{"path", "format", "size_bytes",
    "arrays": {name: {"shape": [...], "dtype": str}}, "attrs": {name: str}}``.
    Single-array formats name their array ``data``; HDF5 lists every dataset by path."""
    p = require_file(path)
    suffix = _suffix(p, DESCRIBE_SUFFIXES, "vector")
    if suffix == ".npy":
        info = npy.describe_npy(p)
    elif suffix in vecs.VECS_DTYPES:
        info = vecs.describe_vecs(p)
    elif suffix in bin_files.BIN_DTYPES:
        info = bin_files.describe_bin(p)
    else:
        info = hdf5.describe_hdf5(p)
    return {"path": os.fspath(p), "size_bytes": file_size(p), **info}
