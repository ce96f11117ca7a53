"""LanceDB: an embedded vector database over Lance files (optional extra ``lancedb``).

Index kinds IVF_FLAT, IVF_SQ, IVF_PQ, IVF_HNSW_SQ and IVF_HNSW_PQ; query knobs ``nprobes``,
``refine_factor`` and (HNSW kinds) ``ef``. The open-source embedded library sends no
telemetry. Registered when lancedb can be found; otherwise listed as unavailable with the
reason.
"""

from __future__ import annotations

import math
import os
import shutil
import tarfile
import tempfile
import time
import warnings
import weakref
from datetime import timedelta
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
from annkit.errors import EngineError, ParamError
from annkit.types import SearchResult

ARCHIVE = "lance.tar"
TABLE = "annkit_vectors"
_DISTANCES = {"angular": "cosine", "euclidean": "l2", "ip": "dot"}
INDEX_TYPES = ("IVF_PQ", "IVF_FLAT", "IVF_SQ", "IVF_HNSW_SQ", "IVF_HNSW_PQ")
_HNSW = ("IVF_HNSW_SQ", "IVF_HNSW_PQ")
_PQ = ("IVF_PQ", "IVF_HNSW_PQ")
_QUERY_BATCH = 1000

_NPROBES = ParamSpec(int, 20, "IVF partitions searched", minimum=1)
_REFINE = ParamSpec(
    int, 0, "re-rank refine_factor * k candidates with exact distances (0 = off)", minimum=0
)
IVF_QUERY = {
    "nprobes": ParamSpec(int, 20, "IVF partitions searched", minimum=1, effort=True),
    "refine_factor": _REFINE,
}
HNSW_QUERY = {
    "ef": ParamSpec(int, 64, "HNSW candidate list size", minimum=1, effort=True),
    "nprobes": _NPROBES,
    "refine_factor": _REFINE,
}


