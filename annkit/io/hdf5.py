"""HDF5 files in the ann-benchmarks layout (``train``, ``test``, ``neighbors``, ``distances``,
``test_weights``, attribute ``distance``) and plain HDF5 files holding one 2-D dataset.

Every dataset's dtype and shape are checked before it is read; contiguous, uncompressed
little-endian float32 datasets are memory-mapped instead of read into memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from annkit.errors import DatasetError, InputError, ResourceError
from annkit.io._common import (
    BLOCK_ROWS,
    PathLike,
    atomic_write,
    display_name,
    file_size,
    find_bad_ids,
    require_file,
    to_float32,
)
from annkit.io._heap import check_global_heaps
from annkit.labels import Labels

HDF5_SUFFIXES = (".hdf5", ".h5")
_VECTOR_KINDS = "fiu"
_ID_KINDS = "iu"


def _first_line(exc: BaseException) -> str:
    raw = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    text = str(raw).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextmanager
def open_hdf5(path: PathLike) -> Iterator[h5py.File]:
    """Open an HDF5 file read-only; a file that is not HDF5 or is damaged gives DatasetError."""
    p = require_file(path)
    try:
        handle = h5py.File(p, "r")
    except (OSError, ValueError, RuntimeError) as exc:
        raise DatasetError(
            f"{display_name(p)}: not an HDF5 file or damaged ({_first_line(exc)})"
        ) from exc
    try:
        yield handle
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        # h5py reports damaged metadata found while navigating the file in all of these.
        raise DatasetError(f"{display_name(p)}: damaged HDF5 file ({_first_line(exc)})") from exc
    finally:
        handle.close()


def list_datasets(handle: h5py.File) -> dict[str, h5py.Dataset]:
    """Every dataset in the file by its path (``train``, ``group/data``), in file order."""
    found: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            found[name] = obj

    try:
        handle.visititems(visit)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DatasetError(
            f"{display_name(handle.filename)}: damaged HDF5 file ({_first_line(exc)})"
        ) from exc
    return found


def _dtype_text(ds: h5py.Dataset) -> str:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return "string"
    return str(ds.dtype)


def _present(handle: h5py.File) -> str:
    names = sorted(list_datasets(handle))
    return ", ".join(names) if names else "none"


def _get_dataset(handle: h5py.File, key: str, role: str) -> h5py.Dataset:
    name = display_name(handle.filename)
    if key not in handle:
        raise DatasetError(
            f"{name}: missing dataset '{key}' ({role}); datasets present: {_present(handle)}"
        )
    ds = handle[key]
    if not isinstance(ds, h5py.Dataset):
        raise DatasetError(f"{name}: '{key}' is a group, not a dataset ({role})")
    return ds


def _check_matrix(ds: h5py.Dataset, name: str, kinds: str, what: str) -> None:
    label = f"{name}: dataset '{ds.name.lstrip('/')}'"
    if ds.shape is None:
        raise DatasetError(f"{label} holds no data (empty dataspace); expected {what}")
    if ds.dtype.kind not in kinds or ds.dtype.fields is not None:
        want = "integer" if kinds == _ID_KINDS else "numeric"
        raise DatasetError(f"{label} has dtype {_dtype_text(ds)}; expected {want} {what}")
    if ds.ndim != 2:
        raise DatasetError(
            f"{label} has {ds.ndim}-D shape {ds.shape}; expected a 2-D (n, d) array of {what}"
        )
    n, d = ds.shape
    if d == 0:
        raise DatasetError(f"{label} has dimension 0; expected a positive dimension")
    if n == 0:
        raise DatasetError(f"{label} is empty (0 rows)")


def _check_contiguous_storage(ds: h5py.Dataset, name: str) -> None:
    """For contiguous storage, require the file to hold all the bytes the shape claims, so
    nothing is allocated for data the file does not have."""
    if ds.chunks is not None or ds.external or ds.shape is None:
        return
    try:
        offset = ds.id.get_offset()
    except (OSError, RuntimeError, ValueError):
        return
    if offset is None:
        return  # never written: reads give the fill value
    claimed = int(np.prod(ds.shape, dtype=object)) * ds.dtype.itemsize
    available = file_size(Path(ds.file.filename)) - int(offset)
    if claimed > available:
        raise DatasetError(
            f"{name}: truncated file: dataset '{ds.name.lstrip('/')}' claims shape {ds.shape} "
            f"({claimed} bytes) but only {max(available, 0)} bytes follow its start"
        )


def _read(ds: h5py.Dataset, name: str) -> np.ndarray:
    _check_contiguous_storage(ds, name)
    try:
        return np.asarray(ds[()])
    except MemoryError as exc:
        gib = int(np.prod(ds.shape, dtype=object)) * ds.dtype.itemsize / 2**30
        raise ResourceError(
            f"{name}: dataset '{ds.name.lstrip('/')}' needs {gib:.1f} GiB of memory to read"
        ) from exc
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        raise DatasetError(
            f"{name}: cannot read dataset '{ds.name.lstrip('/')}' ({_first_line(exc)})"
        ) from exc


def _memmap_dataset(path: Path, ds: h5py.Dataset) -> np.memmap | None:
    """Memory-map a contiguous, uncompressed little-endian float32 dataset, else None."""
    if ds.dtype != np.dtype("<f4") or ds.chunks is not None or ds.compression is not None:
        return None
    if ds.external:
        return None
    try:
        if ds.id.get_create_plist().get_layout() != h5py.h5d.CONTIGUOUS:
            return None
        offset = ds.id.get_offset()
    except (OSError, RuntimeError, ValueError):
        return None
    if offset is None:
        return None
    nbytes = int(np.prod(ds.shape)) * 4
    if offset + nbytes > file_size(path):
        return None
    mapped = np.memmap(path, dtype="<f4", mode="r", offset=offset, shape=ds.shape)
    # Guard against an offset convention we did not expect: the first row must match.
    try:
        first = np.asarray(ds[0])
    except (OSError, ValueError, RuntimeError):
        return None
    if not np.array_equal(mapped[0].view("<u4"), first.astype("<f4").view("<u4")):
        return None
    return mapped


def read_vector_dataset(path: PathLike, handle: h5py.File, key: str, role: str) -> np.ndarray:
    """(n, d) float32 from dataset ``key`` after checking its dtype and shape; memory-mapped
    when stored contiguous, uncompressed float32."""
    p = Path(path)
    name = display_name(p)
    ds = _get_dataset(handle, key, role)
    _check_matrix(ds, name, _VECTOR_KINDS, "vectors")
    mapped = _memmap_dataset(p, ds)
    if mapped is not None:
        return mapped
    return to_float32(_read(ds, name))


def read_id_dataset(handle: h5py.File, key: str, role: str) -> np.ndarray:
    """(n, k) int64 ids from dataset ``key`` (integer, 2-D; negatives other than -1 rejected)."""
    name = display_name(handle.filename)
    ds = _get_dataset(handle, key, role)
    _check_matrix(ds, name, _ID_KINDS, "ids")
    ids = _read(ds, name)
    if ids.dtype == np.uint64 and ids.max() > np.iinfo(np.int64).max:
        raise DatasetError(f"{name}: dataset '{key}' holds ids too large for int64")
    ids = ids.astype(np.int64)
    find_bad_ids(ids, f"{name}: dataset '{key}'")
    return ids


def read_weight_dataset(handle: h5py.File, key: str) -> np.ndarray:
    """1-D float64 weights from dataset ``key`` (an (n, 1) column is accepted)."""
    name = display_name(handle.filename)
    ds = _get_dataset(handle, key, "query weights")
    shape: tuple[int, ...] = ds.shape if ds.shape is not None else ()
    if ds.dtype.kind not in _VECTOR_KINDS or ds.dtype.fields is not None:
        raise DatasetError(
            f"{name}: dataset '{key}' has dtype {_dtype_text(ds)}; expected numeric weights"
        )
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise DatasetError(f"{name}: dataset '{key}' has shape {shape}; expected 1-D weights")
    return _read(ds, name).astype(np.float64).reshape(-1)


def read_hdf5_vectors(path: PathLike) -> np.ndarray:
    """``train`` if present, else the file's only 2-D numeric dataset, as (n, d) float32."""
    p = require_file(path)
    name = display_name(p)
    with open_hdf5(p) as handle:
        if "train" in handle:
            return read_vector_dataset(p, handle, "train", "base vectors")
        datasets = list_datasets(handle)
        matrices = [
            key
            for key, ds in datasets.items()
            if ds.shape is not None
            and ds.ndim == 2
            and ds.dtype.kind in _VECTOR_KINDS
            and ds.dtype.fields is None
        ]
        if len(matrices) == 1:
            return read_vector_dataset(p, handle, matrices[0], "vectors")
        if not matrices:
            raise DatasetError(
                f"{name}: no 'train' dataset and no 2-D numeric dataset; "
                f"datasets present: {_present(handle)}"
            )
        raise DatasetError(
            f"{name}: no 'train' dataset and {len(matrices)} 2-D datasets "
            f"({', '.join(matrices)}); cannot tell which holds the vectors"
        )


