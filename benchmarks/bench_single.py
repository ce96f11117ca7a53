"""Single-query mode (issue 25, parts 2 and 3) on words-100k, k=10, one search thread:

    flock /tmp/annkit-bench.lock python benchmarks/bench_single.py [--repeats 5]

1. overhead: per engine and setting, the QPS annkit reports in single mode (``evaluate``
   with ``mode="single"`` and ``qps_tolerance=0``, so every one of ``--queries`` queries is
   timed) next to a bare loop of the library itself over the same index and the same
   prepared queries, in annkit's seeded timing order (faiss
   ``for q in queries: index.search(q[None], k)``, hnswlib ``knn_query``, Annoy
   ``get_nns_by_vector``, USearch ``search``, nmslib ``knnQuery``, ScaNN ``search``), the
   loop timed as a whole. The bare index is a second copy loaded from the same bundle, its
   query knobs set on the library object the way ann-benchmarks sets them. Interleaved
   annkit, bare, annkit, bare, ... ``--repeats`` times; the ratio annkit / bare of each
   pair, its median, min and max. Target: faiss >= 0.95. annkit's figure is the summed time
   of the library calls (its clock is read around each call), the bare loop's includes its
   own loop; both with Python's garbage collector paused.
2. within one pass: one pass timing every query (up to 5,000) in the seeded order, and
   annkit's stopping rule applied to its prefixes: does the 95% interval of the prefix it
   stops at hold the QPS of the whole pass? (the sampling error alone, without the
   machine's drift between passes)
3. sampling: per setting, annkit's default single mode (a seeded sample grown until the 95%
   interval is within the 5% QPS tolerance) next to the same pass with ``qps_tolerance=0``
   over all 5,000 queries, interleaved ``--repeats`` times: how many queries the sample
   timed, its interval, and whether the all-queries QPS of the neighbouring full pass lies
   inside it (how often, and by how much it misses when it does not).

Indexes are built once (two threads) and kept in ``--workdir``. The database engines
(pgvector, LanceDB, DuckDB, Chroma) are measured against their libraries in
``bench_databases.py``. Writes results/single_mode.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from common import dataset_file, machine, parser, utc_now, write_figures

from annkit.bundle import Bundle, build_index, load_bundle, save_bundle
from annkit.evaluate import (
    DEFAULT_QPS_TOLERANCE,
    MAX_TIMED_QUERIES,
    MIN_TIMED_QUERIES,
    evaluate,
    paused_gc,
    timing_order,
    true_neighbor_distances,
)
from annkit.faiss_util import prepare
from annkit.sources import open_dataset
from annkit.timing import qps_interval, time_sample
from annkit.types import Dataset

K = 10
#: (engine, build params, query settings): the fast settings show per-call overhead most
SETTINGS: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    ("faiss", {"factory": "IVF1024,PQ192x4fs"}, [{"nprobe": 4}, {"nprobe": 16}]),
    ("faiss", {"factory": "IVF1024,PQ192x4fs,RFlat"}, [{"nprobe": 4, "k_factor": 10}]),
    ("faiss", {"factory": "HNSW32,Flat"}, [{"efSearch": 16}]),
    ("hnsw", {"M": 16, "ef_construction": 200}, [{"ef": 10}, {"ef": 80}]),
    ("annoy", {"n_trees": 50}, [{"search_k": 1000}]),
    ("ivfpq", {"nlist": 1024, "m": 48, "refine": False}, [{"nprobe": 4}]),
    ("usearch", {}, [{"expansion_search": 16}]),
    ("nmslib", {}, [{"efSearch": 16}]),
    ("scann", {}, [{"leaves_to_search": 20}]),
    ("flat", {}, [{}]),
]
#: flat reads the whole base for every query (milliseconds each): fewer queries
FLAT_QUERIES = 200


def bundle_for(workdir: Path, dataset: Dataset, engine: str, params: dict[str, Any]) -> Path:
    """The bundle folder of (engine, build params) in ``workdir``, built (2 threads) once."""
    tag = "-".join(f"{key}={value}" for key, value in sorted(params.items())) or "defaults"
    folder = workdir / f"{engine}-{tag.replace(',', '_')}"
    if not (folder / "manifest.json").exists():
        print(f"  building {engine} {params} ...", flush=True)
        built, seconds = build_index(engine, dataset.base, dataset.metric, params, threads=2)
        save_bundle(built, folder, build_seconds=seconds)
    return folder


def bare_loop(bundle: Bundle, query: dict[str, Any], queries: np.ndarray) -> Callable[[], None]:
    """A loop over ``queries`` calling the library itself, one query per call, on the native
    index of ``bundle`` (a copy of its own), with the query knobs set the library's way."""
    engine = bundle.engine
    engine.set_query_params(**query)  # the defaults of the other knobs, as annkit resolves them
    name = engine.name
    native: Any = getattr(engine, "_searcher", None) or getattr(engine, "_index")  # noqa: B009
    if name in ("faiss", "ivfpq", "flat"):
        import faiss

        faiss.omp_set_num_threads(1)
        rows = prepare(queries, engine.metric)
        ivf = faiss.try_extract_index_ivf(native)
        if ivf is not None:
            ivf.nprobe = min(int(query["nprobe"]), ivf.nlist)
        top = faiss.downcast_index(native)
        if isinstance(top, faiss.IndexRefine):
            top.k_factor = float(query["k_factor"])
        if isinstance(top, faiss.IndexHNSW):
            top.hnsw.efSearch = int(query["efSearch"])
        index = native

        def loop() -> None:
            for q in rows:
                index.search(q[None], K)

    elif name == "hnsw":
        native.set_ef(int(query["ef"]))
        native.set_num_threads(1)
        rows = np.ascontiguousarray(queries, dtype=np.float32)

        def loop() -> None:
            for q in rows:
                native.knn_query(q[None], k=K)

    elif name == "annoy":
        rows = np.ascontiguousarray(queries, dtype=np.float32)
        search_k = int(query["search_k"])

        def loop() -> None:
            for q in rows:
                native.get_nns_by_vector(q, K, search_k)

    elif name == "usearch":
        native.expansion_search = int(query["expansion_search"])
        rows = engine._prepare(queries)  # type: ignore[attr-defined]

        def loop() -> None:
            for q in rows:
                native.search(q, K)

    elif name == "nmslib":
        native.setQueryTimeParams({"efSearch": int(query["efSearch"])})
        rows = np.ascontiguousarray(queries, dtype=np.float32)

        def loop() -> None:
            for q in rows:
                native.knnQuery(q, k=K)

    elif name == "scann":
        rows = engine._prepare(queries)  # type: ignore[attr-defined]
        leaves = int(engine.query["leaves_to_search"])
        if engine.params.get("num_leaves"):
            leaves = min(leaves, int(engine.params["num_leaves"]))
        reorder = max(K, int(engine.query["reorder"]))

        def loop() -> None:
            for q in rows:
                native.search(
                    q,
                    final_num_neighbors=K,
                    leaves_to_search=leaves,
                    pre_reorder_num_neighbors=reorder,
                )

    else:
        raise SystemExit(f"no bare loop written for {name}")
    return loop


