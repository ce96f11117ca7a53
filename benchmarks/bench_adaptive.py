"""Issue-12 figures: does a per-query effort policy rescue the tail at equal work?

    python benchmarks/bench_adaptive.py [--dataset ../shared/data/words-minilm-384-angular.hdf5]
                                        [--queries N] [--folds 5] [--workdir DIR] [--no-hnswlib]

On the words-100k dataset (100k x 384 angular, 5,000 queries with frequency bands): faiss
HNSW16 (efConstruction 200) built once with one thread (cached in --workdir), then
``annkit.adaptive.adapt`` cross-fitted over --folds folds: the uniform efSearch frontier, the
learned (LightGBM) and threshold policies calibrated on training folds only, and the oracle
(each query at its own least efSearch; uses the ground truth, a bound, not a policy). Work is
faiss' exact distance computations per query, the policy's own work included; QPS comes from
the same run (one thread). The same is repeated on hnswlib HNSW16 (QPS only: it cannot
count). Writes results/adaptive_benchmark.json and results/adaptive-frontier.png and prints
the issue's target comparisons.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from common import RESULTS, dataset_file, machine, parser, write_figures

from annkit.adaptive import AdaptConfig, adapt
from annkit.adaptive.search import refine_grid
from annkit.bundle import fingerprint_vectors
from annkit.cache import cached_true_distances, index_dir, index_key, obtain_index
from annkit.sources import open_dataset
from annkit.types import Dataset

#: the index and ground-truth cache, shared with study_adaptive.py (it studies the same index)
CACHE = Path("/tmp/annkit-adaptive-cache")
K = 10
FAISS = ("faiss", {"factory": "HNSW16,Flat", "efConstruction": 200, "seed": 1234})
HNSWLIB = ("hnsw", {"M": 16, "ef_construction": 200, "seed": 100})
MAIN_WORK_RATIO = 0.67
SECOND_P5_GAIN = 0.1


def subset(dataset: Dataset, count: int | None, seed: int = 0) -> Dataset:
    """A seeded random sample of ``count`` queries in file order (all when None); the file
    lists queries by frequency, so its first rows would all be head queries."""
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


def run_engine(
    name: str,
    params: dict,
    dataset: Dataset,
    truth: np.ndarray,
    workdir: Path,
    folds: int,
    target: float,
) -> dict:
    """Build (or load) the index with one thread and run adapt on it."""
    fingerprint = fingerprint_vectors(dataset.base)
    key = index_key(fingerprint, name, params, dataset.metric)
    started = time.perf_counter()
    bundle, cached = obtain_index(
        index_dir(workdir, key), name, params, dataset, fingerprint=fingerprint, threads=1
    )
    print(
        f"{name}: index {'from cache' if cached else 'built'} ({bundle.build_seconds:.0f} s build)",
        file=sys.stderr,
    )
    grid = refine_grid(bundle.engine.effort_grid(K, dataset.n_base), steps=4)
    report = adapt(
        bundle,
        dataset,
        K,
        target,
        config=AdaptConfig(k=K, folds=folds),
        grid=grid,
        truth=truth,
        progress=lambda message: print(
            f"  {name}: {message} ({time.perf_counter() - started:.0f} s)", file=sys.stderr
        ),
    )
    out = report.to_dict()
    out["index"] = {
        "engine": name,
        "build_params": bundle.manifest["build_params"],
        "build_seconds": bundle.build_seconds,
        "build_threads": 1,
    }
    out["seconds"] = time.perf_counter() - started
    return out


def target_checks(result: dict) -> list[dict]:
    """The issue's targets on one engine's comparisons, for each policy kind."""
    checks = []
    by_point = {entry["operating_point"]: entry for entry in result["comparisons"]}
    for kind in ("learned", "threshold"):
        main = by_point[0.99].get(f"{kind} (recall matched)")
        if main is not None:
            ratio = main["work_ratio"]
            reached = (
                main["recall_change"] >= -0.001
                and main["p5_change"] >= 0
                and (main["tail_band_change"] or 0) >= 0
                and ratio is not None
                and ratio <= MAIN_WORK_RATIO
            )
            checks.append(
                {
                    "target": "main: same recall (0.001), p5 and tail-band recall with "
                    f"<= {MAIN_WORK_RATIO}x work at the uniform point nearest 0.99",
                    "policy": kind,
                    "reached": bool(reached),
                    **_brief(main),
                }
            )
        second = by_point[0.95].get(f"{kind} (work matched)")
        if second is not None:
            ratio = second["work_ratio"]
            reached = (
                ratio is not None
                and abs(ratio - 1.0) <= 0.02
                and second["p5_change"] >= SECOND_P5_GAIN - 1e-12
            )
            checks.append(
                {
                    "target": "second: equal work (2%) and p5 recall +0.1 at the uniform "
                    "point nearest 0.95",
                    "policy": kind,
                    "reached": bool(reached),
                    **_brief(second),
                }
            )
    return checks


def _brief(point: dict) -> dict:
    keys = (
        "recall",
        "p5_recall",
        "tail_band_recall",
        "distance_computations",
        "qps",
        "work_ratio",
        "qps_ratio",
        "recall_change",
        "p5_change",
        "tail_band_change",
    )
    return {key: point.get(key) for key in keys}


def plot(results: dict, path: Path) -> None:
    """Recall, p5 and tail-band recall against work (faiss) and against QPS (both engines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    metrics = (
        ("recall", "mean recall@10"),
        ("p5_recall", "p5 per-query recall@10"),
        ("tail", "tail-band recall@10"),
    )
    styles = {
        "uniform": ("k", "o-"),
        "learned": ("tab:blue", "s-"),
        "threshold": ("tab:orange", "^-"),
        "oracle": ("tab:green", "d--"),
    }
    rows = [
        ("faiss", "distance_computations", "distance computations per query (faiss)"),
        ("faiss", "qps", "QPS (faiss, 1 thread)"),
    ]
    if "hnsw" in results["engines"]:
        rows.append(("hnsw", "qps", "QPS (hnswlib, 1 thread)"))
    figure, axes = plt.subplots(len(rows), 3, figsize=(16, 4.2 * len(rows)), squeeze=False)
    for row, (engine, x_key, x_label) in enumerate(rows):
        frontiers = results["engines"][engine]["frontiers"]
        for column, (metric, y_label) in enumerate(metrics):
            axis = axes[row][column]
            for kind, points in frontiers.items():
                points = [
                    p
                    for p in points
                    if p["setting"].get("goal", "").startswith("recall")
                    or kind in ("uniform", "oracle")
                ]
                xs = [p[x_key] for p in points]
                ys = [
                    (p["slices"].get("tail", {}).get("recall") if metric == "tail" else p[metric])
                    for p in points
                ]
                # in setting order (effort or calibration goal ascending), not sorted by x:
                # QPS is measured once per point and is noisy
                pairs = [
                    (x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None
                ]
                if not pairs:
                    continue
                color, style = styles.get(kind, ("grey", ".-"))
                label = "oracle (uses ground truth)" if kind == "oracle" else kind
                axis.plot(
                    [p[0] for p in pairs],
                    [p[1] for p in pairs],
                    style,
                    color=color,
                    label=label,
                    markersize=4,
                )
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.set_xlabel(x_label)
            axis.set_ylabel(y_label)
            axis.set_ylim(max(0.0, axis.get_ylim()[0]), 1.005)
            axis.grid(alpha=0.3)
            if row == 0 and column == 0:
                axis.legend(fontsize=8)
    figure.suptitle(
        f"{results['dataset']}: adaptive effort vs uniform, cross-fitted "
        f"({results['folds']} folds), recall@{K}"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)


def main() -> None:
    arguments = parser(__doc__, dataset=True, workdir=CACHE, output="adaptive_benchmark.json")
    arguments.add_argument(
        "--queries", type=int, default=None, help="use a seeded sample of N queries"
    )
    arguments.add_argument("--folds", type=int, default=5)
    arguments.add_argument("--target", type=float, default=0.99)
    arguments.add_argument("--no-hnswlib", action="store_true")
    arguments.add_argument("--plot", type=Path, default=RESULTS / "adaptive-frontier.png")
    arguments.add_argument(
        "--plot-only", action="store_true", help="redraw the plot from --output without measuring"
    )
    args = arguments.parse_args()
    if args.plot_only:
        plot(json.loads(args.output.read_text()), args.plot)
        return
    dataset = subset(open_dataset(str(dataset_file(args.dataset))), args.queries)
    truth, _, _ = cached_true_distances(args.workdir, dataset, K)
    results: dict = {
        "dataset": dataset.name,
        "queries": dataset.n_queries,
        "k": K,
        "folds": args.folds,
        "machine": machine(),
        "engines": {},
        "command": " ".join(sys.argv),
    }
    engines = [FAISS] + ([] if args.no_hnswlib else [HNSWLIB])
    for name, params in engines:
        results["engines"][name] = run_engine(
            name, params, dataset, truth, args.workdir, args.folds, args.target
        )
    results["targets"] = target_checks(results["engines"]["faiss"])
    write_figures(args.output, results, indent=1)
    plot(results, args.plot)
    for name, result in results["engines"].items():
        print(f"\n{name} {result['index']['build_params']} - {result['mode']}")
        for entry in result["comparisons"]:
            room = entry.get("room")
            if room:
                print(
                    f"  ~{entry['operating_point']:<5g} room (ground truth): oracle "
                    f"{room['oracle_work_ratio']:.2f}x, best restart policy "
                    f"{room['two_stage_oracle_work_ratio']:.2f}x ({room['work_unit']})"
                )
            for label, point in entry.items():
                if label in ("operating_point", "room"):
                    continue
                work = point["distance_computations"]
                ratio = point.get("work_ratio")
                ratio_text = "" if ratio is None else f" ({ratio:.2f}x)"
                print(
                    f"  ~{entry['operating_point']:<5g} {label:28s} {point['setting']}: "
                    f"recall {point['recall']:.4f} p5 {point['p5_recall']:.2f} tail "
                    f"{point['tail_band_recall'] or 0:.4f} work "
                    f"{'-' if work is None else f'{work:,.0f}'}"
                    f"{ratio_text} qps {point['qps']:,.0f}"
                )
        oracle = result["frontiers"]["oracle"]
        for point in oracle:
            work = point["distance_computations"]
            print(
                f"  oracle per-query target {point['setting']['per_query_target']}: recall "
                f"{point['recall']:.4f} p5 {point['p5_recall']:.2f} work "
                f"{'-' if work is None else f'{work:,.0f}'} qps {point['qps']:,.0f}"
            )
    print()
    for check in results["targets"]:
        print(
            f"{'REACHED' if check['reached'] else 'MISSED '} [{check['policy']}] "
            f"{check['target']}: work x{check['work_ratio']}, recall change "
            f"{check['recall_change']:+.4f}, p5 change {check['p5_change']:+.2f}, tail-band "
            f"change {check['tail_band_change']}"
        )
    print(f"\nwrote {args.output} and {args.plot}")


if __name__ == "__main__":
    main()
