"""HNSW graph index (hnswlib)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import (
    Engine,
    ParamSpec,
    as_float32_rows,
    from_graph_distance,
    pad_result,
    register,
)
from annkit.errors import EngineError
from annkit.types import SearchResult

_SPACES = {"euclidean": "l2", "angular": "cosine", "ip": "ip"}
PAYLOAD = "hnsw.bin"
_ADD_BLOCK = 65_536  # rows converted to float32 and added at a time
EF_GRID: tuple[int, ...] = tuple(10 * 2**i for i in range(9))  # 10 .. 2560, the effort grid


_HEADER_FIELDS = 6  # size_t offsetLevel0, max_elements, count, element size, label / data offset


def _check_header(path: Path, dim: int, count: int) -> None:
    """Refuse an hnswlib file whose vector count or dimension differs from the manifest's
    before hnswlib reads it: hnswlib trusts both, and a wrong one makes it allocate or read
    out of bounds."""
    with open(path, "rb") as handle:
        header = np.frombuffer(handle.read(8 * _HEADER_FIELDS), dtype="<u8")
    if header.size < _HEADER_FIELDS:
        raise EngineError(f"{path}: not an hnswlib index (file too short)")
    stored_count = int(header[2])
    stored_dim, remainder = divmod(int(header[4]) - int(header[5]), 4)
    if stored_count != count or stored_dim != dim or remainder:
        raise EngineError(
            f"{path}: holds {stored_count} vectors of dimension {stored_dim}, manifest says "
            f"{count} of dimension {dim}"
        )


@register
class HnswEngine(Engine):
    """hnswlib HNSW graph: build M / ef_construction, query ef."""

    name = "hnsw"
    description = "HNSW graph (hnswlib)"
    build_specs = {
        "M": ParamSpec(int, 16, "graph degree (links per node)", minimum=2, maximum=2048),
        "ef_construction": ParamSpec(int, 200, "candidate list size while building", minimum=1),
        "seed": ParamSpec(int, 100, "random seed for level assignment", minimum=0),
    }
    default_query_params = {
        "ef": ParamSpec(int, 50, "candidate list size while searching", minimum=1, effort=True),
    }
    contract_settings = ({"M": 16, "ef_construction": 200}, {"ef": 200})
    small_contract_settings = ({"M": 8, "ef_construction": 40}, {"ef": 200})
    max_search_threads = None  # knn_query(num_threads=N) splits the batch by rows
    #: add_items, mark_deleted, and add_items(replace_deleted=True) reusing deleted slots
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._index: Any = None
        #: a changeable index (build_changeable): hnswlib label -> id, and id -> label.
        #: Labels are never reused, so a deleted label can never shadow a live id.
        self._label_ids: np.ndarray | None = None
        self._label_of: dict[int, int] = {}

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        import hnswlib

        count = int(base.shape[0])
        index = hnswlib.Index(space=_SPACES[self.metric], dim=self.dim)
        index.init_index(
            max_elements=count,
            M=self.params["M"],
            ef_construction=self.params["ef_construction"],
            random_seed=self.params["seed"],
        )
        block = _ADD_BLOCK
        for start in range(0, count, block):
            rows = as_float32_rows(base[start : start + block])
            index.add_items(rows, np.arange(start, start + len(rows)), num_threads=threads)
        self._index = index
        self.count = count
        self._apply_query_params()

    def build_changeable(
        self, vectors: np.ndarray, ids: np.ndarray, capacity: int, threads: int = 1
    ) -> None:
        """An empty hnswlib index for ``capacity`` vectors that reuses deleted slots, then
        ``insert`` of ``vectors`` under ``ids``."""
        import hnswlib

        index = hnswlib.Index(space=_SPACES[self.metric], dim=self.dim)
        index.init_index(
            max_elements=max(1, int(capacity), len(ids)),
            M=self.params["M"],
            ef_construction=self.params["ef_construction"],
            random_seed=self.params["seed"],
            allow_replace_deleted=True,
        )
        self._index = index
        self._label_ids = np.empty(0, dtype=np.int64)
        self._label_of = {}
        self.count = 0
        self._apply_query_params()
        self.insert(vectors, ids, threads)

    def insert(self, vectors: np.ndarray, ids: np.ndarray, threads: int = 1) -> None:
        if self._label_ids is None:
            raise EngineError("hnsw: only an index from build_changeable takes changes")
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        taken = [int(i) for i in ids if int(i) in self._label_of]
        if taken:
            raise EngineError(f"hnsw: id {taken[0]} is already in the index")
        index = self._index
        vacant = int(index.element_count) - self.count  # deleted slots add_items reuses
        needed = int(index.element_count) + max(0, len(ids) - vacant)
        if needed > int(index.get_max_elements()):
            index.resize_index(max(needed, 2 * int(index.get_max_elements())))
        first = len(self._label_ids)
        labels = np.arange(first, first + len(ids), dtype=np.int64)
        for start in range(0, len(ids), _ADD_BLOCK):
            rows = as_float32_rows(vectors[start : start + _ADD_BLOCK])
            index.add_items(
                rows,
                labels[start : start + len(rows)],
                num_threads=max(1, threads),
                replace_deleted=True,
            )
        self._label_ids = np.concatenate([self._label_ids, ids])
        self._label_of.update(zip(ids.tolist(), labels.tolist(), strict=True))
        self.count += len(ids)

    def delete(self, ids: np.ndarray) -> None:
        if self._label_ids is None:
            raise EngineError("hnsw: only an index from build_changeable takes changes")
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        missing = [int(i) for i in ids if int(i) not in self._label_of]
        if missing:
            raise EngineError(f"hnsw: id {missing[0]} is not in the index")
        for identifier in ids.tolist():
            self._index.mark_deleted(self._label_of.pop(identifier))
        self.count -= len(ids)

    def index_memory_bytes(self) -> int | None:
        """hnswlib's serialised size: every slot's vector and links (deleted slots too)."""
        return None if self._index is None else int(self._index.index_file_size())

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """ef 10, 20, 40, .., 2560."""
        return list(EF_GRID)

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        """Graph degree M 8, 16 and 32."""
        return {"M": [8, 16, 32]}

    def estimate_build_bytes(self, count: int) -> int:
        # vectors + level-0 links (2M) + upper levels (~M/(M-1) more) + label/lock overhead
        links = 2 * self.params["M"] * 4 + self.params["M"] * 4
        return int(count * (self.dim * 4 + links + 64) + min(count, _ADD_BLOCK) * self.dim * 4)

    def _apply_query_params(self) -> None:
        if self._index is not None:
            self._index.set_ef(self.query["ef"])

    def _convert(self, distances: np.ndarray) -> np.ndarray:
        return from_graph_distance(distances, self.metric)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        queries = as_float32_rows(queries)
        k_found = min(k, self.count)
        try:
            labels, distances = self._index.knn_query(
                queries, k=k_found, num_threads=self.search_threads
            )
        except RuntimeError:
            return self._search_rows(queries, k)
        ids = self._ids_of(labels.astype(np.int64))
        distances = self._convert(distances)
        if k_found < k:
            pad = k - k_found
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=np.inf)
            return pad_result(ids, distances)
        return SearchResult(ids=ids, distances=distances)

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing: hnswlib's own ``knn_query`` on each
        float32 row, one thread, no id mapping or distance conversion (the untimed
        :meth:`search` gives the results); a row hnswlib cannot fill takes :meth:`search`'s
        fallback."""
        rows = as_float32_rows(queries)
        knn_query, search = self._index.knn_query, self.search
        k_found = min(k, self.count)

        def one(row: np.ndarray) -> object:
            try:
                return knn_query(row, k=k_found, num_threads=1)
            except RuntimeError:  # fewer than k reachable: the row-by-row fallback
                return search(row, k)

        yield [rows[row : row + 1] for row in range(len(rows))], one

    def search_filtered(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        """The native filtered strategy: hnswlib's ``filter=`` callback admits the labels
        of the ``allowed`` ids (ascending) while it walks the graph (the callback runs in
        Python for every candidate, so one thread). Rows short of k are padded with -1."""
        queries = as_float32_rows(queries)
        labels = (
            np.arange(self.count, dtype=np.int64) if self._label_ids is None else self._label_ids
        )
        admitted = np.isin(labels, allowed).tolist()  # python bools: hnswlib wants a bool
        admit = admitted.__getitem__
        want = min(k, len(allowed), self.count)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        for row in range(len(queries)):
            width = want
            while width > 0:
                try:
                    found, dist = self._index.knn_query(
                        queries[row : row + 1], k=width, num_threads=1, filter=admit
                    )
                    break
                except RuntimeError:  # fewer than ``width`` admitted nodes were reached
                    width -= 1
            if width == 0:
                continue
            ids[row, :width] = self._ids_of(found[0].astype(np.int64))
            distances[row, :width] = self._convert(dist[0])
        return SearchResult(ids=ids, distances=distances)

    def _ids_of(self, labels: np.ndarray) -> np.ndarray:
        """hnswlib labels (nq, k) as ids: the same for a built index, mapped for a changed
        one (-1 kept)."""
        if self._label_ids is None:
            return labels
        return np.where(labels >= 0, self._label_ids[np.maximum(labels, 0)], -1)

    def _search_rows(self, queries: np.ndarray, k: int) -> SearchResult:
        """Fallback when hnswlib cannot fill k results for some row: one row at a time."""
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        for row in range(len(queries)):
            want = min(k, self.count)
            while want > 0:
                try:
                    labels, dist = self._index.knn_query(queries[row : row + 1], k=want)
                    break
                except RuntimeError:
                    want //= 2
            if want == 0:
                continue
            ids[row, :want] = self._ids_of(labels[0].astype(np.int64))
            distances[row, :want] = self._convert(dist[0])
        return SearchResult(ids=ids, distances=distances)

    def save(self, directory: Path) -> list[str]:
        self._index.save_index(str(directory / PAYLOAD))
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> HnswEngine:
        import hnswlib

        engine = cls(metric, dim, **params)
        _check_header(directory / PAYLOAD, dim, count)
        index = hnswlib.Index(space=_SPACES[metric], dim=dim)
        try:
            index.load_index(str(directory / PAYLOAD), max_elements=count)
        except (RuntimeError, MemoryError) as exc:
            raise EngineError(f"hnswlib could not load {directory / PAYLOAD}: {exc}") from None
        if index.get_current_count() != count:
            raise EngineError(
                f"{directory / PAYLOAD}: holds {index.get_current_count()} vectors, "
                f"manifest says {count}"
            )
        engine._index = index
        engine.count = count
        engine._apply_query_params()
        return engine

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {"hnswlib": version("hnswlib")}
