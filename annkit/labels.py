"""Labels of vectors as a small CSR matrix, and the filters they make.

Row ``i`` of a :class:`Labels` matrix holds the label ids (in ``[0, n_labels)``) of vector
``i``. A query's filter is the AND of its labels (big-ann-benchmarks' filter track): a base
vector passes when it carries every one of the query's labels. A query without labels is
unfiltered: every base vector passes.

**Selectivity** is the share of base vectors that pass a query's filter (1.0 for an
unfiltered query); tables call it "share passing".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from annkit.errors import DatasetError

#: a filter: the sorted, distinct label ids a base vector must all carry (() = unfiltered)
Filter = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Labels:
    """Labels of ``n_rows`` vectors, CSR: ``indptr`` (n_rows + 1,) int64 and ``indices``
    (nnz,) int32, row ``i``'s labels being ``indices[indptr[i]:indptr[i + 1]]`` (sorted,
    distinct); ``n_labels`` label ids exist; ``names`` gives one string per label, or None.

    Build one with :meth:`from_rows` or :func:`check_labels` (which validate); the
    constructor trusts its arguments."""

    indptr: np.ndarray
    indices: np.ndarray
    n_labels: int
    names: tuple[str, ...] | None = None

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Iterable[int]],
        n_labels: int,
        names: Sequence[str] | None = None,
        where: str = "labels",
    ) -> Labels:
        """Labels from one iterable of label ids per row (checked, sorted, deduplicated)."""
        lists = [np.asarray(list(row), dtype=np.int64) for row in rows]
        indptr = np.zeros(len(lists) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(row) for row in lists])
        indices = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        return check_labels(indptr, indices, n_labels, names, where=where)

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def row(self, i: int) -> np.ndarray:
        """The label ids of row ``i`` (sorted, distinct), int32."""
        return self.indices[int(self.indptr[i]) : int(self.indptr[i + 1])]

    def labels_per_row(self) -> np.ndarray:
        """(n_rows,) int64: how many labels each row carries."""
        return np.diff(self.indptr)

    def rows_per_label(self) -> np.ndarray:
        """(n_labels,) int64: how many rows carry each label."""
        return np.bincount(self.indices, minlength=self.n_labels).astype(np.int64)

    def filters(self) -> list[Filter]:
        """Each row's labels as a filter tuple (``()`` for a row without labels)."""
        bounds = self.indptr.tolist()
        values = self.indices.tolist()
        return [tuple(values[bounds[i] : bounds[i + 1]]) for i in range(self.n_rows)]

    def take(self, rows: np.ndarray) -> Labels:
        """The labels of ``rows`` (an int array of row numbers), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        counts = stops - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(counts)
        offsets = np.repeat(starts - indptr[:-1], counts) + np.arange(int(indptr[-1]))
        return Labels(indptr, self.indices[offsets], self.n_labels, self.names)

    def repeat(self, times: int) -> Labels:
        """The labels of ``times`` consecutive copies of every row (row ``i`` of the result
        is row ``i // times`` here), e.g. for base vectors copied ``times`` times each."""
        return self.take(np.repeat(np.arange(self.n_rows, dtype=np.int64), times))

    def label_name(self, label: int) -> str:
        """The label's name, else its id as text."""
        if self.names is not None and 0 <= label < len(self.names):
            return self.names[label]
        return str(label)

    def same_as(self, other: Labels) -> bool:
        """True when both hold the same rows, label count and names."""
        return (
            self.n_labels == other.n_labels
            and self.names == other.names
            and np.array_equal(self.indptr, other.indptr)
            and np.array_equal(self.indices, other.indices)
        )


def check_labels(
    indptr: Any,
    indices: Any,
    n_labels: Any,
    names: Sequence[str] | None = None,
    *,
    where: str,
    rows: int | None = None,
) -> Labels:
    """A validated :class:`Labels` from raw CSR parts; every problem is a DatasetError whose
    one-line message starts with ``where`` (e.g. ``"b.spmat"`` or ``"d.hdf5: train_labels"``).

    Checks: integer 1-D arrays; ``indptr`` starts at 0, never decreases and ends at the
    number of ``indices``; every label id is in ``[0, n_labels)``; one name per label; and,
    when ``rows`` is given, one row per vector. Each row's ids are sorted and deduplicated.
    """
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    try:
        label_count = int(n_labels)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: the number of labels {n_labels!r} is not an integer"
        ) from None
    for part, array in (("indptr", indptr), ("indices", indices)):
        if array.ndim != 1 or (array.dtype.kind not in "iu" and array.size):
            raise DatasetError(
                f"{where}: {part} must be a 1-D integer array, got shape {array.shape} "
                f"{array.dtype}"
            )
    if indptr.size == 0:
        raise DatasetError(f"{where}: indptr is empty; it needs one entry per row plus one")
    indptr = indptr.astype(np.int64)
    if label_count < 0:
        raise DatasetError(f"{where}: the number of labels is {label_count}; expected >= 0")
    if int(indptr[0]) != 0:
        raise DatasetError(f"{where}: indptr starts at {int(indptr[0])}, not 0 (damaged)")
    steps = np.diff(indptr)
    if steps.size and int(steps.min()) < 0:
        row = int(np.argmax(steps < 0))
        raise DatasetError(
            f"{where}: indptr is not monotonic: it decreases after row {row} "
            f"({int(indptr[row])} then {int(indptr[row + 1])}) (damaged)"
        )
    if int(indptr[-1]) != indices.size:
        raise DatasetError(
            f"{where}: indptr ends at {int(indptr[-1])} but there are {indices.size} label "
            "ids (wrong nnz: damaged)"
        )
    n_rows = indptr.size - 1
    if rows is not None and n_rows != rows:
        raise DatasetError(f"{where}: {n_rows:,} rows of labels for {rows:,} vectors")
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= label_count:
            bad = low if low < 0 else high
            row = int(np.searchsorted(indptr, int(np.argmax(indices == bad)), side="right")) - 1
            raise DatasetError(
                f"{where}: label id {bad} (row {row}) is out of range: there are "
                f"{label_count} labels (ids 0..{label_count - 1})"
            )
    name_tuple = None
    if names is not None:
        name_tuple = tuple(str(name) for name in names)
        if len(name_tuple) != label_count:
            raise DatasetError(f"{where}: {len(name_tuple)} label names for {label_count} labels")
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), steps)
    values = indices.astype(np.int64)
    order = np.lexsort((values, row_of))
    row_of, values = row_of[order], values[order]
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = (row_of[1:] != row_of[:-1]) | (values[1:] != values[:-1])
    if not keep.all():
        row_of, values = row_of[keep], values[keep]
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(row_of, minlength=n_rows))
    return Labels(indptr, values.astype(np.int32), label_count, name_tuple)


