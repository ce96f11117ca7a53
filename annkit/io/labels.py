"""Label files: big-ann-benchmarks ``.spmat`` files and the ``train_labels`` /
``test_labels`` groups of an ann-benchmarks HDF5 file. Both hold a CSR matrix of label ids
(see :mod:`annkit.labels`).

``.spmat`` (big-ann-benchmarks filter track, ``read_sparse_matrix``): little-endian int64
``nrow``, ``ncol``, ``nnz``; int64 ``indptr[nrow + 1]``; int32 ``indices[nnz]``; float32
``data[nnz]`` (ignored on reading, written as 1.0).

HDF5 group (``train_labels`` for the base vectors, ``test_labels`` for the queries):
datasets ``indptr`` (int64, rows + 1) and ``indices`` (int32 label ids), attribute
``shape`` = [rows, number of labels], and optionally ``label_names`` (one UTF-8 string per
label).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from annkit.errors import DatasetError
from annkit.io._common import PathLike, atomic_write, display_name, file_size, require_file
from annkit.io._heap import check_global_heaps
from annkit.io.hdf5 import HDF5_SUFFIXES, _read, open_hdf5
from annkit.labels import Labels, LabelSummary, check_labels, summarize_labels

SPMAT_SUFFIX = ".spmat"
SPMAT_HEADER_BYTES = 24
#: the HDF5 group holding each side's labels
LABEL_GROUPS: dict[str, str] = {"base": "train_labels", "queries": "test_labels"}
LABEL_SUFFIXES = (SPMAT_SUFFIX, *HDF5_SUFFIXES)


def spmat_layout(path: PathLike) -> tuple[int, int, int]:
    """(nrow, ncol, nnz) from an ``.spmat`` header, checked against the file's size."""
    p = require_file(path)
    name = display_name(p)
    size = file_size(p)
    if size < SPMAT_HEADER_BYTES:
        raise DatasetError(
            f"{name}: truncated file: {size} bytes is shorter than the "
            f"{SPMAT_HEADER_BYTES}-byte .spmat header (int64 nrow, ncol, nnz)"
        )
    with open(p, "rb") as handle:
        nrow, ncol, nnz = (int(v) for v in np.frombuffer(handle.read(24), dtype="<i8"))
    if nrow < 0 or ncol < 0 or nnz < 0:
        raise DatasetError(
            f"{name}: damaged .spmat header: nrow {nrow}, ncol {ncol}, nnz {nnz} "
            "(none may be negative)"
        )
    expected = SPMAT_HEADER_BYTES + 8 * (nrow + 1) + 8 * nnz
    claim = f"{nrow:,} rows, {ncol:,} labels, {nnz:,} nonzeros"
    if size < expected:
        raise DatasetError(
            f"{name}: truncated file: the header claims {claim} ({expected:,} bytes) "
            f"but the file has only {size:,} bytes"
        )
    if size != expected:
        raise DatasetError(
            f"{name}: file size {size:,} bytes does not match the header's {claim} "
            f"({expected:,} bytes expected: wrong nnz or damaged)"
        )
    return nrow, ncol, nnz


def read_spmat(path: PathLike, rows: int | None = None) -> Labels:
    """Labels from a big-ann-benchmarks ``.spmat`` file (checked: header vs size, indptr,
    label ids in range, and ``rows`` rows when given)."""
    p = require_file(path)
    nrow, ncol, nnz = spmat_layout(p)
    try:
        with open(p, "rb") as handle:
            handle.seek(SPMAT_HEADER_BYTES)
            indptr = np.fromfile(handle, dtype="<i8", count=nrow + 1)
            indices = np.fromfile(handle, dtype="<i4", count=nnz)
    except OSError as exc:
        raise DatasetError(f"{display_name(p)}: cannot read: {exc.strerror}") from exc
    return check_labels(indptr, indices, ncol, where=display_name(p), rows=rows)