def timed(loop: Callable[[], None]) -> float:
    """Seconds of one call of ``loop`` (garbage collector paused, as annkit's passes)."""
    with paused_gc():
        start = time.perf_counter()
        loop()
        return time.perf_counter() - start


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": float(np.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def first_queries(dataset: Dataset, count: int) -> Dataset:
    """The dataset with its first ``count`` queries (and their truth and weights)."""
    take = slice(0, min(count, dataset.n_queries))
    return replace(
        dataset,
        queries=dataset.queries[take],
        neighbors=None if dataset.neighbors is None else dataset.neighbors[take],
        weights=None if dataset.weights is None else dataset.weights[take],
        query_rows=None,
    )


def overhead(
    folder: Path, dataset: Dataset, query: dict[str, Any], repeats: int, count: int
) -> dict[str, Any]:
    """annkit's single-mode QPS (every one of ``count`` queries timed) against the bare loop."""
    subset = first_queries(dataset, count)
    truth = true_neighbor_distances(subset, K)
    measured = load_bundle(folder)
    # the bare loop takes the queries in annkit's seeded timing order (caches favour neither)
    ordered = np.asarray(subset.queries)[timing_order(subset.n_queries)]
    bare = bare_loop(load_bundle(folder), query, ordered)
    annkit_qps: list[float] = []
    bare_qps: list[float] = []
    loads: list[float] = []
    for _ in range(repeats):  # interleaved: annkit, bare, annkit, bare, ...
        loads.append(os.getloadavg()[0])
        evaluation = evaluate(
            measured,
            subset,
            K,
            query,
            mode="single",
            qps_tolerance=0.0,
            true_distances=truth,
            with_slices=False,
        )
        assert evaluation.timed_queries == subset.n_queries
        annkit_qps.append(evaluation.qps)
        bare_qps.append(subset.n_queries / timed(bare))
    ratios = [a / b for a, b in zip(annkit_qps, bare_qps, strict=True)]
    return {
        "queries": subset.n_queries,
        "recall": evaluation.recall,
        "annkit_qps": spread(annkit_qps),
        "bare_qps": spread(bare_qps),
        "ratio": spread(ratios),
        "ratio_of_medians": float(np.median(annkit_qps) / np.median(bare_qps)),
        "annkit_qps_all": annkit_qps,
        "bare_qps_all": bare_qps,
        "load_average_1min": spread(loads),
    }


