"""Resolve what a user names on the command line into vectors and datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annkit.errors import InputError
from annkit.io import (
    load_dataset,
    load_dataset_files,
    read_vectors,
    read_weights,
    resolve_dataset_path,
    validate_vectors,
)
from annkit.types import Dataset, normalize_metric

DEFAULT_DATASET = "words-10k"
HDF5_SUFFIXES = (".hdf5", ".h5")


def default_data_notice(data: str | Path | None, queries: str | Path | None = None) -> str | None:
    """The one-line notice a command shows when DATA was left out and the bundled dataset
    is used instead (None when DATA was given, or when --queries makes DATA required)."""
    if data is not None or queries is not None:
        return None
    return (
        f"annkit: no DATA given: using the bundled dataset {DEFAULT_DATASET} "
        "(pass DATA to use your own)"
    )


def _is_hdf5(spec: str | Path) -> bool:
    return Path(str(spec)).suffix.lower() in HDF5_SUFFIXES


def is_dataset_file(spec: str | Path) -> bool:
    """True for a bundled dataset name or an HDF5 file with both ``train`` and ``test``."""
    path = resolve_dataset_path(spec)
    if not _is_hdf5(path) or not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "train" in handle and "test" in handle
    except (OSError, RuntimeError, ValueError, KeyError):
        # not HDF5 or damaged: the vector-file reader then reports it with a clear message
        return False


def open_dataset(
    data: str | Path | None = None,
    *,
    queries: str | Path | None = None,
    groundtruth: str | Path | None = None,
    weights: str | Path | None = None,
    metric: str | None = None,
) -> Dataset:
    """A dataset from a bundled name / dataset HDF5 (``data``), or from separate files
    (``data`` = base vectors plus ``queries`` and optional ``groundtruth``)."""
    metric = normalize_metric(metric) if metric else None
    if queries is not None:
        if data is None:
            raise InputError("--queries needs the base vectors file as DATA")
        return load_dataset_files(
            data, queries, groundtruth, metric=metric or "euclidean", weights=weights
        )
    if groundtruth is not None:
        raise InputError("--groundtruth goes with --queries (separate base/query files)")
    dataset = load_dataset(data if data is not None else DEFAULT_DATASET, metric=metric)
    if weights is not None:
        values = read_weights(weights)
        if values.shape != (dataset.n_queries,):
            raise InputError(
                f"{weights}: {values.size} weights for {dataset.n_queries} queries "
                f"of {dataset.name}"
            )
        dataset = Dataset(
            name=dataset.name,
            metric=dataset.metric,
            base=dataset.base,
            queries=dataset.queries,
            neighbors=dataset.neighbors,
            weights=values,
            source=dataset.source,
        )
    return dataset


def open_base(data: str | Path | None, metric: str | None) -> tuple[np.ndarray, str, str]:
    """Base vectors to index: a dataset's ``train`` set (its metric unless overridden) or
    any vector file (metric default euclidean). Returns (vectors, metric, name)."""
    spec = data if data is not None else DEFAULT_DATASET
    if is_dataset_file(spec):
        dataset = load_dataset(spec, metric=metric)
        return dataset.base, dataset.metric, dataset.name
    chosen = normalize_metric(metric) if metric else "euclidean"
    vectors = read_vectors(spec)
    validate_vectors(vectors, f"{spec}", chosen)
    return vectors, chosen, Path(str(spec)).stem


def open_queries(spec: str | Path, metric: str) -> np.ndarray:
    """Query vectors: a dataset's ``test`` set or any vector file."""
    if is_dataset_file(spec):
        return load_dataset(spec, metric=metric).queries
    vectors = read_vectors(spec)
    validate_vectors(vectors, f"{spec}", metric)
    return vectors
