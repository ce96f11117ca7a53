"""Assemble a :class:`annkit.types.Dataset` from an HDF5 file, a bundled name or separate files."""

from __future__ import annotations

from pathlib import Path

from annkit.errors import DatasetError, InputError
from annkit.io import hdf5
from annkit.io._common import PathLike, display_name
from annkit.io.bundled import BUNDLED_DATASETS, resolve_dataset_path
from annkit.io.dispatch import declared_metric, read_ids, read_queries, read_vectors, read_weights
from annkit.io.labels import read_dataset_labels, read_labels_file
from annkit.io.validate import check_dataset_parts, validate_vectors
from annkit.labels import Labels
from annkit.types import Dataset, normalize_metric


def load_dataset(
    spec: PathLike,
    *,
    metric: str | None = None,
    validate: bool = True,
    fallback_metric: tuple[str, str] | None = None,
) -> Dataset:
    """Load a bundled dataset by name (``words-10k``) or an ann-benchmarks HDF5 file.

    The file needs ``train`` (base) and ``test`` (queries); ``neighbors`` (ids, int64) and
    ``test_weights`` (float64, one per query) are used when present. ``metric`` overrides the
    file's ``distance`` attribute; with neither, ``fallback_metric`` (e.g. the index's) is
    used, and without that the file is refused (see :func:`choose_metric`). With ``validate``
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
    declared = None
    if parts.distance is not None:
        try:
            declared = normalize_metric(parts.distance)
        except InputError as exc:
            raise DatasetError(f"{name}: 'distance' attribute: {exc}") from exc
    metric_name = choose_metric(metric, [(name, declared)], fallback=fallback_metric)
    check_dataset_parts(name, parts.base, parts.queries, parts.neighbors, parts.weights)
    if validate:
        validate_vectors(parts.base, f"{name}: train", metric_name)
        validate_vectors(parts.queries, f"{name}: test", metric_name)
    base_labels, query_labels = read_dataset_labels(
        path, n_base=int(parts.base.shape[0]), n_queries=int(parts.queries.shape[0])
    )
    spec_text = str(spec)
    return Dataset(
        name=spec_text if spec_text in BUNDLED_DATASETS else path.stem,
        metric=metric_name,
        base=parts.base,
        queries=parts.queries,
        neighbors=parts.neighbors,
        weights=parts.weights,
        source=str(path),
        base_labels=base_labels,
        query_labels=query_labels,
    )


def choose_metric(
    given: str | None,
    declarations: list[tuple[str, str | None]],
    *,
    fallback: tuple[str, str] | None = None,
) -> str:
    """The metric to score with: ``given`` (an explicit --metric) when there is one, else
    the one metric the files declare (``declarations``: file name -> its metric or None),
    else ``fallback`` ((what, metric), e.g. the index's). Files that disagree, or no
    declaration at all, are refused with one line naming the files: never a silent default.
    """
    declared = [(name, metric) for name, metric in declarations if metric is not None]
    if given is not None:
        return normalize_metric(given)
    metrics = sorted({metric for _, metric in declared})
    if len(metrics) > 1:
        said = ", ".join(f"{name} says {metric}" for name, metric in declared)
        raise InputError(f"the files disagree on the metric ({said}): pass --metric")
    if metrics:
        return metrics[0]
    if fallback is not None:
        return normalize_metric(fallback[1])
    names = ", ".join(name for name, _ in declarations)
    verb = "declares" if len(declarations) == 1 else "declare"
    raise InputError(f"no metric: {names} {verb} none; pass --metric euclidean, angular or ip")


def load_dataset_files(
    base: PathLike,
    queries: PathLike,
    groundtruth: PathLike | None = None,
    *,
    metric: str | None = None,
    weights: PathLike | None = None,
    name: str | None = None,
    validate: bool = True,
    fallback_metric: tuple[str, str] | None = None,
    base_labels: PathLike | None = None,
    query_labels: PathLike | None = None,
) -> Dataset:
    """Load a dataset given as separate files: base vectors (any ``read_vectors`` format, or
    a dataset HDF5's ``train``), queries (``read_queries``: an HDF5 file's ``test`` set and
    ``test_weights``), optional ground-truth ids (``read_ids`` formats, an HDF5 file's
    ``neighbors``) and optional query weights (``.npy`` or text, one number per line).
    ``base_labels`` / ``query_labels``: label files (``.spmat``, or an HDF5 file's
    ``train_labels`` / ``test_labels`` group); without them, HDF5 base and query files give
    their own label groups when they have them.

    The metric is ``metric`` when given, else the one the files declare (HDF5 ``distance``),
    else ``fallback_metric``; see :func:`choose_metric`. ``name`` defaults to the base
    file's stem, joined with the queries file's stem when the queries come from elsewhere.
    """
    paths = [Path(p) for p in (base, queries, groundtruth) if p is not None]
    metric_name = choose_metric(
        metric,
        [(display_name(p), declared_metric(p)) for p in dict.fromkeys(paths)],
        fallback=fallback_metric,
    )
    base_vectors = read_vectors(base)
    query_vectors, file_weights = read_queries(queries)
    neighbors = read_ids(groundtruth) if groundtruth is not None else None
    query_weights = read_weights(weights) if weights is not None else file_weights
    source = f"{display_name(base)} + {display_name(queries)}"
    check_dataset_parts(source, base_vectors, query_vectors, None, None)
    if groundtruth is not None:
        check_dataset_parts(display_name(groundtruth), base_vectors, query_vectors, neighbors, None)
    if query_weights is not None:
        check_dataset_parts(
            display_name(weights if weights is not None else queries),
            base_vectors,
            query_vectors,
            None,
            query_weights,
        )
    if validate:
        validate_vectors(base_vectors, display_name(base), metric_name)
        validate_vectors(query_vectors, display_name(queries), metric_name)
    base_label_matrix = _side_labels(base, base_labels, "base", len(base_vectors))
    query_label_matrix = _side_labels(queries, query_labels, "queries", len(query_vectors))
    sources = [base, queries] + [p for p in (groundtruth, weights) if p is not None]
    same_file = Path(base).resolve() == Path(queries).resolve()
    default_name = Path(base).stem if same_file else f"{Path(base).stem}+{Path(queries).stem}"
    return Dataset(
        name=name or default_name,
        metric=metric_name,
        base=base_vectors,
        queries=query_vectors,
        neighbors=neighbors,
        weights=query_weights,
        source=", ".join(str(p) for p in sources),
        base_file=str(base),
        query_file=str(queries),
        base_labels=base_label_matrix,
        query_labels=query_label_matrix,
    )


def _side_labels(
    vectors_file: PathLike, labels_file: PathLike | None, side: str, rows: int
) -> Labels | None:
    """The labels of one side (``base`` / ``queries``): from ``labels_file`` when given,
    else from the vectors' own HDF5 file's label group, else None."""
    if labels_file is not None:
        return read_labels_file(labels_file, side, rows=rows)
    if side == "base":
        return read_dataset_labels(vectors_file, n_base=rows)[0]
    return read_dataset_labels(vectors_file, n_queries=rows)[1]
