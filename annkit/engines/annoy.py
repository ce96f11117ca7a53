"""Random-projection forest (Spotify annoy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, register
from annkit.errors import EngineError
from annkit.types import SearchResult

_METRICS = {"euclidean": "euclidean", "angular": "angular", "ip": "dot"}
PAYLOAD = "annoy.ann"


@register
class AnnoyEngine(Engine):
    """annoy forest: build n_trees, query search_k (-1 = annoy's default n_trees * k)."""

    name = "annoy"
    description = "random-projection trees (annoy)"
    build_params = {
        "n_trees": ParamSpec(int, 50, "number of trees", minimum=1, maximum=100_000),
        "seed": ParamSpec(int, 42, "random seed for the tree splits", minimum=0),
    }
    query_params = {
        "search_k": ParamSpec(
            int, -1, "nodes inspected per query (-1 = n_trees * k)", minimum=-1, effort=True
        ),
    }
    effort_param = "search_k"

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._index: Any = None

    def _new_index(self) -> Any:
        from annoy import AnnoyIndex

        return AnnoyIndex(self.dim, _METRICS[self.metric])

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        index = self._new_index()
        index.set_seed(self.params["seed"])
        block = 65_536
        for start in range(0, int(base.shape[0]), block):
            rows = np.asarray(base[start : start + block], dtype=np.float32)
            for offset, vector in enumerate(rows.tolist()):
                index.add_item(start + offset, vector)
        if not index.build(self.params["n_trees"], n_jobs=max(1, threads)):
            raise EngineError("annoy failed to build the index")
        self._index = index
        self.count = int(base.shape[0])

    def estimate_build_bytes(self, count: int) -> int:
        # item nodes plus split nodes; annoy's trees hold about n / (K/2) splits each
        node = self.dim * 4 + 16
        return int(count * node * (1 + self.params["n_trees"] * 2 / max(2, self.dim + 2)) * 1.5)

    def _convert(self, distances: list[float]) -> np.ndarray:
        values = np.asarray(distances, dtype=np.float64)
        if self.metric == "angular":  # annoy returns sqrt(2 - 2 cos)
            values = values * values / 2.0
        elif self.metric == "ip":  # annoy returns the dot product
            values = -values
        return values.astype(np.float32)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        queries = np.asarray(queries, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        search_k = self.query["search_k"]
        lookup = self._index.get_nns_by_vector
        for row, vector in enumerate(queries.tolist()):
            found, dist = lookup(vector, k, search_k, True)
            if found:
                ids[row, : len(found)] = found
                distances[row, : len(found)] = self._convert(dist)
        return SearchResult(ids=ids, distances=distances)

    def save(self, directory: Path) -> list[str]:
        if not self._index.save(str(directory / PAYLOAD)):
            raise EngineError(f"annoy could not save {directory / PAYLOAD}")
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> AnnoyEngine:
        engine = cls(metric, dim, **params)
        index = engine._new_index()
        try:
            index.load(str(directory / PAYLOAD))
        except OSError as exc:
            raise EngineError(f"annoy could not load {directory / PAYLOAD}: {exc}") from None
        if index.get_n_items() != count:
            raise EngineError(
                f"{directory / PAYLOAD}: holds {index.get_n_items()} vectors, manifest says {count}"
            )
        engine._index = index
        engine.count = count
        return engine

    def library_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"annoy": version("annoy")}