def read_hdf5_ids(path: PathLike) -> np.ndarray:
    """(n, k) int64 ids from the file's ``neighbors`` dataset."""
    with open_hdf5(path) as handle:
        return read_id_dataset(handle, "neighbors", "ground-truth ids")


@dataclass(frozen=True)
class AnnBenchmarksFile:
    """The parts of an ann-benchmarks HDF5 file annkit uses (distances are recomputed)."""

    base: np.ndarray
    queries: np.ndarray
    neighbors: np.ndarray | None
    weights: np.ndarray | None
    distance: str | None


def _attr_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_text(value.reshape(-1)[0])
    return str(value)


_MAX_ATTR_BYTES = 1 << 20


def _unreadable_attr_reason(attr: h5py.h5a.AttrID) -> str | None:
    """Why an attribute is not read (a type or size annkit does not read), or None.

    Only numbers and strings are read: libhdf5 can crash reading a damaged variable-length
    sequence type, and attributes are small, so a huge claimed shape means damage.
    """
    type_class = attr.get_type().get_class()
    if type_class not in (h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.STRING):
        return "not a number or string"
    shape = attr.shape
    count = 1 if shape is None else int(np.prod(shape, dtype=object))
    if count * max(attr.get_type().get_size(), 1) > _MAX_ATTR_BYTES:
        return f"{count} values"
    return None


