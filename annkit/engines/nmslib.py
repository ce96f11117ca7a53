"""nmslib's HNSW (optional extra ``nmslib``): the library hnswlib grew out of.

Registered when the nmslib package can be found (``pip install 'annkit[nmslib]'``);
otherwise listed as unavailable with the reason.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import (
    Engine,
    ParamSpec,
    as_float32_rows,
    register,
    register_unavailable,
)
from annkit.errors import EngineError
from annkit.types import SearchResult

PAYLOAD = "nmslib.index"
DATA = PAYLOAD + ".dat"  # the vectors, written beside the graph by saveIndex(save_data=True)
_SPACES = {"euclidean": "l2", "angular": "cosinesimil", "ip": "negdotprod"}
EF_GRID: tuple[int, ...] = tuple(10 * 2**i for i in range(9))  # 10 .. 2560


@contextmanager
def quiet_native() -> Iterator[None]:
    """Keep a native library's own lines (nmslib's CPU-instructions notice on import) off the
    terminal: file descriptors 1 and 2 go to a temporary file for the block; lines written
    there meanwhile that are not the notice are passed on to stderr afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                if "instructions that this binary was not compiled" not in line
                and "install NMSLIB from sources" not in line
                and "--no-binary :all: nmslib" not in line
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _nmslib() -> Any:
    with quiet_native():
        import nmslib

    return nmslib


class NmslibEngine(Engine):
    """nmslib HNSW: build ``M``, ``efConstruction``; query ``efSearch`` (effort).

    angular uses nmslib's ``cosinesimil`` (1 - cosine), euclidean ``l2`` (squared; square-rooted
    here), ip ``negdotprod`` (minus the inner product). nmslib exposes no count of distance
    computations: ``distance_computations`` is None.
    """

    name = "nmslib"
    description = "HNSW graph (nmslib; optional extra)"
    build_specs = {
        "M": ParamSpec(int, 16, "graph degree (links per node)", minimum=2, maximum=2048),
        "efConstruction": ParamSpec(int, 200, "candidate list size while building", minimum=1),
    }
    default_query_params = {
        "efSearch": ParamSpec(
            int, 50, "candidate list size while searching", minimum=1, effort=True
        ),
    }
    contract_settings = ({"M": 16, "efConstruction": 200}, {"efSearch": 200})
    small_contract_settings = ({"M": 8, "efConstruction": 40}, {"efSearch": 200})
    max_search_threads = None  # knnQueryBatch(num_threads=N)

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._index: Any = None

    def _new_index(self) -> Any:
        return _nmslib().init(method="hnsw", space=_SPACES[self.metric])

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        index = self._new_index()
        index.addDataPointBatch(as_float32_rows(base))
        index.createIndex(
            {
                "M": self.params["M"],
                "efConstruction": self.params["efConstruction"],
                "post": 0,
                "indexThreadQty": max(1, threads),
            },
            print_progress=False,
        )
        self._index = index
        self.count = int(base.shape[0])
        self._apply_query_params()

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """efSearch 10, 20, 40, .., 2560."""
        return list(EF_GRID)

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        return {"M": [8, 16, 32]}

    def estimate_build_bytes(self, count: int) -> int:
        links = 3 * self.params["M"] * 4
        return int(count * (2 * self.dim * 4 + links + 64))

    def _apply_query_params(self) -> None:
        if self._index is not None:
            self._index.setQueryTimeParams({"efSearch": self.query["efSearch"]})

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        queries = as_float32_rows(queries)
        answers = self._index.knnQueryBatch(queries, k=k, num_threads=self.search_threads)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        for row, (found, dist) in enumerate(answers):
            ids[row, : len(found)] = found
            distances[row, : len(found)] = dist
        if self.metric == "euclidean":
            distances = np.sqrt(np.maximum(distances, 0.0))
        return SearchResult(ids=ids, distances=distances)

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing: nmslib's own ``knnQuery`` on each
        float32 row (the untimed :meth:`search` gives the results)."""
        rows = as_float32_rows(queries)
        yield list(rows), functools.partial(self._index.knnQuery, k=k)

    def save(self, directory: Path) -> list[str]:
        self._index.saveIndex(str(directory / PAYLOAD), save_data=True)
        return [PAYLOAD, DATA]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> NmslibEngine:
        engine = cls(metric, dim, **params)
        for name in (PAYLOAD, DATA):
            if not (directory / name).is_file():
                raise EngineError(f"{directory}: no {name} (not an nmslib index)")
        # the data file starts with the vector count (uint64), then per vector its record size
        # (uint64: a 16-byte header and the float32 values): check both before nmslib trusts them
        with open(directory / DATA, "rb") as handle:
            head = np.frombuffer(handle.read(16), dtype="<u8")
        if head.size < 2 or int(head[0]) != count or int(head[1]) != 16 + 4 * dim:
            stored = (int(head[0]), (int(head[1]) - 16) // 4) if head.size == 2 else ("?", "?")
            raise EngineError(
                f"{directory / DATA}: holds {stored[0]} vectors of dimension {stored[1]}, "
                f"manifest says {count} of dimension {dim}"
            )
        index = engine._new_index()
        try:
            with quiet_native():
                index.loadIndex(str(directory / PAYLOAD), load_data=True)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"nmslib could not load {directory / PAYLOAD}: {exc}") from None
        if len(index) != count:
            raise EngineError(
                f"{directory / PAYLOAD}: holds {len(index)} vectors, manifest says {count}"
            )
        engine._index = index
        engine.count = count
        engine._apply_query_params()
        return engine

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {"nmslib": version("nmslib")}


def nmslib_installed() -> bool:
    """True when the nmslib package can be found (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("nmslib") is not None


if nmslib_installed():
    register(NmslibEngine)
else:
    register_unavailable(NmslibEngine.name, "needs the nmslib extra: pip install 'annkit[nmslib]'")
