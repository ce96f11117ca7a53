"""The databases against the libraries they wrap, on the shared 100k words dataset (k=10).

    flock /tmp/annkit-bench.lock python benchmarks/bench_databases.py [--queries 2000]

Pairs: pgvector HNSW and chroma against hnswlib (``hnsw``), nmslib against hnswlib, duckdb
(vss HNSW) against usearch, lancedb IVF-PQ against faiss IVF-PQ (``ivfpq``). Each engine is
built once (2 threads), saved as a bundle and loaded again (so a database is measured from
its bundle, as ``annkit evaluate`` would), then searched one query per call (single mode,
one client, one run) with its effort parameter rising until recall@10 reaches 0.99. For
0.95 and 0.99 the script reports the cheapest setting that reaches it: its QPS, p99
latency and recall, and the build time with the database's phases (load / index /
optimise).

Then the harness overhead: for pgvector and duckdb, at the setting that first reached 0.95,
annkit's single-mode QPS against a bare client loop (the same statement, the same vector
text, the same connection kind, no annkit in between), interleaved, best of ``--repeats``;
the ratio annkit / bare (target >= 0.95, i.e. at most 5% overhead).

Writes results/databases.json (atomically) and prints a summary.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import dataset_file, parser, write_figures

from annkit.bundle import build_index, load_bundle, save_bundle
from annkit.engines import engine_names
from annkit.evaluate import evaluate, true_neighbor_distances
from annkit.sources import open_dataset
from annkit.types import Dataset

K = 10
TARGETS = (0.95, 0.99)
HNSW_GRID = [10, 20, 40, 80, 160, 320, 640]


def engines_for(n_base: int) -> dict[str, tuple[dict[str, Any], str, list[int], dict[str, Any]]]:
    """engine -> (build params, effort parameter, its grid, other query params); the IVF
    indexes get about sqrt(n) lists / partitions."""
    lists = round(n_base**0.5)
    probes = sorted({p for p in (4, 8, 16, 32, 64, 128) if p < lists} | {lists})
    return {
        "hnsw": ({"M": 16, "ef_construction": 200}, "ef", HNSW_GRID, {}),
        "pgvector": (
            {"index": "hnsw", "m": 16, "ef_construction": 200},
            "ef_search",
            [*HNSW_GRID, 1000],
            {},
        ),
        "chroma": ({"max_neighbors": 16, "ef_construction": 200}, "ef_search", HNSW_GRID, {}),
        "nmslib": ({"M": 16, "efConstruction": 200}, "efSearch", HNSW_GRID, {}),
        "usearch": (
            {"connectivity": 16, "expansion_add": 128},
            "expansion_search",
            HNSW_GRID,
            {},
        ),
        "duckdb": ({"M": 16, "ef_construction": 128}, "hnsw_ef_search", HNSW_GRID, {}),
        "ivfpq": ({"nlist": lists, "m": 48}, "nprobe", probes, {"rerank": 10}),
        "lancedb": (
            {"index_type": "IVF_PQ", "num_partitions": lists, "num_sub_vectors": 48},
            "nprobes",
            probes,
            {"refine_factor": 10},
        ),
    }


PAIRS = (
    ("pgvector", "hnsw"),
    ("chroma", "hnsw"),
    ("nmslib", "hnsw"),
    ("duckdb", "usearch"),
    ("lancedb", "ivfpq"),
)


def measure_engine(
    name: str, dataset: Dataset, truth: np.ndarray, workdir: Path, threads: int
) -> dict[str, Any]:
    """Build, save, load and sweep one engine's effort grid until recall reaches 0.99."""
    build_params, effort, grid, fixed = engines_for(dataset.n_base)[name]
    started = time.perf_counter()
    engine, seconds = build_index(name, dataset.base, dataset.metric, build_params, threads)
    phases = dict(engine.build_phases or {})
    path = save_bundle(engine, workdir / name, build_seconds=seconds)
    if hasattr(engine, "close"):
        engine.close()
    del engine
    bundle = load_bundle(path)
    settings = []
    for value in grid:
        query = {**fixed, effort: value}
        evaluation = evaluate(
            bundle, dataset, K, query, mode="single", runs=1, true_distances=truth
        )
        settings.append(
            {
                "query_params": query,
                "recall": evaluation.recall,
                "qps": evaluation.qps,
                "p99_ms": evaluation.latency_ms.get("p99"),
            }
        )
        print(f"  {name} {query}: recall {evaluation.recall:.4f} qps {evaluation.qps:,.0f}")
        if evaluation.recall >= max(TARGETS):
            break
    at = {}
    for target in TARGETS:
        reached = [s for s in settings if s["recall"] >= target]
        at[f"{target:.2f}"] = max(reached, key=lambda s: s["qps"]) if reached else None
    return {
        "build_params": build_params,
        "build_seconds": round(seconds, 3),
        "build_phases": phases,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "settings": settings,
        "at_recall": at,
        "bundle": bundle,
    }