def read_root_attrs(path: Path, handle: h5py.File, keys: list[str]) -> dict[str, str | None]:
    """The given root attributes as text; None for one of a type or size annkit does not read.

    Before any variable-length string is read the file's global heaps are checked, since
    libhdf5 can hang on a damaged one.
    """
    readable: list[str] = []
    values: dict[str, str | None] = {}
    variable_length = False
    for key in keys:
        attr = h5py.h5a.open(handle.id, key.encode())
        if _unreadable_attr_reason(attr) is None:
            readable.append(key)
            variable_length = variable_length or attr.dtype.hasobject
        else:
            values[key] = None
    if variable_length:
        check_global_heaps(path, handle)
    for key in readable:
        try:
            values[key] = _attr_text(handle.attrs[key])
        except (OSError, TypeError, ValueError, RuntimeError, KeyError) as exc:
            raise DatasetError(
                f"{display_name(path)}: cannot read attribute '{key}' ({_first_line(exc)})"
            ) from exc
    return {key: values[key] for key in keys}


def describe_attrs(path: Path, handle: h5py.File) -> dict[str, str]:
    """Root attributes as text for ``annkit info``; unread ones are described, not shown."""
    keys = [str(key) for key in handle.attrs]
    described: dict[str, str] = {}
    for key, value in read_root_attrs(path, handle, keys).items():
        if value is None:
            attr = h5py.h5a.open(handle.id, key.encode())
            value = f"<not shown: {_unreadable_attr_reason(attr)}>"
        described[key] = value
    return described


def read_ann_benchmarks(path: PathLike) -> AnnBenchmarksFile:
    """Read ``train``, ``test`` and, when present, ``neighbors``, ``test_weights`` and the
    ``distance`` attribute; each dataset's dtype and shape are checked before reading."""
    p = require_file(path)
    with open_hdf5(p) as handle:
        for key, role in (("train", "base vectors"), ("test", "queries")):
            _get_dataset(handle, key, role)
        base = read_vector_dataset(p, handle, "train", "base vectors")
        queries = read_vector_dataset(p, handle, "test", "queries")
        neighbors = None
        if "neighbors" in handle:
            neighbors = read_id_dataset(handle, "neighbors", "ground-truth ids")
        weights = None
        if "test_weights" in handle:
            weights = read_weight_dataset(handle, "test_weights")
        distance = None
        if "distance" in handle.attrs:
            distance = read_root_attrs(p, handle, ["distance"])["distance"]
            if distance is None:
                raise DatasetError(
                    f"{display_name(p)}: the 'distance' attribute is not a string; "
                    "expected e.g. 'euclidean' or 'angular'"
                )
    return AnnBenchmarksFile(base, queries, neighbors, weights, distance)


