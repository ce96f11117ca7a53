"""A whole engine in one file, for tests: exact numpy search over the first ``scan`` base
vectors (all of them by default, so it is exact).

It is what a new engine file under ``annkit/engines/`` would be, minus the import line: the
test ``test_engine_added_as_one_file.py`` registers it (``annkit.engines.register``) and checks
that the contract tests, the fuzz corpus, ``annkit engines``, ``annkit bench`` and
``annkit tune`` take it with no other edit. Loaded as a pytest plugin (``pytest -p
exact_engine``, with tests/ on the path) it registers itself for that whole run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, register
from annkit.errors import BundleError
from annkit.types import SearchResult

PAYLOAD = "exact.npy"


class ExactNumpyEngine(Engine):
    """Exact k-NN in numpy over a prefix of the base; recall grows with ``scan``."""

    name = "exact-numpy-test"
    description = "exact numpy search over a prefix of the base (tests only)"
    build_specs: dict[str, ParamSpec] = {}
    default_query_params = {
        "scan": ParamSpec(int, 1_000_000, "base vectors examined per query", minimum=1, effort=True)
    }
    counts_distances = True
    contract_settings = ({}, {"scan": 1_000_000})

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        self._vectors = self._prepare(np.asarray(base, dtype=np.float32))
        self.count = len(base)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        if self.metric != "angular":
            return vectors
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        scanned = min(self.query["scan"], self.count)
        vectors = self._vectors[:scanned]
        queries = self._prepare(np.asarray(queries, dtype=np.float32))
        products = queries @ vectors.T
        if self.metric == "angular":
            distances = 1.0 - products
        elif self.metric == "ip":
            distances = -products
        else:
            squared = (queries**2).sum(1)[:, None] - 2 * products + (vectors**2).sum(1)[None, :]
            distances = np.sqrt(np.maximum(squared, 0.0))
        found = min(k, scanned)
        order = np.argsort(distances, axis=1, kind="stable")[:, :found]
        ids = np.full((len(queries), k), -1, dtype=np.int64)  # padded with -1 beyond the base
        best = np.full((len(queries), k), np.inf, dtype=np.float32)
        ids[:, :found] = order
        best[:, :found] = np.take_along_axis(distances, order, axis=1)
        counts = np.full(len(queries), scanned, dtype=np.int64)
        return SearchResult(ids=ids, distances=best, distance_computations=counts)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        return [value for value in (k * 2**j for j in range(20)) if value < n_base] + [n_base]

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {"numpy": np.__version__}

    def save(self, directory: Path) -> list[str]:
        np.save(directory / PAYLOAD, self._vectors)
        return [PAYLOAD]

    @classmethod
    def load(
        cls, directory: Path, metric: str, dim: int, count: int, params: Mapping[str, Any]
    ) -> ExactNumpyEngine:
        stored = np.load(directory / PAYLOAD, allow_pickle=False)
        if stored.shape != (count, dim):
            raise BundleError(
                f"{directory / PAYLOAD}: holds {stored.shape}, manifest says {count} x {dim}"
            )
        engine = cls(metric, dim, **params)
        engine._vectors = np.ascontiguousarray(stored, dtype=np.float32)
        engine.count = count
        return engine


def pytest_configure(config: Any) -> None:
    """``pytest -p exact_engine``: the engine is registered for the whole run."""
    register(ExactNumpyEngine)
