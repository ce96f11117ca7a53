"""Random-projection forest (Spotify annoy)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, register
from annkit.errors import EngineError
from annkit.parallel import for_each_block
from annkit.types import SearchResult

_METRICS: dict[str, Any] = {"euclidean": "euclidean", "angular": "angular", "ip": "dot"}
PAYLOAD = "annoy.ann"
MAX_DOUBLINGS = 10  # effort grid: search_k = k * n_trees * 2**j, j = 0 .. 10 at most


# annoy's node layout per metric: (bytes before the vector, int32 word where the children /
# bucket ids start, extra ids a bucket holds beyond dim)
_LAYOUTS = {"euclidean": (16, 2, 2), "angular": (12, 1, 2), "ip": (16, 1, 3)}


def _check_nodes(path: Path, metric: str, dim: int, count: int) -> None:
    """Refuse an annoy file whose nodes do not fit the manifest's metric, dimension and count
    before annoy reads it: annoy trusts them, and a wrong one makes a search follow node
    numbers out of the file (a segmentation fault)."""
    header, first_child, extra = _LAYOUTS[metric]
    node_bytes = header + 4 * dim
    size = path.stat().st_size
    if size == 0 or size % node_bytes:
        raise EngineError(
            f"{path}: {size} bytes is not a whole number of {metric} nodes of dimension {dim}"
        )
    nodes = np.memmap(path, dtype="<i4", mode="r", shape=(size // node_bytes, node_bytes // 4))
    n_nodes, bucket_size = len(nodes), dim + extra
    rows = max(1, (16 << 20) // node_bytes)  # about 16 MiB at a time
    for start in range(0, n_nodes, rows):
        block = np.asarray(nodes[start : start + rows])
        number = np.arange(start, start + len(block))
        descendants = block[:, 0]
        inner = number >= count  # items first, then tree nodes
        split = inner & (descendants > bucket_size)
        children = block[split, first_child : first_child + 2]
        bucket = inner & (descendants <= bucket_size)
        ids = block[bucket, first_child : first_child + bucket_size]
        used = np.arange(bucket_size) < descendants[bucket, None]
        if (
            np.any(inner & (descendants < 1))
            or np.any(children < 0)
            or np.any(children >= n_nodes)
            or np.any(used & ((ids < 0) | (ids >= count)))
        ):
            raise EngineError(
                f"{path}: not an annoy index of {count} {metric} vectors of dimension {dim} "
                "(its tree nodes point outside the file)"
            )
    del nodes


@register
class AnnoyEngine(Engine):
    """annoy forest: build n_trees, query search_k (-1 = annoy's default n_trees * k)."""

    name = "annoy"
    description = "random-projection trees (annoy)"
    build_specs = {
        "n_trees": ParamSpec(int, 50, "number of trees", minimum=1, maximum=100_000),
        "seed": ParamSpec(int, 42, "random seed for the tree splits", minimum=0),
    }
    default_query_params = {
        "search_k": ParamSpec(
            int, -1, "nodes inspected per query (-1 = n_trees * k)", minimum=-1, effort=True
        ),
    }
    contract_settings = ({"n_trees": 50}, {"search_k": 50_000})
    small_contract_settings = ({"n_trees": 4}, {"search_k": 20_000})
    #: annoy has no batch search; get_nns_by_vector releases the GIL (measured), so N
    #: Python threads each search their own rows of the batch
    max_search_threads = None
    #: annoy's trees are fixed once built: no insert, delete or replace (streaming refuses it)
    changes = ()

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

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """search_k = k * n_trees * 1, 2, 4, .. up to the first value >= n_trees * n_base
        (every node of every tree), at most 1,024x."""
        n_trees = int(self.params["n_trees"])
        grid = []
        for doubling in range(MAX_DOUBLINGS + 1):
            value = k * n_trees * 2**doubling
            grid.append(value)
            if value >= n_trees * n_base:
                break
        return grid

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        """10, 50 and 100 trees."""
        return {"n_trees": [10, 50, 100]}

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
        rows = queries.tolist()
        step = max(1, -(-len(rows) // self.search_threads))

        def search_rows(start: int) -> None:
            for row in range(start, min(start + step, len(rows))):
                found, dist = lookup(rows[row], k, search_k, True)
                if found:
                    ids[row, : len(found)] = found
                    distances[row, : len(found)] = self._convert(dist)

        for_each_block(search_rows, range(0, len(rows), step), self.search_threads)
        return SearchResult(ids=ids, distances=distances)

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing: Annoy's own ``get_nns_by_vector`` on
        each float32 row at the setting's ``search_k`` (the untimed :meth:`search` gives
        the results and distances)."""
        rows = np.asarray(queries, dtype=np.float32)
        lookup = functools.partial(
            self._index.get_nns_by_vector, n=k, search_k=self.query["search_k"]
        )
        yield list(rows), lookup

    def save(self, directory: Path) -> list[str]:
        if not self._index.save(str(directory / PAYLOAD)):
            raise EngineError(f"annoy could not save {directory / PAYLOAD}")
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> AnnoyEngine:
        engine = cls(metric, dim, **params)
        _check_nodes(directory / PAYLOAD, metric, dim, count)
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

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {"annoy": version("annoy")}