def default_partitions(count: int, index_type: str) -> int:
    """IVF partitions: about sqrt(n) (at least 256 vectors each) for IVF kinds, 1 for the
    HNSW kinds (one graph)."""
    if index_type in _HNSW:
        return 1
    return max(1, min(round(math.sqrt(count)), count // 256))


def default_sub_vectors(dim: int) -> int:
    """PQ sub-vectors: the divisor of dim nearest dim / 8 (8 dimensions per sub-vector)."""
    target = max(1, dim // 8)
    divisors = [d for d in range(1, dim + 1) if dim % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), d))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip()[:300] if lines else type(exc).__name__


def _lancedb() -> Any:
    os.environ.setdefault("LANCEDB_LOG", "error")  # Lance's Rust WARN lines stay off stderr
    import lancedb

    return lancedb


class LancedbEngine(Engine):
    """LanceDB: build ``index_type``, ``num_partitions``, ``num_sub_vectors`` (PQ kinds),
    ``m`` and ``ef_construction`` (HNSW kinds); query ``nprobes`` (effort for IVF kinds),
    ``refine_factor``, ``ef`` (HNSW kinds; effort there).

    Distances: Lance's squared L2 is square-rooted, cosine is 1 - cosine, dot (1 - inner
    product) becomes minus the inner product. Without ``refine_factor`` the PQ / SQ kinds
    report their approximate distances. Batch search sends up to 1,000 query vectors per
    call. Lance's k-means takes no seed, so two builds can differ slightly. LanceDB exposes
    no count of distance computations: ``distance_computations`` is None.
    """

    name = "lancedb"
    description = "LanceDB IVF-PQ / IVF-HNSW over Lance files (optional extra)"
    build_specs = {
        "index_type": ParamSpec(str, "IVF_PQ", "index kind", choices=INDEX_TYPES),
        "num_partitions": ParamSpec(
            int, None, "IVF partitions (default ~sqrt(n); 1 for HNSW kinds)", minimum=1
        ),
        "num_sub_vectors": ParamSpec(
            int, None, "PQ kinds: sub-vectors (default the divisor of dim near dim/8)", minimum=1
        ),
        "m": ParamSpec(int, None, "HNSW kinds: links per node (default 20)", minimum=2),
        "ef_construction": ParamSpec(
            int, None, "HNSW kinds: candidate list size while building (default 300)", minimum=1
        ),
    }
    contract_settings = (
        {"index_type": "IVF_PQ", "num_partitions": 64},
        {"nprobes": 32, "refine_factor": 10},
    )
    small_contract_settings = (
        {"index_type": "IVF_PQ", "num_partitions": 8},
        {"nprobes": 8, "refine_factor": 10},
    )
    native_filters = ()  # where(..., prefilter=True) over label columns: to come with labels

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        p = self.params
        kind = p["index_type"]
        if kind not in _HNSW:
            for name in ("m", "ef_construction"):
                if p[name] is not None:
                    raise ParamError(
                        f"lancedb: {name} is a parameter of the HNSW kinds, not index_type={kind}"
                    )
        else:
            p["m"] = p["m"] or 20
            p["ef_construction"] = p["ef_construction"] or 300
        if kind not in _PQ and p["num_sub_vectors"] is not None:
            raise ParamError(
                f"lancedb: num_sub_vectors is a parameter of the PQ kinds, not index_type={kind}"
            )
        self._table: Any = None
        self._folder: Path | None = None
        self.build_phases = {}

    @classmethod
    def query_specs(cls, build_params: Any) -> dict[str, ParamSpec]:
        return dict(HNSW_QUERY if build_params.get("index_type") in _HNSW else IVF_QUERY)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """HNSW kinds: ef 10 .. 2560; IVF kinds: nprobes doubling up to num_partitions."""
        if self.params["index_type"] in _HNSW:
            return [10 * 2**i for i in range(9)]
        parts = self.params["num_partitions"] or default_partitions(
            n_base, self.params["index_type"]
        )
        return sorted(
            {min(parts, 2**power) for power in range(int(math.log2(parts)) + 1)} | {parts}
        )

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        parts = default_partitions(n_base, "IVF_PQ")
        return {"num_partitions": sorted({max(1, parts // 2), parts, max(1, 2 * parts)})}

    def built_params(self) -> dict[str, Any]:
        return {name: value for name, value in self.params.items() if value is not None}

    def build_params_for(self, count: int) -> dict[str, Any]:
        params = self.built_params()
        kind = params["index_type"]
        params.setdefault("num_partitions", default_partitions(count, kind))
        if kind in _PQ:
            params.setdefault("num_sub_vectors", default_sub_vectors(self.dim))
        return params

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {"lancedb": version("lancedb"), "pylance": _version_or_none("pylance")}

    def estimate_build_bytes(self, count: int) -> int:
        return int(4 * count * self.dim * 4)

    def _own_folder(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="annkit-lancedb-"))
        self._folder = folder
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)
        return folder

    def _index_config(self, count: int) -> Any:
        from lancedb import index

        p = self.params
        kind = p["index_type"]
        if p["num_partitions"] is None:
            p["num_partitions"] = default_partitions(count, kind)
        if p["num_partitions"] > count:
            raise ParamError(
                f"lancedb: num_partitions={p['num_partitions']} exceeds the {count} base vectors"
            )
        if kind in _PQ:
            if p["num_sub_vectors"] is None:
                p["num_sub_vectors"] = default_sub_vectors(self.dim)
            if self.dim % p["num_sub_vectors"]:
                raise ParamError(
                    f"lancedb: num_sub_vectors={p['num_sub_vectors']} must divide the "
                    f"dimension {self.dim}"
                )
        common = {"distance_type": _DISTANCES[self.metric], "num_partitions": p["num_partitions"]}
        if kind == "IVF_PQ":
            return index.IvfPq(**common, num_sub_vectors=p["num_sub_vectors"])
        if kind == "IVF_FLAT":
            return index.IvfFlat(**common)
        if kind == "IVF_SQ":
            return index.IvfSq(**common)
        graph = {"m": p["m"], "ef_construction": p["ef_construction"]}
        if kind == "IVF_HNSW_SQ":
            return index.IvfHnswSq(**common, **graph)
        return index.IvfHnswPq(**common, **graph, num_sub_vectors=p["num_sub_vectors"])

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        import pyarrow as pa

        lancedb = _lancedb()
        count = int(base.shape[0])
        config = self._index_config(count)
        folder = self._own_folder()
        clock = time.perf_counter
        try:
            started = clock()
            rows = as_float32_rows(base)
            data = pa.table(
                {
                    "id": pa.array(np.arange(count, dtype=np.int64)),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), self.dim),
                }
            )
            table = lancedb.connect(str(folder)).create_table(TABLE, data=data)
            del data, rows
            loaded = clock() - started
            # compaction and cleanup before the index: an optimize() after create_index()
            # leaves an index whose nprobes no longer limits the search (measured on 0.40:
            # recall 1.0 at nprobes=1 of 100 IVF_FLAT partitions)
            started = clock()
            with warnings.catch_warnings():  # no other reader: dropping old versions is safe
                warnings.simplefilter("ignore", UserWarning)
                table.optimize(cleanup_older_than=timedelta(0))
            optimised = clock() - started
            started = clock()
            table.create_index("vector", config=config)
            indexed = clock() - started
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"lancedb: the build failed: {_first_line(exc)}") from None
        self._table = table
        self.build_phases = {
            "load": round(loaded, 6),
            "index": round(indexed, 6),
            "optimise": round(optimised, 6),
        }
        self.count = count

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        queries = as_float32_rows(queries)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        q = self.query
        try:
            for start in range(0, len(queries), _QUERY_BATCH):
                block = queries[start : start + _QUERY_BATCH]
                search = (
                    self._table.search(block if len(block) > 1 else block[0])
                    .distance_type(_DISTANCES[self.metric])
                    .nprobes(q["nprobes"])
                    .limit(k)
                    .select(["id", "_distance"])
                )
                if q["refine_factor"] > 0:
                    search = search.refine_factor(q["refine_factor"])
                if "ef" in q:
                    search = search.ef(q["ef"])
                answer = search.to_arrow()
                found_ids = answer["id"].to_numpy()
                found = answer["_distance"].to_numpy()
                rows = (
                    answer["query_index"].to_numpy()
                    if "query_index" in answer.column_names
                    else np.zeros(len(found_ids), dtype=np.int64)
                )
                self._place(ids, distances, start + rows, found_ids, found)
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"lancedb: the search failed: {_first_line(exc)}") from None
        if self.metric == "euclidean":
            distances = np.sqrt(np.maximum(distances, 0.0))
        elif self.metric == "ip":
            distances = distances - np.float32(1.0)  # 1 - dot -> -dot
        return SearchResult(ids=ids, distances=distances)

    @staticmethod
    def _place(
        ids: np.ndarray,
        distances: np.ndarray,
        rows: np.ndarray,
        found_ids: np.ndarray,
        found: np.ndarray,
    ) -> None:
        """Put a flat (query row, id, distance) answer into the padded result, best first."""
        order = np.lexsort((found, rows))
        rows, found_ids, found = rows[order], found_ids[order], found[order]
        starts = np.searchsorted(rows, rows, side="left")
        ranks = np.arange(len(rows)) - starts
        keep = ranks < ids.shape[1]
        ids[rows[keep], ranks[keep]] = found_ids[keep]
        distances[rows[keep], ranks[keep]] = found[keep]

    def save(self, directory: Path) -> list[str]:
        assert self._folder is not None, "save() before build()"
        with tarfile.open(directory / ARCHIVE, "w") as tar:
            tar.add(self._folder / f"{TABLE}.lance", arcname=f"{TABLE}.lance")
        return [ARCHIVE]

    @classmethod
    def load(
        cls, directory: Path, metric: str, dim: int, count: int, params: dict
    ) -> LancedbEngine:
        engine = cls(metric, dim, **params)
        archive = directory / ARCHIVE
        if not archive.is_file():
            raise EngineError(f"{directory}: no {ARCHIVE} (not a LanceDB index)")
        folder = engine._own_folder()  # Lance may write where it opens: a copy, not the bundle
        try:
            with tarfile.open(archive, "r:") as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EngineError(f"{archive}: not a Lance dataset archive ({exc})") from None
        if not (folder / f"{TABLE}.lance").is_dir():
            raise EngineError(f"{archive}: not a Lance dataset archive (no {TABLE}.lance)")
        try:
            table = _lancedb().connect(str(folder)).open_table(TABLE)
            stored = table.count_rows()
            stored_dim = table.schema.field("vector").type.list_size
        except (ValueError, RuntimeError, OSError, KeyError) as exc:
            raise EngineError(f"{archive}: LanceDB cannot open it ({_first_line(exc)})") from None
        if stored != count or stored_dim != dim:
            raise EngineError(
                f"{archive}: holds {stored} vectors of dimension {stored_dim}, manifest says "
                f"{count} of dimension {dim}"
            )
        engine._table = table
        engine.count = count
        return engine


def _version_or_none(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def lancedb_installed() -> bool:
    """True when lancedb can be found (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("lancedb") is not None


if lancedb_installed():
    register(LancedbEngine)
else:
    register_unavailable(
        LancedbEngine.name, "needs the lancedb extra: pip install 'annkit[lancedb]'"
    )
