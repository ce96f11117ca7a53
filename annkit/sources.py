"""Resolve what a user names on the command line into vectors and datasets."""

from __future__ import annotations

from dataclasses import replace
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
from annkit.io._common import display_name
from annkit.io.dataset import choose_metric
from annkit.io.dispatch import declared_metric, read_queries
from annkit.io.labels import read_dataset_labels, read_labels_file
from annkit.io.table import read_text
from annkit.labels import Labels
from annkit.types import Dataset

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
    max_queries: int | None = None,
    seed: int = 0,
    name: str | None = None,
    fallback_metric: tuple[str, str] | None = None,
    base_labels: str | Path | None = None,
    query_labels: str | Path | None = None,
) -> Dataset:
    """A dataset from a bundled name / dataset HDF5 (``data``), or from separate files
    (``data`` = base vectors plus ``queries`` and optional ``groundtruth``, each of which
    may be an ann-benchmarks HDF5 file). The metric is ``metric``, else the one the files
    declare, else ``fallback_metric`` (e.g. the index's); never a silent default.
    ``max_queries`` keeps a seeded sample of that many queries (their original rows in
    ``query_rows``); ``name`` labels the dataset. ``base_labels`` / ``query_labels``: label
    files (``.spmat``, or an HDF5 file's ``train_labels`` / ``test_labels`` group) for the
    base vectors and the queries; they replace the labels a dataset file carries."""
    if queries is not None:
        if data is None:
            raise InputError("--queries needs the base vectors file as DATA")
        dataset = load_dataset_files(
            resolve_dataset_path(data),
            queries,
            groundtruth,
            metric=metric,
            weights=weights,
            fallback_metric=fallback_metric,
            base_labels=base_labels,
            query_labels=query_labels,
        )
    else:
        if groundtruth is not None:
            raise InputError("--groundtruth goes with --queries (separate base/query files)")
        dataset = load_dataset(
            data if data is not None else DEFAULT_DATASET,
            metric=metric,
            fallback_metric=fallback_metric,
        )
        if weights is not None:
            values = read_weights(weights)
            if values.shape != (dataset.n_queries,):
                raise InputError(
                    f"{weights}: {values.size} weights for {dataset.n_queries} queries "
                    f"of {dataset.name}"
                )
            dataset = replace(dataset, weights=values)
        dataset = with_label_files(dataset, base_labels, query_labels)
    if max_queries is not None:
        dataset = sample_queries(dataset, max_queries, seed)
    if name is not None:
        if not name.strip():
            raise InputError("--name must not be empty")
        dataset = replace(dataset, name=name.strip())
    return dataset


def sample_queries(dataset: Dataset, max_queries: int, seed: int = 0) -> Dataset:
    """``dataset`` with a seeded sample of at most ``max_queries`` of its queries (in their
    original order, with their weights and ground truth); the name says it is a sample."""
    rows = sample_rows(dataset.n_queries, max_queries, seed)
    if rows is None:
        return dataset
    previous = dataset.query_rows
    return replace(
        dataset,
        name=f"{dataset.name}[{max_queries} of {dataset.n_queries} queries, seed {seed}]",
        queries=np.ascontiguousarray(dataset.queries[rows]),
        neighbors=None if dataset.neighbors is None else dataset.neighbors[rows],
        weights=None if dataset.weights is None else dataset.weights[rows],
        query_rows=rows if previous is None else previous[rows],
        query_labels=None if dataset.query_labels is None else dataset.query_labels.take(rows),
    )


def with_label_files(
    dataset: Dataset,
    base_labels: str | Path | None = None,
    query_labels: str | Path | None = None,
) -> Dataset:
    """``dataset`` with its base / query labels read from the label files given (each
    checked to hold one row per vector); the ones not given are kept."""
    if base_labels is None and query_labels is None:
        return dataset
    return replace(
        dataset,
        base_labels=dataset.base_labels
        if base_labels is None
        else read_labels_file(base_labels, "base", rows=dataset.n_base),
        query_labels=dataset.query_labels
        if query_labels is None
        else read_labels_file(query_labels, "queries", rows=dataset.n_queries),
    )


def query_texts(dataset: Dataset) -> list[str] | None:
    """The text of each query (``test_text`` of the file the queries came from, following a
    sample's rows), or None when that file has none."""
    texts = read_text(dataset.query_file or dataset.source, "test_text")
    if texts is None:
        return None
    rows = dataset.query_rows
    if rows is None:
        return texts if len(texts) == dataset.n_queries else None
    return [texts[int(row)] for row in rows] if int(rows.max()) < len(texts) else None


def base_texts(dataset: Dataset) -> list[str] | None:
    """The text of each base vector (``train_text`` of the base file), or None."""
    texts = read_text(dataset.base_file or dataset.source, "train_text")
    return texts if texts is not None and len(texts) == dataset.n_base else None


def open_base(data: str | Path | None, metric: str | None) -> tuple[np.ndarray, str, str]:
    """Base vectors to index: a dataset's ``train`` set (its metric unless overridden) or
    any vector file (an HDF5 file's declared metric, else --metric is required). Returns
    (vectors, metric, name)."""
    spec = data if data is not None else DEFAULT_DATASET
    if is_dataset_file(spec):
        dataset = load_dataset(spec, metric=metric)
        return dataset.base, dataset.metric, dataset.name
    path = resolve_dataset_path(spec)
    vectors = read_vectors(path)
    declared = declared_metric(path)
    if metric is None and declared is None:  # a damaged file is named as such first
        validate_vectors(vectors, f"{spec}", "euclidean")
    chosen = choose_metric(metric, [(display_name(path), declared)])
    validate_vectors(vectors, f"{spec}", chosen)
    return vectors, chosen, Path(str(spec)).stem


def open_base_labels(
    data: str | Path | None, rows: int, base_labels: str | Path | None = None
) -> Labels | None:
    """The labels of the base vectors :func:`open_base` gives (``rows`` of them): the label
    file ``base_labels`` when given, else a dataset file's ``train_labels`` group, else None."""
    if base_labels is not None:
        return read_labels_file(base_labels, "base", rows=rows)
    path = resolve_dataset_path(data if data is not None else DEFAULT_DATASET)
    return read_dataset_labels(path, n_base=rows)[0]


def open_queries(
    spec: str | Path, metric: str, max_queries: int | None = None, seed: int = 0
) -> np.ndarray:
    """Query vectors scored with ``metric`` (the index's): a dataset HDF5's ``test`` set
    (``train`` optional) or any vector file; a file declaring another metric is refused.
    ``max_queries`` keeps the same seeded sample :func:`sample_queries` keeps."""
    path = resolve_dataset_path(spec)
    declared = declared_metric(path)
    if declared is not None and declared != metric:
        raise InputError(
            f"{display_name(path)} says {declared} but the index is built with {metric}: "
            "use queries of the index's metric, or rebuild the index"
        )
    vectors, _ = read_queries(path)
    validate_vectors(vectors, f"{spec}", metric)
    rows = None if max_queries is None else sample_rows(len(vectors), max_queries, seed)
    return vectors if rows is None else np.ascontiguousarray(vectors[rows])


def sample_rows(count: int, max_queries: int, seed: int = 0) -> np.ndarray | None:
    """Sorted row numbers of a seeded sample of ``max_queries`` of ``count`` queries, or
    None when that keeps them all."""
    if max_queries < 1:
        raise InputError(f"--max-queries must be >= 1, got {max_queries}")
    if max_queries >= count:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(count, size=max_queries, replace=False))
