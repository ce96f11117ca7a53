"""DuckDB with its vss extension: an HNSW index inside an embedded SQL database (optional
extra ``duckdb``).

The vss extension is loaded from the ``duckdb-extension-vss`` wheel's own file with
``LOAD '<path>'``; extension auto-install and auto-load are off, so DuckDB never fetches an
extension from the network. Registered when both packages can be found; otherwise listed as
unavailable with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
import time
import weakref
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

PAYLOAD = "vectors.duckdb"
TABLE = "annkit_vectors"
_METRICS = {  # annkit metric -> (vss index metric, distance function in annkit's convention)
    "angular": ("cosine", "array_cosine_distance"),  # 1 - cosine
    "euclidean": ("l2sq", "array_distance"),  # L2 distance (the index orders by its square)
    "ip": ("ip", "array_negative_inner_product"),  # minus the inner product
}
#: no extension is ever installed or loaded implicitly (that would download it)
_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
EF_GRID: tuple[int, ...] = tuple(10 * 2**i for i in range(9))  # 10 .. 2560
_LOAD_BLOCK = 262_144


def vss_extension_path() -> str:
    """The vss extension file shipped in the duckdb-extension-vss wheel."""
    import duckdb_extension_vss

    folder = os.path.dirname(duckdb_extension_vss.__file__)
    found = sorted(glob.glob(os.path.join(folder, "extensions", "*", "vss.duckdb_extension")))
    if not found:
        raise EngineError(f"duckdb: no vss.duckdb_extension under {folder} (reinstall the extra)")
    return found[-1]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip()[:300] if lines else type(exc).__name__


def _connect(path: Path, read_only: bool) -> Any:
    """A DuckDB connection to ``path`` with vss loaded from the wheel (never downloaded)."""
    import duckdb

    connection = duckdb.connect(str(path), read_only=read_only, config=dict(_CONFIG))
    # LOAD takes no bound parameter: the path is the wheel's own file, quoted as a literal
    extension = vss_extension_path().replace("'", "''")
    connection.execute(f"LOAD '{extension}'")
    return connection


class DuckdbEngine(Engine):
    """DuckDB vss HNSW: build ``M``, ``ef_construction``; query ``hnsw_ef_search`` (effort).

    One query per statement (``ORDER BY <distance>(vec, ?) LIMIT k``, the vector a bound
    parameter); each calling thread has its own DuckDB connection (``--clients C`` = C
    connections), but their HNSW scans take turns: vss crashes on concurrent scans of one
    index. DuckDB counts no distance computations: ``distance_computations`` is None.
    """

    name = "duckdb"
    description = "HNSW index in DuckDB (vss extension; optional extra)"
    build_specs = {
        "M": ParamSpec(int, 16, "links per node", minimum=2, maximum=1024),
        "ef_construction": ParamSpec(int, 128, "candidate list size while building", minimum=1),
    }
    default_query_params = {
        "hnsw_ef_search": ParamSpec(
            int, 64, "candidate list size while searching", minimum=1, effort=True
        ),
    }
    contract_settings = ({"M": 16, "ef_construction": 128}, {"hnsw_ef_search": 200})
    small_contract_settings = ({"M": 8, "ef_construction": 64}, {"hnsw_ef_search": 200})
    native_filters = ()  # a WHERE clause over label columns: to come with base labels

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._connection: Any = None
        self._local = threading.local()
        self._cursor_lock = threading.Lock()
        # DuckDB's vss HNSW scan is not safe to run concurrently (two threads searching one
        # index crash the process in 1.5.5): clients get their own connections, but their
        # index scans take turns
        self._search_lock = threading.Lock()
        self._version = 0
        self._path: Path | None = None
        self.build_phases = {}

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """hnsw_ef_search 10, 20, 40, .., 2560."""
        return list(EF_GRID)

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        return {"M": [8, 16, 32]}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {
            "duckdb": version("duckdb"),
            "duckdb-extension-vss": version("duckdb-extension-vss"),
        }

    def estimate_build_bytes(self, count: int) -> int:
        return int(count * (3 * self.dim * 4 + 3 * self.params["M"] * 8 + 64))

    def _apply_query_params(self) -> None:
        self._version += 1  # every connection re-applies before its next search

    # ------------------------------------------------------------------ build
    def build(self, base: np.ndarray, threads: int = 1) -> None:
        import duckdb
        import pyarrow as pa

        folder = Path(tempfile.mkdtemp(prefix="annkit-duckdb-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)
        self._path = folder / PAYLOAD
        count = int(base.shape[0])
        index_metric, _ = _METRICS[self.metric]
        clock = time.perf_counter
        try:
            connection = _connect(self._path, read_only=False)
            connection.execute("SET threads = ?", [max(1, threads)])
            connection.execute("SET hnsw_enable_experimental_persistence = true")
            started = clock()
            connection.execute(
                f"CREATE TABLE {TABLE} (id BIGINT NOT NULL, vec FLOAT[{int(self.dim)}] NOT NULL)"
            )
            for start in range(0, count, _LOAD_BLOCK):
                rows = as_float32_rows(base[start : start + _LOAD_BLOCK])
                block = pa.table(  # noqa: F841 - read by name by the INSERT below
                    {
                        "id": pa.array(np.arange(start, start + len(rows), dtype=np.int64)),
                        "vec": pa.FixedSizeListArray.from_arrays(
                            pa.array(rows.ravel()), int(self.dim)
                        ),
                    }
                )
                connection.execute(f"INSERT INTO {TABLE} SELECT id, vec FROM block")
            loaded = clock() - started
            started = clock()
            # the WITH options take no bound parameters: coerced ints and a fixed metric name
            connection.execute(
                f"CREATE INDEX annkit_hnsw ON {TABLE} USING HNSW (vec) WITH (metric = "
                f"'{index_metric}', M = {int(self.params['M'])}, "
                f"ef_construction = {int(self.params['ef_construction'])})"
            )
            indexed = clock() - started
            started = clock()
            connection.execute("CHECKPOINT")
            optimised = clock() - started
        except duckdb.Error as exc:
            raise EngineError(f"duckdb: the build failed: {_first_line(exc)}") from None
        self._connection = connection
        self.build_phases = {
            "load": round(loaded, 6),
            "index": round(indexed, 6),
            "optimise": round(optimised, 6),
        }
        self.count = count
        self._apply_query_params()

    # ------------------------------------------------------------------ search
    def _cursor(self) -> Any:
        """This thread's connection to the database, with the current query settings."""
        local = self._local
        cursor = getattr(local, "cursor", None)
        if cursor is None:
            with self._cursor_lock:  # cursor() on one connection is not thread-safe
                cursor = local.cursor = self._connection.cursor()
            local.version = -1
        if local.version != self._version:
            cursor.execute("SET hnsw_ef_search = ?", [int(self.query["hnsw_ef_search"])])
            local.version = self._version
        return cursor

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        import duckdb

        queries = as_float32_rows(queries)
        _, function = _METRICS[self.metric]
        # the vector is a bound parameter, sent as text (DuckDB's Python binding converts a
        # list of floats ~10x slower than it parses the text); the dimension and k are ints
        statement = (
            f"SELECT id, {function}(vec, ?::VARCHAR::FLOAT[{int(self.dim)}]) AS distance "
            f"FROM {TABLE} ORDER BY distance LIMIT {int(k)}"
        )
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        try:
            cursor = self._cursor()
            for row in range(len(queries)):
                text = "[" + ",".join(map(str, queries[row].tolist())) + "]"
                with self._search_lock:  # vss 1.5.5 crashes on concurrent index scans
                    found = cursor.execute(statement, [text]).fetchall()
                for rank, (found_id, distance) in enumerate(found):
                    ids[row, rank] = found_id
                    distances[row, rank] = distance
        except duckdb.Error as exc:
            raise EngineError(f"duckdb: the search failed: {_first_line(exc)}") from None
        return SearchResult(ids=ids, distances=distances)

    # ------------------------------------------------------------------ save / load
    def save(self, directory: Path) -> list[str]:
        assert self._path is not None, "save() before build()"
        self._connection.execute("CHECKPOINT")  # everything in the file, the WAL empty
        shutil.copyfile(self._path, directory / PAYLOAD)
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> DuckdbEngine:
        import duckdb

        engine = cls(metric, dim, **params)
        path = directory / PAYLOAD
        if not path.is_file():
            raise EngineError(f"{directory}: no {PAYLOAD} (not a DuckDB index)")
        try:
            connection = _connect(path, read_only=True)  # opened where it lies, never written
            stored = connection.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [TABLE]
            ).fetchone()
            if not stored or stored[0] != 1:
                raise EngineError(f"{path}: holds no {TABLE} table (not an annkit DuckDB index)")
            stored_count = connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            stored_dim = connection.execute(
                f"SELECT array_length(vec) FROM {TABLE} LIMIT 1"
            ).fetchone()
        except duckdb.Error as exc:
            raise EngineError(
                f"{path}: not a DuckDB index DuckDB can open ({_first_line(exc)})"
            ) from None
        stored_dim = stored_dim[0] if stored_dim else None
        if stored_count != count or stored_dim != dim:
            connection.close()
            raise EngineError(
                f"{path}: holds {stored_count} vectors of dimension {stored_dim}, manifest says "
                f"{count} of dimension {dim}"
            )
        engine._connection = connection
        engine._path = path
        engine.count = count
        engine._apply_query_params()
        return engine


def duckdb_installed() -> bool:
    """True when duckdb and its vss extension wheel can be found (without importing them)."""
    from importlib.util import find_spec

    return find_spec("duckdb") is not None and find_spec("duckdb_extension_vss") is not None


if duckdb_installed():
    register(DuckdbEngine)
else:
    register_unavailable(DuckdbEngine.name, "needs the duckdb extra: pip install 'annkit[duckdb]'")
