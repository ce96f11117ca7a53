"""Chroma: an embedded vector database over its own hnswlib fork (optional extra ``chroma``).

annkit always passes the embeddings itself: the collection is made with no embedding function,
so Chroma's default embedder (which downloads a model) is never used. Telemetry is off
(``Settings(anonymized_telemetry=False)``). Registered when chromadb can be found; otherwise
listed as unavailable with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterator
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

ARCHIVE = "chroma.tar"
COLLECTION = "annkit_vectors"
_SPACES = {"angular": "cosine", "euclidean": "l2", "ip": "ip"}
EF_GRID: tuple[int, ...] = tuple(10 * 2**i for i in range(9))  # 10 .. 2560
_QUERY_BATCH = 1000


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip()[:300] if lines else type(exc).__name__


def _client(path: Path) -> Any:
    """A persistent Chroma client on ``path`` with telemetry off."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Chroma warns that a collection without an embedding function has a "legacy embedding
    function config": annkit passes the embeddings itself on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="legacy embedding function config")
        yield


def _throwaway_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="annkit-chroma-"))


class ChromaEngine(Engine):
    """Chroma HNSW: build ``max_neighbors``, ``ef_construction``; query ``ef_search`` (effort).

    Chroma's distances are squared L2 (square-rooted here), 1 - cosine, and 1 - inner product
    (turned into minus the inner product). Batch search goes through ``collection.query``.
    Chroma exposes no count of distance computations: ``distance_computations`` is None.
    """

    name = "chroma"
    description = "Chroma vector database (hnswlib fork; optional extra)"
    build_specs = {
        "max_neighbors": ParamSpec(int, 16, "links per node (hnsw M)", minimum=2, maximum=2048),
        "ef_construction": ParamSpec(int, 100, "candidate list size while building", minimum=1),
    }
    default_query_params = {
        "ef_search": ParamSpec(
            int, 100, "candidate list size while searching", minimum=1, effort=True
        ),
    }
    contract_settings = ({"max_neighbors": 16, "ef_construction": 200}, {"ef_search": 200})
    small_contract_settings = ({"max_neighbors": 8, "ef_construction": 64}, {"ef_search": 200})
    native_filters = ()  # Chroma's `where` over metadata: to come with base labels

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._client: Any = None
        self._collection: Any = None
        self._folder: Path | None = None
        self._applied_ef: int | None = None
        self.build_phases = {}

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """ef_search 10, 20, 40, .., 2560."""
        return list(EF_GRID)

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        return {"max_neighbors": [8, 16, 32]}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {"chromadb": version("chromadb")}

    def estimate_build_bytes(self, count: int) -> int:
        return int(count * (3 * self.dim * 4 + 3 * self.params["max_neighbors"] * 4 + 256))

    def _own_folder(self) -> Path:
        folder = _throwaway_folder()
        self._folder = folder
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)
        return folder

    def _apply_query_params(self) -> None:
        ef = int(self.query["ef_search"])
        if self._collection is not None and ef != self._applied_ef:
            with _quiet():
                self._collection.modify(configuration={"hnsw": {"ef_search": ef}})
            self._reopen()
            self._applied_ef = ef

    def _reopen(self) -> None:
        """Open the collection anew: Chroma 1.5 keeps a searched index in memory with the
        ef_search it was loaded with, so a changed ef_search takes effect only in a fresh
        client (measured: recall unchanged from ef_search 4 to 200 without this). Only this
        engine's cached Chroma system is dropped; other engines' clients keep theirs."""
        from chromadb.api.shared_system_client import SharedSystemClient

        assert self._folder is not None
        identifier = str(getattr(self._client, "_identifier", ""))
        system = SharedSystemClient._identifier_to_system.pop(identifier, None)
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        if system is not None:
            with contextlib.suppress(Exception):
                system.stop()
        self._client = _client(self._folder)
        with _quiet():
            self._collection = self._client.get_collection(COLLECTION, embedding_function=None)

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        folder = self._own_folder()
        count = int(base.shape[0])
        clock = time.perf_counter
        try:
            client = _client(folder)
            collection = client.create_collection(
                COLLECTION,
                embedding_function=None,  # never Chroma's default embedder (a model download)
                configuration={
                    "hnsw": {
                        "space": _SPACES[self.metric],
                        "max_neighbors": self.params["max_neighbors"],
                        "ef_construction": self.params["ef_construction"],
                        "ef_search": self.query["ef_search"],
                    }
                },
            )
            batch = int(client.get_max_batch_size())
            started = clock()
            for start in range(0, count, batch):
                rows = as_float32_rows(base[start : start + batch])
                collection.add(
                    ids=[str(i) for i in range(start, start + len(rows))], embeddings=rows
                )
            loaded = clock() - started
            started = clock()
            stored = collection.count()
            optimised = clock() - started
        except Exception as exc:  # noqa: BLE001 - chromadb raises many kinds
            raise EngineError(f"chroma: the build failed: {_first_line(exc)}") from None
        if stored != count:
            raise EngineError(f"chroma: holds {stored} vectors after adding {count}")
        self._client, self._collection = client, collection
        self._applied_ef = int(self.query["ef_search"])
        # Chroma indexes while it adds: the load time includes building the graph
        self.build_phases = {"load": round(loaded, 6), "optimise": round(optimised, 6)}
        self.count = count

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        queries = as_float32_rows(queries)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        n_results = min(k, self.count)
        try:
            for start in range(0, len(queries), _QUERY_BATCH):
                block = queries[start : start + _QUERY_BATCH]
                with _quiet():
                    answer = self._collection.query(
                        query_embeddings=block, n_results=n_results, include=["distances"]
                    )
                for offset, (found, dist) in enumerate(
                    zip(answer["ids"], answer["distances"], strict=True)
                ):
                    row = start + offset
                    ids[row, : len(found)] = np.asarray(found, dtype=np.int64)
                    distances[row, : len(found)] = dist
        except Exception as exc:  # noqa: BLE001 - chromadb raises many kinds
            raise EngineError(f"chroma: the search failed: {_first_line(exc)}") from None
        if self.metric == "euclidean":
            distances = np.sqrt(np.maximum(distances, 0.0))
        elif self.metric == "ip":
            distances = distances - np.float32(1.0)  # 1 - dot -> -dot
        return SearchResult(ids=ids, distances=distances)

    def save(self, directory: Path) -> list[str]:
        assert self._folder is not None, "save() before build()"
        with tarfile.open(directory / ARCHIVE, "w") as tar:
            for entry in sorted(self._folder.iterdir()):
                tar.add(entry, arcname=entry.name)
        return [ARCHIVE]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> ChromaEngine:
        engine = cls(metric, dim, **params)
        archive = directory / ARCHIVE
        if not archive.is_file():
            raise EngineError(f"{directory}: no {ARCHIVE} (not a Chroma index)")
        folder = engine._own_folder()  # Chroma writes where it opens: a copy, not the bundle
        try:
            with tarfile.open(archive, "r:") as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EngineError(f"{archive}: not a Chroma folder archive ({exc})") from None
        if not (folder / "chroma.sqlite3").is_file():
            raise EngineError(f"{archive}: not a Chroma folder archive (no chroma.sqlite3)")
        try:
            client = _client(folder)
            with _quiet():
                collection = client.get_collection(COLLECTION, embedding_function=None)
            stored = collection.count()
            sample = collection.get(limit=1, include=["embeddings"])
        except Exception as exc:  # noqa: BLE001 - chromadb raises many kinds
            raise EngineError(f"{archive}: Chroma cannot open it ({_first_line(exc)})") from None
        embeddings = sample.get("embeddings")
        stored_dim = len(embeddings[0]) if embeddings is not None and len(embeddings) else None
        if stored != count or stored_dim != dim:
            raise EngineError(
                f"{archive}: holds {stored} vectors of dimension {stored_dim}, manifest says "
                f"{count} of dimension {dim}"
            )
        engine._client, engine._collection = client, collection
        engine.count = count
        engine._applied_ef = None
        engine._apply_query_params()
        return engine


def chroma_installed() -> bool:
    """True when chromadb can be found (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("chromadb") is not None


if chroma_installed():
    register(ChromaEngine)
else:
    register_unavailable(ChromaEngine.name, "needs the chroma extra: pip install 'annkit[chroma]'")
