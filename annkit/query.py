"""Search an index bundle with a query file and write the neighbours (``annkit query``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bundle import load_bundle
from annkit.errors import InputError
from annkit.filtering import FilteredSearch, Workload
from annkit.io import resolve_dataset_path, write_neighbors_hdf5, write_vectors
from annkit.io.dispatch import read_queries
from annkit.labels import Labels
from annkit.sources import open_base, open_queries, sample_rows
from annkit.types import SearchResult

OUTPUT_SUFFIXES = (".hdf5", ".h5", ".npy")


@dataclass(frozen=True)
class QueryRun:
    """What :func:`query_to_file` wrote: the output file, the number of queries, k, the
    engine and the query params it searched with."""

    output: str
    queries: int
    k: int
    engine: str
    query_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "output": self.output,
            "queries": self.queries,
            "k": self.k,
            "engine": self.engine,
            "query_params": dict(self.query_params),
        }


def query_to_file(
    index: str | Path,
    queries: str | Path,
    k: int,
    output: str | Path,
    params: dict[str, Any] | None = None,
    policy: str | Path | None = None,
    max_queries: int | None = None,
    *,
    query_labels: str | Path | None = None,
    filter_strategy: str = "auto",
    base: str | Path | None = None,
) -> QueryRun:
    """Search the bundle ``index`` with ``queries`` (a vector file, or a dataset HDF5's test
    set) at depth ``k`` with query ``params``, and write the result atomically to ``output``:
    ``.hdf5`` / ``.h5`` (neighbors (nq, k) int64 + distances) or ``.npy`` (ids only).
    ``policy``: a policy file from ``annkit adapt``; each query then gets its own effort.
    ``max_queries``: search a seeded sample of that many queries (as --max-queries does
    everywhere). ``query_labels`` (a ``.spmat`` file or an HDF5 ``test_labels`` group; a
    queries HDF5 file's own group is used when present) makes each query a filter over the
    labels the index keeps, searched by ``filter_strategy``; the ``subset`` strategy (and
    ``auto``'s use of it) needs the ``base`` vectors."""
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"{output}: output must end in .hdf5, .h5 or .npy")
    bundle = load_bundle(index)
    bundle.engine.set_query_params(**(params or {}))
    vectors = open_queries(queries, bundle.manifest["metric"], max_queries)
    if vectors.shape[1] != bundle.manifest["dim"]:
        raise InputError(
            f"{queries}: queries have dimension {vectors.shape[1]}, "
            f"index {index} has {bundle.manifest['dim']}"
        )
    labels = _query_labels(queries, query_labels, len(vectors), max_queries)
    result: Any
    if labels is not None:
        if policy is not None:
            raise InputError("a policy and query labels (filters) cannot be combined yet")
        result = _filtered(bundle, vectors, labels, k, filter_strategy, base)
    elif policy is not None:
        from annkit.adaptive import adaptive_search, load_policy

        chosen = load_policy(policy, bundle.manifest)
        result = adaptive_search(bundle.engine, chosen, vectors, k)
        params = {**(params or {}), "policy": str(policy)}
    else:
        result = bundle.engine.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
    if suffix == ".npy":
        write_vectors(output, result.ids)
    else:
        write_neighbors_hdf5(output, result.ids, result.distances)
    return QueryRun(
        output=str(output),
        queries=int(len(vectors)),
        k=k,
        engine=bundle.engine.name,
        query_params=dict(params or {}) if policy is not None else dict(bundle.engine.query),
    )


def _query_labels(
    queries: str | Path,
    query_labels: str | Path | None,
    count: int,
    max_queries: int | None,
) -> Labels | None:
    """The queries' labels (following --max-queries' sample), or None: the given file, else
    the queries HDF5 file's own ``test_labels`` group when it has one."""
    from annkit.io.labels import has_label_group, read_label_group, read_labels_file

    source = resolve_dataset_path(queries)
    total = len(read_queries(source)[0]) if max_queries is not None else count
    labels: Labels | None = None
    if query_labels is not None:
        labels = read_labels_file(query_labels, "queries", rows=total)
    elif has_label_group(source, "test_labels"):
        labels = read_label_group(source, "test_labels", rows=total)
    if labels is None:
        return None
    rows = None if max_queries is None else sample_rows(total, max_queries)
    return labels if rows is None else labels.take(rows)


def _filtered(
    bundle: Any,
    vectors: np.ndarray,
    labels: Labels,
    k: int,
    strategy: str,
    base: str | Path | None,
) -> SearchResult:
    """Filtered search of every query over the labels the index keeps."""
    base_labels = bundle.base_labels()
    if base_labels is None:
        raise InputError(
            f"index {bundle.path} keeps no base labels: build it from labelled data (or with "
            "--base-labels) to search with filters"
        )
    vectors_of_base = None
    if base is not None:
        vectors_of_base, _, _ = open_base(base, bundle.manifest["metric"])
        if len(vectors_of_base) != base_labels.n_rows:
            raise InputError(
                f"{base}: {len(vectors_of_base):,} base vectors, the index holds "
                f"{base_labels.n_rows:,}"
            )
    elif strategy == "subset":
        raise InputError(
            "--filter-strategy subset searches the base vectors: give them with --base"
        )
    workload = Workload.of(base_labels, labels)
    search = FilteredSearch(
        bundle.engine,
        vectors_of_base,
        np.ascontiguousarray(vectors, dtype=np.float32),
        bundle.manifest["metric"],
        workload,
        strategy,
        k,
        threshold=None if vectors_of_base is not None else 0.0,
    )
    return search.search(np.arange(len(vectors), dtype=np.int64))