def read_declared_distance(path: PathLike) -> str | None:
    """The root ``distance`` attribute of an HDF5 file (its metric as written), or None when
    the file has none; a non-string attribute is an error."""
    p = require_file(path)
    with open_hdf5(p) as handle:
        if "distance" not in handle.attrs:
            return None
        distance = read_root_attrs(p, handle, ["distance"])["distance"]
    if distance is None:
        raise DatasetError(
            f"{display_name(p)}: the 'distance' attribute is not a string; "
            "expected e.g. 'euclidean' or 'angular'"
        )
    return distance


@dataclass(frozen=True)
class QueryFile:
    """The query side of an HDF5 file: ``test`` vectors and, when present, ``test_weights``
    and the ground truth ``neighbors`` (used only when the file is named as ground truth)."""

    vectors: np.ndarray
    weights: np.ndarray | None


def read_hdf5_queries(path: PathLike) -> QueryFile:
    """Queries from an HDF5 file: its ``test`` set (with ``test_weights``) when it has one,
    so an ann-benchmarks file with or without ``train`` serves as a queries file; else the
    file's only 2-D dataset (see :func:`read_hdf5_vectors`)."""
    p = require_file(path)
    with open_hdf5(p) as handle:
        if "test" not in handle:
            return QueryFile(read_hdf5_vectors(p), None)
        vectors = read_vector_dataset(p, handle, "test", "queries")
        weights = read_weight_dataset(handle, "test_weights") if "test_weights" in handle else None
    if weights is not None and weights.shape[0] != vectors.shape[0]:
        raise DatasetError(
            f"{display_name(p)}: {weights.shape[0]} test_weights for {vectors.shape[0]} queries"
        )
    return QueryFile(vectors, weights)


def _write_matrix(handle: h5py.File, key: str, array: np.ndarray, dtype: str) -> None:
    ds = handle.create_dataset(key, shape=array.shape, dtype=dtype)
    for start in range(0, array.shape[0], BLOCK_ROWS):
        ds[start : start + BLOCK_ROWS] = np.asarray(array[start : start + BLOCK_ROWS], dtype=dtype)


def _check_matrix_arg(array: np.ndarray, label: str) -> np.ndarray:
    arr = np.asanyarray(array)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise InputError(f"{label} must be a 2-D numeric array, got shape {arr.shape} {arr.dtype}")
    return arr