@dataclass(frozen=True, eq=False)
class Postings:
    """The base labels inverted (CSC): ``ids[ptr[l]:ptr[l + 1]]`` are the base rows carrying
    label ``l``, ascending, int64; ``n_base`` rows in all."""

    ptr: np.ndarray
    ids: np.ndarray
    n_base: int

    def of(self, label: int) -> np.ndarray:
        """Base rows carrying ``label`` (empty for a label id beyond the base's labels)."""
        if label < 0 or label + 1 >= self.ptr.shape[0]:
            return np.zeros(0, dtype=np.int64)
        return self.ids[int(self.ptr[label]) : int(self.ptr[label + 1])]


def postings(base_labels: Labels) -> Postings:
    """The posting list of every label of ``base_labels``."""
    counts = base_labels.rows_per_label()
    ptr = np.zeros(base_labels.n_labels + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(counts)
    row_of = np.repeat(np.arange(base_labels.n_rows, dtype=np.int64), base_labels.labels_per_row())
    order = np.argsort(base_labels.indices, kind="stable")
    return Postings(ptr=ptr, ids=row_of[order], n_base=base_labels.n_rows)


def passing_ids(base_labels: Labels | Postings, query_filter: Iterable[int]) -> np.ndarray:
    """Ascending int64 ids of the base vectors carrying every label of ``query_filter``
    (all ids for an empty filter), by intersecting posting lists shortest first. Pass a
    :class:`Postings` (from :func:`postings`) when asking for many filters."""
    index = base_labels if isinstance(base_labels, Postings) else postings(base_labels)
    wanted = sorted({int(label) for label in query_filter})
    if not wanted:
        return np.arange(index.n_base, dtype=np.int64)
    lists = sorted((index.of(label) for label in wanted), key=len)
    passing = lists[0]
    for other in lists[1:]:
        if passing.size == 0:
            break
        passing = np.intersect1d(passing, other, assume_unique=True)
    return np.asarray(passing, dtype=np.int64)


def group_by_filter(query_labels: Labels) -> dict[Filter, np.ndarray]:
    """Query rows grouped by their filter: filter -> ascending int64 row numbers (the
    unfiltered queries under ``()``), in order of each filter's first query."""
    groups: dict[Filter, list[int]] = {}
    for row, query_filter in enumerate(query_labels.filters()):
        groups.setdefault(query_filter, []).append(row)
    return {key: np.asarray(rows, dtype=np.int64) for key, rows in groups.items()}


def passing_counts(base_labels: Labels, query_labels: Labels) -> np.ndarray:
    """(nq,) int64: how many base vectors pass each query's filter (n_base if unfiltered)."""
    index = postings(base_labels)
    counts = np.empty(query_labels.n_rows, dtype=np.int64)
    for query_filter, rows in group_by_filter(query_labels).items():
        counts[rows] = passing_ids(index, query_filter).size
    return counts


def selectivity(base_labels: Labels, query_labels: Labels) -> np.ndarray:
    """(nq,) float64: the share of base vectors passing each query's filter, in [0, 1]
    (1.0 for an unfiltered query)."""
    if base_labels.n_rows == 0:
        return np.ones(query_labels.n_rows, dtype=np.float64)
    return passing_counts(base_labels, query_labels) / float(base_labels.n_rows)


#: upper edges of the selectivity bands ``annkit info`` counts queries in
SELECTIVITY_BANDS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)


