"""Search an index bundle with a query file and write the neighbours (``annkit query``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bundle import load_bundle
from annkit.errors import InputError
from annkit.io import write_neighbors_hdf5, write_vectors
from annkit.sources import open_queries

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
) -> QueryRun:
    """Search the bundle ``index`` with ``queries`` (a vector file, or a dataset HDF5's test
    set) at depth ``k`` with query ``params``, and write the result atomically to ``output``:
    ``.hdf5`` / ``.h5`` (neighbors (nq, k) int64 + distances) or ``.npy`` (ids only).
    ``policy``: a policy file from ``annkit adapt``; each query then gets its own effort.
    ``max_queries``: search a seeded sample of that many queries (as --max-queries does
    everywhere)."""
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
    if policy is not None:
        from annkit.adaptive import adaptive_search, load_policy

        chosen = load_policy(policy, bundle.manifest)
        result: Any = adaptive_search(bundle.engine, chosen, vectors, k)
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