def sampling(folder: Path, dataset: Dataset, query: dict[str, Any], repeats: int) -> dict:
    """The default sampled single mode against timing every query, interleaved."""
    truth = true_neighbor_distances(dataset, K)
    bundle = load_bundle(folder)
    pairs = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        sampled = evaluate(
            bundle, dataset, K, query, mode="single", true_distances=truth, with_slices=False
        )
        full = evaluate(
            bundle,
            dataset,
            K,
            query,
            mode="single",
            qps_tolerance=0.0,
            true_distances=truth,
            with_slices=False,
        )
        assert sampled.recall == full.recall  # both from the same untimed batch pass
        low, high = sampled.qps_low, sampled.qps_high
        assert low is not None and high is not None
        pairs.append(
            {
                "timed_queries": sampled.timed_queries,
                "sampled_qps": sampled.qps,
                "interval": [low, high],
                "full_qps": full.qps,
                "full_timed_queries": full.timed_queries,
                "full_inside": low <= full.qps <= high,
                "miss": 0.0
                if low <= full.qps <= high
                else (low - full.qps if full.qps < low else full.qps - high) / full.qps,
                "load_average_1min": load,
            }
        )
    inside = sum(pair["full_inside"] for pair in pairs)
    return {
        "recall": sampled.recall,
        "pairs": pairs,
        "full_inside": f"{inside} of {len(pairs)}",
        "timed_queries": spread([float(pair["timed_queries"]) for pair in pairs]),
        "sampled_to_full_ratio": spread([p["sampled_qps"] / p["full_qps"] for p in pairs]),
    }


def within_pass(
    folder: Path, dataset: Dataset, query: dict[str, Any], repeats: int, tolerance: float
) -> dict[str, Any]:
    """The sampling error alone, without the machine's drift between passes: one pass timing
    every query (up to the maximum) in the seeded order, then annkit's stopping rule applied
    to the prefixes of that same pass (the sample it would have timed is the prefix it
    stops at): does the prefix's 95% interval hold the QPS of the whole pass?"""
    engine = load_bundle(folder).engine
    engine.set_query_params(**query)
    engine.set_search_threads(1)
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    engine.search(queries, K)  # as annkit's untimed batch pass before the timed one
    order = timing_order(dataset.n_queries)[:MAX_TIMED_QUERIES]
    passes = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        with engine.uncounted(), engine.single_queries(queries[order], K) as (items, one):
            latencies = time_sample(one, items, 0.0).latencies
        count = min(MIN_TIMED_QUERIES, len(latencies))
        while True:
            low, high, width = qps_interval(latencies[:count])
            if width <= tolerance or count >= len(latencies):
                break
            count = min(2 * count, len(latencies))
        whole = len(latencies) / float(latencies.sum())
        passes.append(
            {
                "sample": count,
                "sample_qps": count / float(latencies[:count].sum()),
                "interval": [low, high],
                "whole_pass_qps": whole,
                "whole_pass_queries": len(latencies),
                "inside": bool(low <= whole <= high),
                "load_average_1min": load,
            }
        )
    inside = sum(entry["inside"] for entry in passes)
    return {"passes": passes, "inside": f"{inside} of {len(passes)}"}