def _band_name(low: float, high: float) -> str:
    def pct(value: float) -> str:
        return f"{value * 100:g}%"

    if low == 0.0:
        return f"< {pct(high)}"
    if high >= 1.0:
        return f">= {pct(low)}, filtered"
    return f"{pct(low)} - {pct(high)}"


@dataclass(frozen=True)
class LabelSummary:
    """What the labels of a dataset look like (``annkit info``).

    ``n_labels``; ``base_rows`` and the labels per base vector (mean, max, share of vectors
    with none); ``top_labels``: the most common labels as (name, share of base vectors);
    and, with query labels, ``queries``, the share of unfiltered queries and the selectivity
    (share passing) of the filtered ones: percentiles (min, p5, p25, p50, p75, p95, max),
    how many queries no base vector passes, and query counts per band (``bands``)."""

    n_labels: int
    base_rows: int
    labels_per_vector_mean: float
    labels_per_vector_max: int
    share_without_labels: float
    top_labels: tuple[tuple[str, float], ...]
    queries: int | None = None
    unfiltered_share: float | None = None
    selectivity_percentiles: tuple[tuple[str, float], ...] | None = None
    queries_none_pass: int | None = None
    bands: tuple[tuple[str, int], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``selectivity`` holds the query side, or None)."""
        query_side = None
        if self.queries is not None:
            query_side = {
                "queries": self.queries,
                "unfiltered_share": self.unfiltered_share,
                "percentiles": dict(self.selectivity_percentiles or ()),
                "queries_none_pass": self.queries_none_pass,
                "bands": dict(self.bands or ()),
            }
        return {
            "n_labels": self.n_labels,
            "base_rows": self.base_rows,
            "labels_per_vector": {
                "mean": self.labels_per_vector_mean,
                "max": self.labels_per_vector_max,
                "share_without_labels": self.share_without_labels,
            },
            "top_labels": dict(self.top_labels),
            "selectivity": query_side,
        }


def summarize_labels(
    base_labels: Labels, query_labels: Labels | None = None, top: int = 5
) -> LabelSummary:
    """The :class:`LabelSummary` of a dataset's labels (``top`` most common labels)."""
    per_row = base_labels.labels_per_row()
    n_base = max(base_labels.n_rows, 1)
    counts = base_labels.rows_per_label()
    order = np.argsort(-counts, kind="stable")[:top]
    top_labels = tuple(
        (base_labels.label_name(int(label)), float(counts[label]) / n_base)
        for label in order
        if counts[label] > 0
    )
    summary = LabelSummary(
        n_labels=base_labels.n_labels,
        base_rows=base_labels.n_rows,
        labels_per_vector_mean=float(per_row.mean()) if per_row.size else 0.0,
        labels_per_vector_max=int(per_row.max()) if per_row.size else 0,
        share_without_labels=float(np.mean(per_row == 0)) if per_row.size else 0.0,
        top_labels=top_labels,
    )
    if query_labels is None:
        return summary
    shares = selectivity(base_labels, query_labels)
    filtered = shares[query_labels.labels_per_row() > 0]
    percentiles = None
    bands = None
    if filtered.size:
        points: tuple[tuple[str, float], ...] = (
            ("min", 0.0),
            ("p5", 5.0),
            ("p25", 25.0),
            ("p50", 50.0),
            ("p75", 75.0),
            ("p95", 95.0),
            ("max", 100.0),
        )
        values = np.percentile(filtered, [q for _, q in points])
        percentiles = tuple((name, float(v)) for (name, _), v in zip(points, values, strict=True))
        edges = (0.0, *SELECTIVITY_BANDS)
        band_counts = []
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            inside = (filtered >= low) & ((filtered < high) if high < 1.0 else (filtered <= high))
            band_counts.append((_band_name(low, high), int(np.count_nonzero(inside))))
        bands = tuple(band_counts)
    return LabelSummary(
        **{
            **summary.__dict__,
            "queries": query_labels.n_rows,
            "unfiltered_share": float(np.mean(query_labels.labels_per_row() == 0))
            if query_labels.n_rows
            else 0.0,
            "selectivity_percentiles": percentiles,
            "queries_none_pass": int(np.count_nonzero(filtered == 0)),
            "bands": bands,
        }
    )