def bare_loop(name: str, bundle: Any, query: dict[str, Any], queries: np.ndarray) -> float:
    """QPS of a bare client loop over the same database: the same statement and settings,
    one query per call, no annkit in between."""
    engine = bundle.engine
    engine.set_query_params(**query)
    rows = np.ascontiguousarray(queries, dtype=np.float32)
    if name == "pgvector":
        rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        connection = engine._connection()
        statement = engine._prepared(connection)
        cursor = connection.cursor()
        started = time.perf_counter()
        for row in rows:
            cursor.execute(statement, ("[" + ",".join(map(str, row.tolist())) + "]", K))
            cursor.fetchall()
        return len(rows) / (time.perf_counter() - started)
    cursor = engine._cursor()
    statement = (
        f"SELECT id, array_cosine_distance(vec, ?::VARCHAR::FLOAT[{engine.dim}]) AS distance "
        f"FROM annkit_vectors ORDER BY distance LIMIT {K}"
    )
    started = time.perf_counter()
    for row in rows:
        cursor.execute(statement, ["[" + ",".join(map(str, row.tolist())) + "]"]).fetchall()
    return len(rows) / (time.perf_counter() - started)


def overhead(
    name: str, result: dict[str, Any], dataset: Dataset, truth: np.ndarray, repeats: int
) -> dict[str, Any] | None:
    """annkit's single-mode QPS against the bare loop at the 0.95 setting, interleaved."""
    setting = result["at_recall"]["0.95"]
    if setting is None:
        return None
    query = setting["query_params"]
    annkit_qps, bare_qps = [], []
    for _ in range(repeats):
        evaluation = evaluate(
            result["bundle"], dataset, K, query, mode="single", runs=1, true_distances=truth
        )
        annkit_qps.append(evaluation.qps)
        bare_qps.append(bare_loop(name, result["bundle"], query, dataset.queries))
    return {
        "query_params": query,
        "annkit_qps": max(annkit_qps),
        "bare_qps": max(bare_qps),
        "ratio": max(annkit_qps) / max(bare_qps),
    }


def main() -> None:
    args = parser(
        __doc__, output="databases.json", dataset=True, repeats=3, threads=2, workdir=True
    )
    args.add_argument("--queries", type=int, default=2000, help="queries used (default 2000)")
    options = args.parse_args()
    missing = [name for pair in PAIRS for name in pair if name not in engine_names()]
    if missing:
        raise SystemExit(f"engines not installed: {', '.join(sorted(set(missing)))}")
    dataset = open_dataset(str(dataset_file(options.dataset)), max_queries=options.queries, seed=0)
    truth = true_neighbor_distances(dataset, K)
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="annkit-bench-db-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    overheads: dict[str, Any] = {}
    try:
        for name in dict.fromkeys(name for pair in PAIRS for name in pair):
            print(f"{name}: building", file=sys.stderr)
            results[name] = measure_engine(name, dataset, truth, workdir, options.threads)
            if name in ("pgvector", "duckdb"):
                overheads[name] = overhead(name, results[name], dataset, truth, options.repeats)
            bundle = results[name].pop("bundle")
            if hasattr(bundle.engine, "close"):
                bundle.engine.close()
            del bundle
            shutil.rmtree(workdir / name, ignore_errors=True)
            partial = {"complete": False, "engines": results, "harness_overhead": overheads}
            write_figures(options.output, partial)  # what is measured so far, kept
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = {
        "complete": True,
        "dataset": dataset.name,
        "n_base": dataset.n_base,
        "n_queries": dataset.n_queries,
        "k": K,
        "mode": "single (one query per call, one client)",
        "engines": results,
        "pairs": [
            {
                "database": database,
                "library": library,
                **{
                    f"at_{target:.2f}": {
                        "database": results[database]["at_recall"][f"{target:.2f}"],
                        "library": results[library]["at_recall"][f"{target:.2f}"],
                    }
                    for target in TARGETS
                },
                "build_seconds": {
                    "database": results[database]["build_seconds"],
                    "library": results[library]["build_seconds"],
                },
            }
            for database, library in PAIRS
        ],
        "harness_overhead": overheads,
    }
    path = write_figures(options.output, figures)
    for pair in figures["pairs"]:
        for target in TARGETS:
            at = pair[f"at_{target:.2f}"]
            parts = []
            for side in ("database", "library"):
                found = at[side]
                parts.append(
                    f"{pair[side]} "
                    + (
                        "not reached"
                        if found is None
                        else f"{found['qps']:,.0f} QPS p99 {found['p99_ms']:.2f} ms"
                    )
                )
            print(f"recall {target}: " + " | ".join(parts))
    for name, entry in overheads.items():
        if entry:
            print(f"{name}: annkit / bare client loop = {entry['ratio']:.3f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
