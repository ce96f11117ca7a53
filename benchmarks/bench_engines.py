"""The side-by-side: every engine on the shared 100k words dataset (k=10, batch), and annkit's
reported batch QPS next to a bare library loop over the same index.

    flock /tmp/annkit-bench.lock python benchmarks/bench_engines.py [--repeats 7]

1. the sweep: ``annkit bench benchmarks/engines-sweep.toml -o results/engines_words100k
   --threads 2`` (indexes built with 2 threads for speed; cached under results/.cache, so a
   second run only measures). Each search is single-threaded, as annkit always searches.
2. per engine (and per faiss factory string): the best QPS at recall@10 >= 0.9 / 0.95 /
   0.99 on all queries and on the ``tail`` band, with the distance computations per query
   there (from ``annkit report --json`` and ``annkit report --slice tail --json``; on the
   tail the mean over the tail's queries);
3. the bare loop, for the engines whose library annkit wraps newly (faiss, usearch, scann
   when registered): at each index's setting that is best at recall >= 0.95 (else the
   highest-recall one), annkit's reported batch QPS (``annkit.evaluate.evaluate``, one
   timed batch per call) next to the library's own batch search on the same payload file
   (loaded with the library itself) and the same queries, one thread, interleaved, best of
   ``--repeats``; the ratio is annkit / bare (target >= 0.95). Then annkit's per-query
   distance computations against the library's own counters read in a bare one-query loop:
   faiss ``hnsw_stats.ndis`` (HNSW) or ``indexIVF_stats.ndis`` (codes scanned in the probed
   lists, to which annkit adds ``nlist`` for the coarse quantizer and one exact distance per
   re-ranked candidate), usearch ``computed_distances``.

Writes results/engines_benchmark.json (atomically), results/engines_words100k.png and
results/engines_words100k_work.png, and prints a summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, ROOT, dataset_file, machine, parser, run_annkit, write_figures

from annkit.bench.report import as_records, best_at, load_results, on_slice
from annkit.bundle import load_bundle
from annkit.evaluate import evaluate, paused_gc, true_neighbor_distances
from annkit.sources import open_dataset
from annkit.types import RunRecord

SWEEP = ROOT / "benchmarks" / "engines-sweep.toml"
SWEEP_RESULTS = RESULTS / "engines_words100k"
CACHE = RESULTS / ".cache"
THRESHOLDS = (0.90, 0.95, 0.99)
BARE_ENGINES = ("faiss", "usearch", "scann")
K = 10


def annkit_cli(*args: str) -> str:
    """Run ``annkit ARGS`` and return its stdout (the sweep's progress goes to stderr)."""
    return run_annkit(*args)[1]


def variant(record: RunRecord) -> str:
    """The engine, with the factory string for faiss (two faiss indexes are two rows)."""
    factory = record.build_params.get("factory")
    return f"{record.engine} {factory}" if factory else record.engine


def headline(record: RunRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "query_params": record.query_params,
        "recall": record.recall,
        "qps": record.qps,
        "distance_computations": record.distance_computations,
    }


def side_by_side(records: list[RunRecord]) -> dict[str, Any]:
    """Per engine variant: the best QPS at each threshold, on all queries and on the tail."""
    tail_records = on_slice(records, "tail")
    table: dict[str, Any] = {}
    for name in dict.fromkeys(variant(r) for r in records):
        mine = [r for r in records if variant(r) == name]
        mine_tail = [r for r in tail_records if variant(r) == name]
        first = mine[0]
        table[name] = {
            "engine": first.engine,
            "build_params": first.build_params,
            "build_seconds": first.build_seconds,
            "index_bytes": first.index_bytes,
            "max_recall": max(
                (r.recall for r in mine if r.usable and r.recall is not None), default=None
            ),
            "all": {f"{t:.2f}": headline(best_at(mine, t)) for t in THRESHOLDS},
            "tail": {f"{t:.2f}": headline(best_at(mine_tail, t)) for t in THRESHOLDS},
        }
    return table


def find_bundle(record: RunRecord) -> Path:
    """The cached index of a record's build (its manifest names the same engine and
    resolved build parameters)."""
    for manifest_path in sorted(CACHE.glob("indexes/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        if (
            manifest.get("engine") == record.engine
            and manifest.get("build_params") == record.build_params
            and manifest.get("count") == 100_000
        ):
            return manifest_path.parent
    raise SystemExit(f"no cached index for {record.engine} {record.build_params}")


# ------------------------------------------------------------------ bare library loops


class BareFaiss:
    """faiss itself on the bundle's payload: read_index, SearchParameters, one thread."""

    def __init__(self, bundle_dir: Path, query_params: dict, queries: np.ndarray) -> None:
        import faiss

        self.faiss = faiss
        self.index = faiss.read_index(str(bundle_dir / "index.faiss"))
        self.queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)  # angular
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        self.keep: list[Any] = []
        self.params = self._params(self.index, query_params)
        self.kind = "ivf" if faiss.try_extract_index_ivf(self.index) is not None else "hnsw"

    def _params(self, index: Any, query: dict) -> Any:
        faiss = self.faiss
        index = faiss.downcast_index(index)
        params: Any = None
        if isinstance(index, faiss.IndexRefine):
            params = faiss.IndexRefineSearchParameters(k_factor=float(query["k_factor"]))
            inner = self._params(index.base_index, query)
            if inner is not None:
                params.base_index_params = inner
        elif isinstance(index, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(nprobe=int(query["nprobe"]))
        elif isinstance(index, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(efSearch=int(query["efSearch"]))
        if params is not None:
            self.keep.append(params)
        return params

    def batch(self) -> float:
        """Seconds for one batch search of every query (one thread)."""
        self.faiss.omp_set_num_threads(1)
        with paused_gc():
            start = time.perf_counter()
            self.index.search(self.queries, K, params=self.params)
            return time.perf_counter() - start

    def counters(self) -> np.ndarray:
        """faiss' own counter per query, one query per call: hnsw_stats.ndis for a graph,
        indexIVF_stats.ndis (codes scanned) for an inverted file."""
        faiss = self.faiss
        faiss.omp_set_num_threads(1)
        stats = faiss.cvar.hnsw_stats if self.kind == "hnsw" else faiss.cvar.indexIVF_stats
        out = np.empty(len(self.queries), dtype=np.int64)
        for row in range(len(self.queries)):
            stats.reset()
            self.index.search(self.queries[row : row + 1], K, params=self.params)
            out[row] = stats.ndis
        return out

    def batch_counter(self, annkit_counts: np.ndarray, query_params: dict) -> dict[str, Any]:
        """faiss' own counter over one batch search (one thread), next to the same total taken
        from annkit's per-query counts: a graph's ndis; an inverted file's codes scanned
        (annkit's counts less nlist and the refine candidates, min(scanned, k_factor * k))."""
        faiss = self.faiss
        faiss.omp_set_num_threads(1)
        stats = faiss.cvar.hnsw_stats if self.kind == "hnsw" else faiss.cvar.indexIVF_stats
        stats.reset()
        self.index.search(self.queries, K, params=self.params)
        library = int(stats.ndis)
        counts = annkit_counts.astype(np.int64)
        if self.kind == "ivf":
            counts = counts - faiss.extract_index_ivf(self.index).nlist
            if isinstance(faiss.downcast_index(self.index), faiss.IndexRefine):
                k_base = int(K * float(query_params["k_factor"]))
                counts = np.where(counts >= 2 * k_base, counts - k_base, counts // 2)
        return {
            "library": library,
            "annkit": int(counts.sum()),
            "equal": library == int(counts.sum()),
        }

    def expected(self, library: np.ndarray, query_params: dict) -> np.ndarray:
        """What annkit reports, from faiss' own counter: a graph's ndis as it is; an inverted
        file's codes scanned + nlist (the flat coarse quantizer, which faiss does not count)
        + the candidates a refine stage re-ranks (min(scanned, k_factor * k))."""
        if self.kind == "hnsw":
            return library
        ivf = self.faiss.extract_index_ivf(self.index)
        expected = library + ivf.nlist
        if isinstance(self.faiss.downcast_index(self.index), self.faiss.IndexRefine):
            expected = expected + np.minimum(library, int(K * float(query_params["k_factor"])))
        return expected


class BareUsearch:
    """usearch itself on the bundle's payload: Index.restore, expansion_search, one thread."""

    def __init__(self, bundle_dir: Path, query_params: dict, queries: np.ndarray) -> None:
        from usearch.index import Index

        self.index = Index.restore(str(bundle_dir / "index.usearch"))
        self.index.expansion_search = int(query_params["expansion_search"])
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)

    def batch(self) -> float:
        with paused_gc():
            start = time.perf_counter()
            self.index.search(self.queries, K, threads=1)
            return time.perf_counter() - start

    def counters(self) -> np.ndarray:
        return np.array(
            [self.index.search(row, K, threads=1).computed_distances for row in self.queries],
            dtype=np.int64,
        )

    def expected(self, library: np.ndarray, query_params: dict) -> np.ndarray:
        """usearch's computed_distances is what annkit reports."""
        return library

    def batch_counter(self, annkit_counts: np.ndarray, query_params: dict) -> dict[str, Any]:
        """usearch's computed_distances of one batch search, next to annkit's total."""
        library = int(self.index.search(self.queries, K, threads=1).computed_distances)
        total = int(annkit_counts.sum())
        return {"library": library, "annkit": total, "equal": library == total}


class BareScann:
    """ScaNN itself on the bundle's files: load_searcher, search_batched (one thread)."""

    def __init__(self, bundle_dir: Path, query_params: dict, queries: np.ndarray) -> None:
        from scann.scann_ops.py import scann_ops_pybind

        self.searcher = scann_ops_pybind.load_searcher(str(bundle_dir))
        self.query = query_params
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)

    def batch(self) -> float:
        with paused_gc():
            start = time.perf_counter()
            self.searcher.search_batched(
                self.queries,
                final_num_neighbors=K,
                leaves_to_search=int(self.query["leaves_to_search"]),
                pre_reorder_num_neighbors=max(K, int(self.query["reorder"])),
            )
            return time.perf_counter() - start

    def counters(self) -> None:
        """ScaNN exposes no counter."""
        return None


BARE = {"faiss": BareFaiss, "usearch": BareUsearch, "scann": BareScann}


def bare_comparison(records: list[RunRecord], dataset: Any, repeats: int) -> list[dict]:
    """annkit's reported batch QPS next to the bare library loop, per new-engine index."""
    truth_distances = true_neighbor_distances(dataset, K)
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(variant(r) for r in records if r.engine in BARE_ENGINES):
        mine = [r for r in records if variant(r) == name and r.usable]
        chosen = best_at(mine, 0.95) or max(mine, key=lambda r: r.recall or 0.0)
        if chosen.engine not in BARE:
            rows.append({"engine": name, "note": "no bare loop written for this library"})
            continue
        bundle_dir = find_bundle(chosen)
        bundle = load_bundle(bundle_dir)
        bare = BARE[chosen.engine](bundle_dir, chosen.query_params, dataset.queries)
        annkit_qps, bare_qps = [], []
        evaluation = None
        for _ in range(repeats):  # interleaved: annkit, bare, annkit, bare, ...
            evaluation = evaluate(
                bundle,
                dataset,
                K,
                dict(chosen.query_params),
                runs=1,
                true_distances=truth_distances,
                with_slices=False,
            )
            annkit_qps.append(evaluation.qps)
            bare_qps.append(dataset.n_queries / bare.batch())
        assert evaluation is not None
        counts = evaluation.per_query_distance_computations
        library = bare.counters()
        equal = differing = batch = None
        if counts is not None and library is not None:
            expected = bare.expected(library, chosen.query_params)
            equal = bool(np.array_equal(counts, expected))
            differing = int(np.count_nonzero(counts != expected))
            batch = bare.batch_counter(counts, chosen.query_params)
        rows.append(
            {
                "engine": name,
                "query_params": chosen.query_params,
                "recall": evaluation.recall,
                "annkit_qps": {"best": max(annkit_qps), "all": annkit_qps},
                "bare_qps": {"best": max(bare_qps), "all": bare_qps},
                "ratio": max(annkit_qps) / max(bare_qps),
                "ratio_of_medians": float(np.median(annkit_qps) / np.median(bare_qps)),
                "annkit_distance_computations": evaluation.distance_computations,
                "library_counter_mean": None if library is None else float(library.mean()),
                "counts_equal_library_counters": equal,
                "queries_differing_from_one_query_loop": differing,
                "batch_counter": batch,
            }
        )
        print(
            f"  {name} {chosen.query_params}: annkit {max(annkit_qps):,.0f} QPS, bare "
            f"{max(bare_qps):,.0f} QPS, ratio {rows[-1]['ratio']:.3f} (medians "
            f"{rows[-1]['ratio_of_medians']:.3f}); per-query counters equal: {equal} "
            f"({differing} differ); batch counter: {batch}",
            flush=True,
        )
    return rows


def main() -> int:
    arguments = parser(__doc__, repeats=7, output="engines_benchmark.json")
    arguments.add_argument("--skip-bare", action="store_true", help="sweep and table only")
    arguments.add_argument(
        "--force",
        action="store_true",
        help="measure every setting again (cached indexes are reused)",
    )
    args = arguments.parse_args()
    # the sweep reads it too (engines-sweep.toml names it); fail before a long sweep
    dataset = dataset_file(other="benchmarks/engines-sweep.toml names it relative to itself")
    started = time.perf_counter()
    load_before = os.getloadavg()
    print("sweep (annkit bench) ...", flush=True)
    sweep = json.loads(
        annkit_cli(
            "bench",
            str(SWEEP),
            "-o",
            str(SWEEP_RESULTS),
            "--threads",
            "2",
            "-q",
            "--json",
            *(["--force"] if args.force else []),
        )
    )["sweep"]
    sweep_seconds = time.perf_counter() - started
    report_all = json.loads(annkit_cli("report", str(SWEEP_RESULTS), "--json"))
    report_tail = json.loads(annkit_cli("report", str(SWEEP_RESULTS), "--slice", "tail", "--json"))
    annkit_cli(
        "plot",
        str(SWEEP_RESULTS),
        "--slice",
        "tail",
        "-o",
        str(RESULTS / "engines_words100k.png"),
    )
    annkit_cli(
        "plot",
        str(SWEEP_RESULTS),
        "--x",
        "work",
        "-o",
        str(RESULTS / "engines_words100k_work.png"),
    )
    _, records, meta = load_results(SWEEP_RESULTS)
    records = as_records(records)
    table = side_by_side(records)
    bare: list[dict] = []
    if not args.skip_bare:
        print("bare library loops ...", flush=True)
        bare = bare_comparison(records, open_dataset(str(dataset)), args.repeats)
    folder = SWEEP_RESULTS.relative_to(ROOT)
    report = {
        "dataset": str(dataset),
        "k": K,
        "mode": "batch",
        "build_threads": 2,
        "search_threads": 1,
        "commands": [
            f"annkit bench {SWEEP.relative_to(ROOT)} -o {folder} --threads 2",
            f"annkit report {folder} --json",
            f"annkit report {folder} --slice tail --json",
        ],
        "sweep_seconds": sweep_seconds,
        "sweep": sweep,  # ran / skipped (measured by an earlier run of this script) / seconds
        # the sweep's machine facts where it stored them, with this run's date, load and commit
        "machine": {**machine(), **((meta or {}).get("machine") or {})},
        "engines": table,
        "report_headlines": {"all": report_all["headlines"], "tail": report_tail["headlines"]},
        "bare_loop": bare,
        "repeats": args.repeats,
        "seconds": time.perf_counter() - started,
        # the machine is shared: 1/5/15-minute load averages at the start and the end
        "load_average": {"start": load_before, "end": os.getloadavg()},
    }
    output = write_figures(args.output, report)
    for name, entry in table.items():
        cells = []
        for where in ("all", "tail"):
            for threshold, best in entry[where].items():
                cells.append(
                    f"{where}>={threshold}: "
                    + (
                        "-"
                        if best is None
                        else f"{best['qps']:,.0f} QPS "
                        f"({best['distance_computations'] or 'n/a'} dist)"
                    )
                )
        print(f"{name}: " + "; ".join(cells))
    print(f"wrote {output} in {report['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
