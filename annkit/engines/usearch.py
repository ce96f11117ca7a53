"""HNSW graph index (USearch). The file is not called usearch.py, which would shadow the
package."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, from_graph_distance, pad_result, register
from annkit.errors import EngineError, ParamError
from annkit.faiss_util import as_float32_rows, normalized_rows
from annkit.types import SearchResult

PAYLOAD = "index.usearch"
_ADD_BLOCK = 65_536
_METRICS = {"angular": "cos", "euclidean": "l2sq", "ip": "ip"}
_DTYPES = ("f32", "f16", "i8")
_SCALAR_BYTES = {"f32": 4, "f16": 2, "i8": 1}


def _scalar_name(kind: Any) -> str:
    """'f32' from usearch's ScalarKind.F32 (or its string form)."""
    return str(getattr(kind, "name", kind)).lower()


def check_header(path: Path, metric: str, dim: int, count: int, dtype: str) -> None:
    """Refuse a usearch file whose header disagrees with the manifest before usearch loads
    it (vector count, dimension, scalar type, metric, no deleted entries)."""
    from usearch.index import Index

    if path.stat().st_size < 64:
        raise EngineError(f"{path}: not a usearch index (file too short)")
    try:
        meta = Index.metadata(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise EngineError(f"{path}: not a usearch index ({exc})") from None
    if not meta:
        raise EngineError(f"{path}: not a usearch index (no readable header)")
    stored = (
        int(meta.get("count_present", -1)),
        int(meta.get("dimensions", -1)),
        _scalar_name(meta.get("kind_scalar")),
    )
    if stored != (count, dim, dtype) or int(meta.get("count_deleted", 0)) != 0:
        raise EngineError(
            f"{path}: holds {stored[0]} vectors of dimension {stored[1]} ({stored[2]}), "
            f"manifest says {count} of dimension {dim} ({dtype})"
        )
    metric_name = str(getattr(meta.get("kind_metric"), "name", "")).lower()
    if metric_name != _METRICS[metric]:
        raise EngineError(f"{path}: built for metric {metric_name or '?'}, manifest says {metric}")


@register
class UsearchEngine(Engine):
    """USearch HNSW: build ``connectivity``, ``expansion_add``, ``dtype`` (f32 / f16 / i8);
    query ``expansion_search``.

    USearch has no seed: its level generator starts from a fixed state, so a build with
    ``threads=1`` gives the same graph every time; a multi-threaded build inserts in a
    varying order and can differ slightly. angular uses usearch's ``cos`` on unit rows,
    euclidean ``l2sq`` (square-rooted here), ip usearch's ``ip`` (1 - dot, shifted to
    annkit's -dot). ``i8`` stores unit rows scaled to [-127, 127], so it is offered for
    angular only.

    Distance computations are usearch's own exact ``computed_distances``, which it reports
    per search call (a batch gives one total). A one-query search reports its call's count;
    a batch is searched untouched and then counted in a separate pass, one query per call
    (single-threaded search is deterministic, so that pass does what the batch did). Inside
    :meth:`uncounted` (timed passes) a batch skips that pass; :meth:`count_distances` then
    searches again, counting.
    """

    name = "usearch"
    description = "HNSW graph (USearch), f32 / f16 / i8 storage"
    build_specs = {
        "connectivity": ParamSpec(
            int, 16, "graph degree (links per node)", minimum=2, maximum=1024
        ),
        "expansion_add": ParamSpec(int, 128, "candidate list size while building", minimum=1),
        "dtype": ParamSpec(str, "f32", "stored scalar type", choices=_DTYPES),
    }
    default_query_params = {
        "expansion_search": ParamSpec(
            int, 64, "candidate list size while searching", minimum=1, effort=True
        ),
    }
    counts_distances = True
    max_search_threads = None  # usearch search(threads=N) over the batch
    contract_settings = (
        {"connectivity": 16, "expansion_add": 128, "dtype": "f32"},
        {"expansion_search": 128},
    )
    small_contract_settings = ({"connectivity": 8}, {"expansion_search": 200})
    #: usearch add and remove (keys are the ids)
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._index: Any = None

    def build_changeable(
        self, vectors: np.ndarray, ids: np.ndarray, capacity: int, threads: int = 1
    ) -> None:
        """An empty usearch index (it grows as it needs), then ``insert``."""
        if self.params["dtype"] == "i8" and self.metric != "angular":
            raise ParamError(
                "usearch: dtype i8 suits unit-length vectors; use it with the "
                f"angular metric, not {self.metric}"
            )
        self._index = self._new_index()
        self.count = 0
        self.insert(vectors, ids, threads)

    def insert(self, vectors: np.ndarray, ids: np.ndarray, threads: int = 1) -> None:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        present = self._index.contains(keys.astype(np.uint64)) if len(keys) else []
        if np.any(present):
            first = int(keys[np.argmax(present)])
            raise EngineError(f"usearch: id {first} is already in the index")
        for start in range(0, len(keys), _ADD_BLOCK):
            rows = self._prepare(vectors[start : start + _ADD_BLOCK])
            self._index.add(
                keys[start : start + len(rows)].astype(np.uint64), rows, threads=max(1, threads)
            )
        self.count = len(self._index)

    def delete(self, ids: np.ndarray) -> None:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        removed = int(np.sum(self._index.remove(keys.astype(np.uint64))))
        if removed != len(keys):
            raise EngineError(f"usearch removed {removed} of {len(keys)} ids (some were not live)")
        self.count = len(self._index)

    def index_memory_bytes(self) -> int | None:
        """usearch's own memory_usage of the index."""
        return None if self._index is None else int(self._index.memory_usage)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """expansion_search doubling from max(k, 8) to 32 times that."""
        return sorted({max(k, 8) * 2**power for power in range(6)})

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        return {"connectivity": [8, 16, 32]}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        import usearch

        return {"usearch": usearch.__version__}

    def estimate_build_bytes(self, count: int) -> int:
        scalar = _SCALAR_BYTES[self.params["dtype"]]
        links = self.params["connectivity"] * 3 * 4 + 64  # level 0 (2M) + upper levels + slot
        return int(count * (self.dim * scalar + links) + min(count, _ADD_BLOCK) * self.dim * 8)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        return normalized_rows(vectors) if self.metric == "angular" else as_float32_rows(vectors)

    def _new_index(self) -> Any:
        from usearch.index import Index

        return Index(
            ndim=self.dim,
            metric=_METRICS[self.metric],
            dtype=self.params["dtype"],
            connectivity=self.params["connectivity"],
            expansion_add=self.params["expansion_add"],
            expansion_search=self.query["expansion_search"],
        )

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        # here, not in __init__: callers may validate params before they know the metric
        if self.params["dtype"] == "i8" and self.metric != "angular":
            raise ParamError(
                "usearch: dtype i8 suits unit-length vectors; use it with the "
                f"angular metric, not {self.metric}"
            )
        count = int(base.shape[0])
        index = self._new_index()
        for start in range(0, count, _ADD_BLOCK):
            rows = self._prepare(base[start : start + _ADD_BLOCK])
            index.add(
                np.arange(start, start + len(rows), dtype=np.uint64), rows, threads=max(1, threads)
            )
        self._index = index
        self.count = count

    def _apply_query_params(self) -> None:
        if self._index is not None:
            self._index.expansion_search = self.query["expansion_search"]

    def _convert(self, distances: np.ndarray) -> np.ndarray:
        return from_graph_distance(distances, self.metric)

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing: USearch's own ``search`` on each
        prepared row (the untimed :meth:`search` gives the results and counts)."""
        rows = self._prepare(queries)
        yield list(rows), functools.partial(self._index.search, count=k, threads=1)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        prepared = self._prepare(queries)
        nq = len(prepared)
        matches = self._index.search(prepared, k, threads=self.search_threads)
        counts: np.ndarray | None
        if nq == 1:  # usearch returns the valid matches only; the call is the count
            ids = np.full((1, k), -1, dtype=np.int64)
            distances = np.full((1, k), np.inf, dtype=np.float32)
            found = len(matches.keys)
            ids[0, :found] = matches.keys
            distances[0, :found] = matches.distances
            counts = np.array([matches.computed_distances], dtype=np.int64)
        else:
            ids = np.asarray(matches.keys).astype(np.int64)
            distances = np.array(matches.distances, dtype=np.float32)
            missing = np.arange(k)[None, :] >= np.asarray(matches.counts)[:, None]
            ids[missing] = -1
            distances[missing] = np.inf
            counts = self._count_pass(prepared, k) if self.counting else None
        result = pad_result(ids, self._convert(distances))
        return replace(result, distance_computations=counts)

    def _count_pass(self, prepared: np.ndarray, k: int) -> np.ndarray:
        """usearch's computed_distances of each query, one query per call."""
        search = self._index.search
        counts = np.empty(len(prepared), dtype=np.int64)
        for row in range(len(prepared)):
            counts[row] = search(prepared[row], k, threads=1).computed_distances
        return counts

    def save(self, directory: Path) -> list[str]:
        self._index.save(str(directory / PAYLOAD))
        return [PAYLOAD]

    @classmethod
    def load(
        cls, directory: Path, metric: str, dim: int, count: int, params: dict
    ) -> UsearchEngine:
        engine = cls(metric, dim, **params)
        path = directory / PAYLOAD
        check_header(path, metric, dim, count, engine.params["dtype"])
        index = engine._new_index()
        try:
            index.load(str(path))
        except (RuntimeError, ValueError, MemoryError) as exc:
            raise EngineError(f"usearch could not load {path}: {exc}") from None
        if len(index) != count or index.ndim != dim:
            raise EngineError(
                f"{path}: holds {len(index)} vectors of dimension {index.ndim}, "
                f"manifest says {count} of dimension {dim}"
            )
        engine._index = index
        engine.count = count
        engine._apply_query_params()
        return engine