def write_spmat(path: PathLike, labels: Labels) -> None:
    """Write ``labels`` as a big-ann-benchmarks ``.spmat`` file (data all 1.0), atomically."""
    p = Path(path)
    header = np.array([labels.n_rows, labels.n_labels, labels.nnz], dtype="<i8")
    with atomic_write(p) as tmp, open(tmp, "wb") as handle:
        handle.write(header.tobytes())
        handle.write(np.asarray(labels.indptr, dtype="<i8").tobytes())
        handle.write(np.asarray(labels.indices, dtype="<i4").tobytes())
        handle.write(np.ones(labels.nnz, dtype="<f4").tobytes())


def _group_dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    item = group.get(key)
    if not isinstance(item, h5py.Dataset):
        present = ", ".join(sorted(group)) or "nothing"
        raise DatasetError(f"{where}: missing dataset '{key}' (the group holds {present})")
    if item.shape is None or item.ndim != 1 or item.dtype.kind not in "iu":
        raise DatasetError(
            f"{where}: '{key}' must be a 1-D integer dataset, got shape {item.shape} {item.dtype}"
        )
    return _read(item, where)


def _group_shape(group: h5py.Group, where: str) -> tuple[int, int]:
    if "shape" not in group.attrs:
        raise DatasetError(f"{where}: missing attribute 'shape' ([rows, number of labels])")
    attr = h5py.h5a.open(group.id, b"shape")
    if attr.get_type().get_class() != h5py.h5t.INTEGER or attr.shape != (2,):
        raise DatasetError(f"{where}: attribute 'shape' must be two integers [rows, labels]")
    rows, n_labels = (int(v) for v in np.asarray(group.attrs["shape"]).reshape(-1))
    return rows, n_labels


def _group_names(path: Path, handle: h5py.File, group: h5py.Group, where: str) -> list[str] | None:
    item = group.get("label_names")
    if item is None:
        return None
    if not isinstance(item, h5py.Dataset) or item.ndim != 1 or item.dtype.kind not in "OSU":
        raise DatasetError(f"{where}: 'label_names' must be a 1-D dataset of strings")
    if item.dtype.kind == "O":
        check_global_heaps(path, handle)
    values = _read(item, where)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def read_label_group(path: PathLike, key: str, rows: int | None = None) -> Labels | None:
    """The labels of group ``key`` (``train_labels`` / ``test_labels``) of an HDF5 file, or
    None when the file has no such entry; checked as :func:`annkit.labels.check_labels`."""
    p = require_file(path)
    with open_hdf5(p) as handle:
        if key not in handle:
            return None
        where = f"{display_name(p)}: {key}"
        group = handle[key]
        if not isinstance(group, h5py.Group):
            raise DatasetError(f"{where} is a dataset, not a group (indptr, indices, shape)")
        indptr = _group_dataset(group, "indptr", where)
        indices = _group_dataset(group, "indices", where)
        shape_rows, n_labels = _group_shape(group, where)
        names = _group_names(p, handle, group, where)
    if shape_rows != indptr.size - 1:
        raise DatasetError(
            f"{where}: attribute shape says {shape_rows:,} rows but indptr holds "
            f"{max(indptr.size - 1, 0):,} (damaged)"
        )
    return check_labels(indptr, indices, n_labels, names, where=where, rows=rows)


def read_labels_file(path: PathLike, side: str, rows: int | None = None) -> Labels:
    """Labels for ``side`` (``base`` or ``queries``) from a label file: a ``.spmat`` file,
    or an HDF5 file's ``train_labels`` / ``test_labels`` group. ``rows``: the number of
    vectors they label (checked)."""
    p = require_file(path)
    name = display_name(p)
    suffix = p.suffix.lower()
    if suffix == SPMAT_SUFFIX:
        return read_spmat(p, rows=rows)
    if suffix in HDF5_SUFFIXES:
        key = LABEL_GROUPS[side]
        labels = read_label_group(p, key, rows=rows)
        if labels is None:
            raise DatasetError(f"{name}: no '{key}' group of labels")
        return labels
    shown = f"'{p.suffix}'" if p.suffix else "(no extension)"
    raise DatasetError(
        f"{name}: unknown label file type {shown}; supported: {', '.join(LABEL_SUFFIXES)}"
    )


