"""Issue-23 figures: annkit's own compiled HNSW search against faiss on the same graph.

    python benchmarks/bench_kernel.py [--dataset PATH] [--output PATH] [--repeats 3]
                                      [--workdir DIR] [--adapt] [--queries N]

faiss HNSW16 (efConstruction 200, one thread; cached in --workdir) over the dataset (default
words-100k; ``--dataset words-10k`` for the bundled one). At every efSearch of the faiss
engine's default grid, one run measures both searches on the same queries, one thread:

- agreement: the share of queries with the same ids (as sets, and in faiss' order), the
  share with exactly faiss' distance computations (``hnsw_stats.ndis``), and the total
  count's relative difference;
- speed: QPS of faiss' batch search and of the kernel's (best of --repeats, interleaved),
  and their ratio;
- resuming: paused at each grid value and resumed to the next (state capacity = the next),
  the share of queries whose ids and counts equal the fresh search at the next value.

With --adapt, ``annkit.adaptive.adapt`` is run (cross-fitted, 5 folds, target 0.99) with every
kind the index supports (as ``annkit adapt`` does by default: the stopping rules patience,
resume, learned-resume, darth and ada-ef beside learned and threshold), once per fold seed
of --seeds, and the issue's targets are checked at the uniform points nearest 0.99 and 0.95
for each seed (the p5 target must hold on a second seed too). --no-compare skips the timed
kernel-against-faiss part (for a machine that is busy: the adapt figures are work only).
Writes --output (default results/kernel_benchmark.json).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from common import RESULTS, parser, write_figures

from annkit.adaptive import AdaptConfig, adapt
from annkit.adaptive.run import applicable_kinds
from annkit.bundle import fingerprint_vectors
from annkit.cache import index_dir, index_key, obtain_index
from annkit.engines.hnsw_kernel import kernel_for
from annkit.faiss_util import faiss_threads
from annkit.sources import open_dataset
from annkit.types import Dataset

K = 10
FAISS = ("faiss", {"factory": "HNSW16,Flat", "efConstruction": 200, "seed": 1234})
MAIN_WORK_RATIO = 0.67
SECOND_P5_GAIN = 0.1


def subset(dataset: Dataset, count: int | None, seed: int = 0) -> Dataset:
    """A seeded sample of ``count`` queries in file order (all when None)."""
    if count is None or count >= dataset.n_queries:
        return dataset
    rows = np.sort(np.random.default_rng(seed).choice(dataset.n_queries, count, replace=False))
    return Dataset(
        name=f"{dataset.name}[{count} sampled]",
        metric=dataset.metric,
        base=dataset.base,
        queries=dataset.queries[rows],
        neighbors=None if dataset.neighbors is None else dataset.neighbors[rows],
        weights=None if dataset.weights is None else dataset.weights[rows],
        source=dataset.source,
    )


def best_seconds(function, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def compare(bundle, dataset: Dataset, repeats: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Agreement, speed and resuming at every efSearch of the default grid."""
    engine = bundle.engine
    kernel = kernel_for(engine)
    assert kernel is not None
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    grid = engine.effort_grid(K, dataset.n_base)
    kernel.search(queries[:2], K, grid[0])  # compile (cached on disk after the first run)
    rows = []
    fresh = {}
    for ef in grid:
        engine.set_query_params(efSearch=ef)
        with engine.uncounted():
            theirs = engine.search(queries, K)
        counts = engine.count_distances(queries, K)
        mine = kernel.search(queries, K, ef)
        fresh[ef] = mine
        with faiss_threads(1), engine.uncounted():
            faiss_seconds = seconds_kernel = float("inf")
            for _ in range(repeats):  # interleaved, the best of each kept
                faiss_seconds = min(
                    faiss_seconds, best_seconds(lambda: engine.search(queries, K), 1)
                )
                seconds_kernel = min(
                    seconds_kernel, best_seconds(lambda ef=ef: kernel.search(queries, K, ef), 1)
                )
        rows.append(
            {
                "efSearch": ef,
                "same_ids": float((np.sort(theirs.ids, 1) == np.sort(mine.ids, 1)).all(1).mean()),
                "same_ids_in_order": float((theirs.ids == mine.ids).all(1).mean()),
                "same_count": float((counts == mine.distance_computations).mean()),
                "count_relative_difference": float(
                    mine.distance_computations.sum() / counts.sum() - 1.0
                ),
                "faiss_distance_computations": float(counts.mean()),
                "kernel_distance_computations": float(mine.distance_computations.mean()),
                "faiss_qps": len(queries) / faiss_seconds,
                "kernel_qps": len(queries) / seconds_kernel,
                "qps_ratio": faiss_seconds / seconds_kernel,
            }
        )
        print(rows[-1], file=sys.stderr)
    for low, high, row in zip(grid, grid[1:], rows[1:], strict=False):
        state = kernel.start(queries, K, high)
        kernel.advance(state, low)
        kernel.advance(state, high)
        resumed = kernel.result(state)
        row["resumed_from"] = low
        row["resumed_same_ids"] = float((resumed.ids == fresh[high].ids).all(1).mean())
        row["resumed_same_count"] = float(
            (resumed.distance_computations == fresh[high].distance_computations).mean()
        )
        row["resumed_never_more_work"] = bool(
            (resumed.distance_computations <= fresh[high].distance_computations).all()
        )
    return rows


