"""Per-query tables as CSV, written atomically."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annkit.errors import InputError
from annkit.io._common import atomic_write


def write_csv_columns(path: str | Path, columns: dict[str, Sequence | np.ndarray]) -> None:
    """Write equal-length ``columns`` (name -> values) as a CSV file with a header row."""
    path = Path(path)
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise InputError(f"{path}: columns of different lengths {sorted(lengths)}")
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: per-query output must end in .csv")
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*(_cells(values) for values in columns.values()), strict=True))


def _cells(values: Sequence | np.ndarray) -> list:
    out = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, float | np.floating):
            value = "" if np.isnan(value) else f"{float(value):.6g}"
        out.append(value)
    return out


def read_query_text(source: str | Path) -> list[str] | None:
    """The ``test_text`` strings of a dataset HDF5 file (one per query), or None."""
    return read_text(source, "test_text")


def read_text(source: str | Path, key: str) -> list[str] | None:
    """The strings of the 1-D text dataset ``key`` (``test_text`` or ``train_text``) of a
    dataset HDF5 file, or None when the file is not HDF5 or has no such dataset."""
    import h5py

    path = Path(source)
    if path.suffix.lower() not in (".hdf5", ".h5") or not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            item = handle.get(key)
            if not isinstance(item, h5py.Dataset) or item.ndim != 1 or item.dtype.kind not in "OSU":
                return None
            return [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in item[:]
            ]
    except OSError:
        return None
