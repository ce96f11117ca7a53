"""Exact brute-force search (faiss IndexFlat): the baseline and the reference."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from annkit.engines.base import Engine, ParamSpec, pad_result, register
from annkit.engines.faiss_common import (
    faiss_module,
    faiss_threads,
    faiss_version,
    id_selector,
    prepare,
    read_index,
    write_index,
)
from annkit.errors import EngineError
from annkit.types import SearchResult

PAYLOAD = "flat.faiss"


def to_metric_distance(scores: np.ndarray, metric: str, squared_l2: bool) -> np.ndarray:
    """faiss scores -> the metric's distance convention (float32)."""
    if squared_l2:
        l2 = np.maximum(scores, 0.0)
        return (l2 / 2.0 if metric == "angular" else np.sqrt(l2)).astype(np.float32)
    if metric == "angular":
        return (1.0 - scores).astype(np.float32)
    return (-scores).astype(np.float32)  # ip


@register
class FlatEngine(Engine):
    """Exact search over all vectors: inner product for angular/ip, L2 for euclidean."""

    name = "flat"
    description = "exact brute force (faiss IndexFlat)"
    build_specs: ClassVar[dict[str, ParamSpec]] = {}
    exact_reference = True  # sweeps measure speed-ups against exact search
    counts_distances = True  # every query computes one distance per base vector
    max_search_threads = None  # faiss OpenMP threads over the batch

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        import faiss

        index = (
            faiss.IndexFlatL2(self.dim)
            if self.metric == "euclidean"
            else faiss.IndexFlatIP(self.dim)
        )
        block = 262_144
        for start in range(0, int(base.shape[0]), block):
            index.add(prepare(base[start : start + block], self.metric))
        self._index = index
        self.count = int(index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        with faiss_threads(self.search_threads):
            scores, ids = self._index.search(prepare(queries, self.metric), k)
        result = pad_result(
            ids, to_metric_distance(scores, self.metric, self.metric == "euclidean")
        )
        computations = np.full(len(scores), self.count, dtype=np.int64)
        return replace(result, distance_computations=computations)

    def search_filtered(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        """The native filtered strategy: faiss scans only the ``allowed`` ids (ascending),
        one distance computation per allowed vector."""
        keep: list[Any] = []
        params = faiss_module().SearchParameters(sel=id_selector(allowed, self._index.ntotal, keep))
        with faiss_threads(self.search_threads):
            scores, ids = self._index.search(prepare(queries, self.metric), k, params=params)
        result = pad_result(
            ids, to_metric_distance(scores, self.metric, self.metric == "euclidean")
        )
        computations = np.full(len(scores), len(allowed), dtype=np.int64)
        return replace(result, distance_computations=computations)

    def save(self, directory: Path) -> list[str]:
        write_index(self._index, directory / PAYLOAD)
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> FlatEngine:
        import faiss

        engine = cls(metric, dim, **params)
        index = read_index(directory / PAYLOAD)
        if index.d != dim or index.ntotal != count:
            raise EngineError(f"{directory / PAYLOAD}: does not match its manifest")
        expected = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        kind = type(faiss.downcast_index(index))  # (a view: ``index`` keeps the object)
        if kind not in (faiss.IndexFlatL2, faiss.IndexFlatIP, faiss.IndexFlat) or (
            index.metric_type != expected
        ):
            raise EngineError(
                f"{directory / PAYLOAD}: holds a faiss {kind.__name__}, "
                "not the exact flat index its manifest says"
            )
        engine._index = index
        engine.count = count
        return engine

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return faiss_version()