def read_dataset_labels(
    path: PathLike, n_base: int | None = None, n_queries: int | None = None
) -> tuple[Labels | None, Labels | None]:
    """(base labels, query labels) of a dataset HDF5 file (its ``train_labels`` and
    ``test_labels`` groups; None for each it lacks), checked against the row counts given."""
    p = Path(path)
    if p.suffix.lower() not in HDF5_SUFFIXES:
        return None, None
    return (
        read_label_group(p, LABEL_GROUPS["base"], rows=n_base),
        read_label_group(p, LABEL_GROUPS["queries"], rows=n_queries),
    )


def describe_spmat(path: PathLike) -> dict:
    """Format and sizes of an ``.spmat`` label file (the whole file is checked)."""
    p = require_file(path)
    labels = read_spmat(p)
    per_row = labels.labels_per_row()
    return {
        "path": str(p),
        "format": "spmat",
        "size_bytes": file_size(p),
        "rows": labels.n_rows,
        "labels": labels.n_labels,
        "nonzeros": labels.nnz,
        "labels per row (mean)": round(float(per_row.mean()), 3) if per_row.size else 0.0,
    }


def check_label_rows(labels: Labels | None, rows: int, where: str) -> None:
    """DatasetError when ``labels`` do not hold one row per vector (``rows`` vectors)."""
    if labels is not None and labels.n_rows != rows:
        raise DatasetError(f"{where}: {labels.n_rows:,} rows of labels for {rows:,} vectors")


def _vector_rows(path: Path) -> tuple[int | None, int | None]:
    """(base rows, query rows) a file holds, read from its header or HDF5 shapes: an HDF5
    file's ``train`` and ``test`` sets, any other vector file's rows as the base."""
    from annkit.io.dispatch import describe_file

    if path.suffix.lower() in HDF5_SUFFIXES:
        with open_hdf5(path) as handle:
            rows = []
            for key in ("train", "test"):
                item = handle.get(key)
                shape = getattr(item, "shape", None) if isinstance(item, h5py.Dataset) else None
                rows.append(int(shape[0]) if shape else None)
        return rows[0], rows[1]
    arrays: dict[str, dict] = describe_file(path).get("arrays") or {}
    shapes = [spec.get("shape") for spec in arrays.values()]
    return (int(shapes[0][0]) if shapes and shapes[0] else None), None


def dataset_label_summary(
    path: PathLike,
    base_labels: PathLike | None = None,
    query_labels: PathLike | None = None,
) -> LabelSummary | None:
    """The :class:`~annkit.labels.LabelSummary` of a dataset's labels: the label files
    given, else the file's own ``train_labels`` / ``test_labels`` groups; each checked to
    hold one row per vector of the file. None when there are no base labels (query labels
    from a label file then need them: DatasetError)."""
    p = require_file(path)
    n_base, n_queries = _vector_rows(p)
    own_base, own_queries = read_dataset_labels(p, n_base=n_base, n_queries=n_queries)
    base = read_labels_file(base_labels, "base", rows=n_base) if base_labels else own_base
    queries = (
        read_labels_file(query_labels, "queries", rows=n_queries) if query_labels else own_queries
    )
    if base is None and (queries is None or query_labels is None):
        return None  # nothing, or a queries file's own labels: no base to pass through
    if base is None:
        raise DatasetError(
            f"{display_name(p)}: the queries have labels but the base vectors have none; "
            "pass --base-labels FILE"
        )
    return summarize_labels(base, queries)


def has_label_group(path: PathLike, key: str) -> bool:
    """True when the HDF5 file ``path`` holds the label group ``key`` (``train_labels`` /
    ``test_labels``); False for other files."""
    p = Path(path)
    if p.suffix.lower() not in (".hdf5", ".h5") or not p.is_file():
        return False
    from annkit.io.hdf5 import open_hdf5

    with open_hdf5(p) as handle:
        return key in handle