def write_dataset_hdf5(
    path: PathLike,
    *,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    neighbors: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    base_text: Sequence[str] | None = None,
    query_text: Sequence[str] | None = None,
    base_labels: Labels | None = None,
    query_labels: Labels | None = None,
) -> None:
    """Write an ann-benchmarks-layout HDF5 file atomically: ``train`` (n, d) float32,
    ``test`` (nq, d) float32, optional ``neighbors`` (nq, k) int64, ``distances`` (nq, k)
    float32, ``test_weights`` (nq,) float64, ``train_text`` / ``test_text`` (UTF-8 strings,
    one per vector), ``train_labels`` / ``test_labels`` label groups (see
    :func:`write_label_group`); attributes ``distance`` and ``point_type``."""
    from annkit.types import normalize_metric

    p = Path(path)
    name = display_name(p)
    metric_name = normalize_metric(metric)
    base_arr = _check_matrix_arg(base, f"{name}: base")
    query_arr = _check_matrix_arg(queries, f"{name}: queries")
    if base_arr.shape[1] != query_arr.shape[1]:
        raise InputError(
            f"{name}: base vectors have dimension {base_arr.shape[1]} but queries have "
            f"dimension {query_arr.shape[1]}"
        )
    n_queries = query_arr.shape[0]
    neighbor_arr = distance_arr = weight_arr = None
    if neighbors is not None:
        neighbor_arr = _check_matrix_arg(neighbors, f"{name}: neighbors")
        if neighbor_arr.shape[0] != n_queries:
            raise InputError(
                f"{name}: neighbors has {neighbor_arr.shape[0]} rows but there are "
                f"{n_queries} queries"
            )
    if distances is not None:
        distance_arr = _check_matrix_arg(distances, f"{name}: distances")
        expected = neighbor_arr.shape if neighbor_arr is not None else None
        if distance_arr.shape != expected:
            raise InputError(
                f"{name}: distances has shape {distance_arr.shape} but neighbors has "
                f"shape {expected}"
            )
    if weights is not None:
        weight_arr = np.asarray(weights, dtype=np.float64).reshape(-1)
        if weight_arr.shape[0] != n_queries:
            raise InputError(
                f"{name}: {weight_arr.shape[0]} weights but there are {n_queries} queries"
            )
    texts = {}
    for key, values, count in (
        ("train_text", base_text, base_arr.shape[0]),
        ("test_text", query_text, n_queries),
    ):
        if values is not None:
            if len(values) != count:
                raise InputError(f"{name}: {len(values)} {key} strings for {count} vectors")
            texts[key] = [str(value) for value in values]
    for key, labels, count in (
        ("train_labels", base_labels, base_arr.shape[0]),
        ("test_labels", query_labels, n_queries),
    ):
        if labels is not None and labels.n_rows != count:
            raise InputError(f"{name}: {labels.n_rows} rows of {key} for {count} vectors")
    with atomic_write(p) as tmp, h5py.File(tmp, "w") as handle:
        _write_matrix(handle, "train", base_arr, "<f4")
        _write_matrix(handle, "test", query_arr, "<f4")
        for key, strings in texts.items():
            handle.create_dataset(key, data=strings, dtype=h5py.string_dtype("utf-8"))
        if neighbor_arr is not None:
            _write_matrix(handle, "neighbors", neighbor_arr, "<i8")
        if distance_arr is not None:
            _write_matrix(handle, "distances", distance_arr, "<f4")
        if weight_arr is not None:
            handle.create_dataset("test_weights", data=weight_arr)
        for key, labels in (("train_labels", base_labels), ("test_labels", query_labels)):
            if labels is not None:
                write_label_group(handle, key, labels)
        handle.attrs["distance"] = metric_name
        handle.attrs["point_type"] = "float"


def write_label_group(handle: h5py.File, key: str, labels: Labels) -> None:
    """Write ``labels`` as group ``key`` of an open HDF5 file: ``indptr`` int64 (rows + 1),
    ``indices`` int32, attribute ``shape`` = [rows, number of labels], and ``label_names``
    (UTF-8 strings) when the labels have names."""
    group = handle.create_group(key)
    group.create_dataset("indptr", data=np.asarray(labels.indptr, dtype="<i8"))
    group.create_dataset("indices", data=np.asarray(labels.indices, dtype="<i4"))
    group.attrs["shape"] = np.array([labels.n_rows, labels.n_labels], dtype="<i8")
    if labels.names is not None:
        group.create_dataset(
            "label_names", data=list(labels.names), dtype=h5py.string_dtype("utf-8")
        )


def write_neighbors_hdf5(
    path: PathLike,
    neighbors: np.ndarray,
    distances: np.ndarray,
    attrs: dict[str, str | int] | None = None,
) -> None:
    """Write search output atomically: ``neighbors`` (nq, k) int64 and ``distances`` (nq, k)
    float32 in the metric's convention, with root ``attrs`` (e.g. ``distance``, ``k``,
    ``source``) so the file says how it was made."""
    p = Path(path)
    name = display_name(p)
    neighbor_arr = _check_matrix_arg(neighbors, f"{name}: neighbors")
    distance_arr = _check_matrix_arg(distances, f"{name}: distances")
    if neighbor_arr.shape != distance_arr.shape:
        raise InputError(
            f"{name}: neighbors has shape {neighbor_arr.shape} but distances has shape "
            f"{distance_arr.shape}"
        )
    with atomic_write(p) as tmp, h5py.File(tmp, "w") as handle:
        _write_matrix(handle, "neighbors", neighbor_arr, "<i8")
        _write_matrix(handle, "distances", distance_arr, "<f4")
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value


def describe_hdf5(path: PathLike) -> dict:
    """Every dataset's shape and dtype and the root attributes as strings (data not read)."""
    p = require_file(path)
    with open_hdf5(p) as handle:
        arrays = {
            key: {"shape": list(ds.shape or ()), "dtype": _dtype_text(ds)}
            for key, ds in list_datasets(handle).items()
        }
        attrs = describe_attrs(p, handle)
    return {"format": "hdf5", "arrays": arrays, "attrs": attrs}
