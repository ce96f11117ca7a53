"""Assemble a :class:`annkit.types.Dataset` from an HDF5 file, a bundled name or separate files."""

from __future__ import annotations

from pathlib import Path

from annkit.errors import DatasetError, InputError
from annkit.io import hdf5
from annkit.io._common import PathLike, display_name
from annkit.io.bundled import BUNDLED_DATASETS, resolve_dataset_path
from annkit.io.dispatch import read_ids, read_vectors, read_weights
from annkit.io.validate import check_dataset_parts, validate_vectors
from annkit.types import Dataset, normalize_metric


def load_dataset(spec: PathLike, *, metric: str | None = None, validate: bool = True) -> Dataset:
    """Load a bundled dataset by name (``words-10k``) or an ann-benchmarks HDF5 file.

    The file needs ``train`` (base) and ``test`` (queries); ``neighbors`` (ids, int64) and
    ``test_weights`` (float64, one per query) are used when present. ``metric`` overrides the
    file's ``distance`` attribute; with neither the metric is euclidean. With ``validate``
    the vectors are also scanned for NaN/inf and (angular) zero rows.
    """
    path = resolve_dataset_path(spec)
    name = display_name(path)
    if path.suffix.lower() not in hdf5.HDF5_SUFFIXES:
        raise DatasetError(
            f"{name}: a dataset file must be an ann-benchmarks HDF5 file (.hdf5 or .h5) "
            "with 'train' and 'test'; give base and query vector files separately instead"
        )
    parts = hdf5.read_ann_benchmarks(path)
    if metric is not None:
        metric_name = normalize_metric(metric)
    elif parts.distance is not None:
        try:
            metric_name = normalize_metric(parts.distance)
        except InputError as exc:
            raise DatasetError(f"{name}: 'distance' attribute: {exc}") from exc
    else:
        metric_name = "euclidean"
    check_dataset_parts(name, parts.base, parts.queries, parts.neighbors, parts.weights)
    if validate:
        validate_vectors(parts.base, f"{name}: train", metric_name)
        validate_vectors(parts.queries, f"{name}: test", metric_name)
    spec_text = str(spec)
    return Dataset(
        name=spec_text if spec_text in BUNDLED_DATASETS else path.stem,
        metric=metric_name,
        base=parts.base,
        queries=parts.queries,
        neighbors=parts.neighbors,
        weights=parts.weights,
        source=str(path),
    )


def load_dataset_files(
    base: PathLike,
    queries: PathLike,
    groundtruth: PathLike | None = None,
    *,
    metric: str = "euclidean",
    weights: PathLike | None = None,
    name: str | None = None,
    validate: bool = True,
) -> Dataset:
    """Load a dataset given as separate files: base and query vectors (any ``read_vectors``
    format), optional ground-truth ids (``read_ids`` formats) and optional query weights
    (``.npy`` or text, one number per line). ``name`` defaults to the base file's stem."""
    metric_name = normalize_metric(metric)
    base_vectors = read_vectors(base)
    query_vectors = read_vectors(queries)
    neighbors = read_ids(groundtruth) if groundtruth is not None else None
    query_weights = read_weights(weights) if weights is not None else None
    source = f"{display_name(base)} + {display_name(queries)}"
    check_dataset_parts(source, base_vectors, query_vectors, None, None)
    if groundtruth is not None:
        check_dataset_parts(display_name(groundtruth), base_vectors, query_vectors, neighbors, None)
    if weights is not None:
        check_dataset_parts(display_name(weights), base_vectors, query_vectors, None, query_weights)
    if validate:
        validate_vectors(base_vectors, display_name(base), metric_name)
        validate_vectors(query_vectors, display_name(queries), metric_name)
    sources = [base, queries] + [p for p in (groundtruth, weights) if p is not None]
    return Dataset(
        name=name or Path(base).stem,
        metric=metric_name,
        base=base_vectors,
        queries=query_vectors,
        neighbors=neighbors,
        weights=query_weights,
        source=", ".join(str(p) for p in sources),
    )