def target_checks(result: dict, kinds: tuple[str, ...]) -> list[dict]:
    """The issue's targets for each policy kind (as benchmarks/bench_adaptive.py)."""
    checks = []
    by_point = {entry["operating_point"]: entry for entry in result["comparisons"]}
    for kind in kinds:
        main = by_point[0.99].get(f"{kind} (recall matched)")
        if main is not None:
            checks.append(
                {
                    "target": f"<= {MAIN_WORK_RATIO}x work at the uniform recall and p5 near 0.99",
                    "policy": kind,
                    "reached": bool(
                        main["recall_change"] >= -0.001
                        and main["p5_change"] >= 0
                        and main["work_ratio"] is not None
                        and main["work_ratio"] <= MAIN_WORK_RATIO
                    ),
                    "work_ratio": main["work_ratio"],
                    "recall_change": main["recall_change"],
                    "p5_change": main["p5_change"],
                }
            )
        second = by_point[0.95].get(f"{kind} (work matched)")
        if second is not None:
            checks.append(
                {
                    "target": f"p5 +{SECOND_P5_GAIN} at equal work (2%) near 0.95",
                    "policy": kind,
                    "reached": bool(
                        second["work_ratio"] is not None
                        and second["work_ratio"] <= 1.02
                        and second["p5_change"] >= SECOND_P5_GAIN - 1e-12
                    ),
                    "work_ratio": second["work_ratio"],
                    "p5_change": second["p5_change"],
                }
            )
    return checks


def main() -> None:
    options = parser(
        __doc__,
        output="kernel_benchmark.json",
        dataset=True,
        repeats=3,
        workdir=Path("/tmp/annkit-kernel-cache"),
    )
    options.add_argument("--adapt", action="store_true", help="also run adapt with the rules")
    options.add_argument("--queries", type=int, default=None, help="a seeded query sample")
    options.add_argument("--seeds", default="0", help="fold seeds of the adapt runs (0,1)")
    options.add_argument("--no-compare", action="store_true", help="skip the timed part")
    args = options.parse_args()
    dataset = subset(open_dataset(str(args.dataset)), args.queries)
    workdir = Path(args.workdir)
    name, params = FAISS
    fingerprint = fingerprint_vectors(dataset.base)
    key = index_key(fingerprint, name, params, dataset.metric)
    bundle, cached = obtain_index(
        index_dir(workdir, key), name, params, dataset, fingerprint=fingerprint, threads=1
    )
    print(f"index {'from cache' if cached else 'built'}", file=sys.stderr)
    figures: dict = {
        "dataset": dataset.name,
        "index": {"engine": name, "build_params": bundle.manifest["build_params"]},
        "k": K,
        "threads": 1,
        "load_average": list(os.getloadavg()),
    }
    if not args.no_compare:
        figures["per_efsearch"] = compare(bundle, dataset, args.repeats)
    if args.adapt:
        kinds = applicable_kinds(bundle.engine, "threshold")
        figures["adapt"] = {}
        for seed in (int(value) for value in args.seeds.split(",")):
            started = time.perf_counter()
            report = adapt(
                bundle,
                dataset,
                K,
                0.99,
                config=AdaptConfig(k=K, kinds=kinds, seed=seed),
                progress=lambda message, started=started: print(
                    f"  {message} ({time.perf_counter() - started:.0f} s)", file=sys.stderr
                ),
            )
            result = report.to_dict()
            figures["adapt"][f"seed {seed}"] = {
                "comparisons": result["comparisons"],
                "wins": result["wins"],
                "best_kinds": result["best_kinds"],
                "targets": target_checks(result, kinds),
                "seconds": time.perf_counter() - started,
            }
    figures["command"] = "python benchmarks/bench_kernel.py " + " ".join(sys.argv[1:])
    path = write_figures(
        Path(args.output) if args.output else RESULTS / "kernel_benchmark.json", figures
    )
    print(path)


if __name__ == "__main__":
    main()
