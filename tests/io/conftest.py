"""Fixtures for annkit.io tests: files written independently of annkit's writers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest


def _write_vecs_raw(path: Path, array: np.ndarray, dtype: str) -> Path:
    """TEXMEX layout by hand: per row an int32 dimension, then the row's values."""
    with open(path, "wb") as handle:
        for row in np.asarray(array):
            np.array([row.shape[0]], dtype="<i4").tofile(handle)
            np.asarray(row, dtype=dtype).tofile(handle)
    return path


def _write_bin_raw(
    path: Path, array: np.ndarray, dtype: str, header: tuple[int, int] | None = None
) -> Path:
    """big-ann-benchmarks layout by hand: uint32 n, uint32 d, then the values."""
    with open(path, "wb") as handle:
        np.array(header if header is not None else array.shape, dtype="<u4").tofile(handle)
        np.asarray(array, dtype=dtype).tofile(handle)
    return path


def _write_hdf5_raw(path: Path, attrs: dict | None = None, **datasets: np.ndarray) -> Path:
    """An HDF5 file with the given datasets (contiguous, uncompressed) and root attributes."""
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return path


@pytest.fixture
def raw() -> SimpleNamespace:
    """Hand-rolled writers: raw.vecs(path, arr, dtype), raw.bin(path, arr, dtype, header=None),
    raw.hdf5(path, attrs=None, **datasets)."""
    return SimpleNamespace(vecs=_write_vecs_raw, bin=_write_bin_raw, hdf5=_write_hdf5_raw)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def ann_file(tmp_path: Path, rng: np.random.Generator, raw: SimpleNamespace):
    """Factory for a small ann-benchmarks HDF5 file; keyword arguments replace or drop
    (value None) datasets; ``attrs`` replaces the root attributes."""

    def make(name: str = "tiny.hdf5", attrs: dict | None = None, **overrides) -> Path:
        base = rng.standard_normal((40, 8)).astype(np.float32)
        queries = rng.standard_normal((5, 8)).astype(np.float32)
        datasets = {
            "train": base,
            "test": queries,
            "neighbors": rng.integers(0, 40, size=(5, 10)).astype(np.int32),
            "distances": rng.random((5, 10)).astype(np.float32),
            "test_weights": rng.random(5) + 0.1,
        }
        datasets.update(overrides)
        datasets = {k: v for k, v in datasets.items() if v is not None}
        attrs = {"distance": "euclidean", "point_type": "float"} if attrs is None else attrs
        return raw.hdf5(tmp_path / name, attrs=attrs, **datasets)

    return make