def main() -> int:
    arguments = parser(
        __doc__,
        output="single_mode.json",
        dataset=True,
        repeats=5,
        workdir=Path("/tmp/annkit-single-cache"),
    )
    arguments.add_argument(
        "--queries", type=int, default=2000, help="queries of the overhead loops (default 2000)"
    )
    arguments.add_argument(
        "--parts", default="overhead,within,sampling", help="which parts to run (default all)"
    )
    arguments.add_argument("--engines", default="", help="only these engines (comma-separated)")
    args = arguments.parse_args()
    dataset = open_dataset(str(dataset_file(args.dataset)))
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    figures: dict[str, Any] = {
        "what": "issue 25: single-query mode, annkit against bare library loops, and the "
        "sampled QPS against timing every query",
        "dataset": dataset.name,
        "k": K,
        "repeats": args.repeats,
        "started": utc_now(),
        "machine_before": machine(),
        "overhead": [],
        "sampling": [],
        "within_pass": [],
    }
    kept = {"overhead": "overhead", "within": "within_pass", "sampling": "sampling"}
    if args.output.is_file():  # the parts not run now keep their earlier figures
        earlier = json.loads(args.output.read_text(encoding="utf-8"))
        for part, key in kept.items():
            if part not in parts and earlier.get(key):
                figures[key] = earlier[key]
                figures.setdefault("kept_from_earlier_run", {})[key] = earlier.get("started")
    started = time.perf_counter()
    from annkit.engines import engine_names

    only = set(filter(None, args.engines.split(",")))
    for engine, build, queries in SETTINGS:
        if only and engine not in only:
            continue
        if engine not in engine_names():
            figures["overhead"].append({"engine": engine, "note": "not installed here"})
            continue
        folder = bundle_for(workdir, dataset, engine, build)
        for query in queries:
            row: dict[str, Any] = {"engine": engine, "build": build, "query": query}
            if "overhead" in parts:
                count = FLAT_QUERIES if engine == "flat" else args.queries
                row.update(overhead(folder, dataset, query, args.repeats, count))
                figures["overhead"].append(row)
                print(
                    f"  {engine} {build} {query}: annkit/bare median "
                    f"{row['ratio']['median']:.3f} (min {row['ratio']['min']:.3f}, max "
                    f"{row['ratio']['max']:.3f}); bare {row['bare_qps']['median']:,.0f} QPS",
                    flush=True,
                )
            if "within" in parts and engine != "flat":
                check = {"engine": engine, "build": build, "query": query}
                check.update(
                    within_pass(folder, dataset, query, args.repeats, DEFAULT_QPS_TOLERANCE)
                )
                figures["within_pass"].append(check)
                print(f"  {engine} {query}: within one pass, inside {check['inside']}", flush=True)
            if "sampling" in parts and engine != "flat":
                check = {"engine": engine, "build": build, "query": query}
                check.update(sampling(folder, dataset, query, max(2, args.repeats // 2)))
                figures["sampling"].append(check)
                print(
                    f"  {engine} {query}: sample timed {check['timed_queries']['median']:.0f} "
                    f"queries; all-queries QPS inside the interval {check['full_inside']}",
                    flush=True,
                )
            write_figures(args.output, figures)  # what is measured so far
    figures["seconds"] = time.perf_counter() - started
    figures["machine_after"] = machine()
    faiss_rows = [
        row for row in figures["overhead"] if row.get("engine") == "faiss" and "ratio" in row
    ]
    figures["targets"] = {
        "faiss_single_vs_bare_loop_ge_0.95": {
            "met": all(row["ratio"]["median"] >= 0.95 for row in faiss_rows),
            "median_ratios": [row["ratio"]["median"] for row in faiss_rows],
        }
    }
    write_figures(args.output, figures)
    print(f"wrote {args.output} ({figures['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
