"""Issue-3 performance figures for ``annkit bench``, measured in one run on one machine.

    python benchmarks/bench_sweep.py [--dataset ../shared/data/words-minilm-384-angular.hdf5]
                                     [--grid grid.toml] [--sweep sweep.toml] [--parts a,b]

a. the default sweep (or --sweep) on the bundled words-10k, run three times into a fresh
   results root with the real command (``python -m annkit bench``): cold (nothing cached),
   the same command again (a resume: every setting already stored), and into a new results
   folder (indexes and ground truth cached, every query setting measured again). Targets:
   cold under 5 minutes, the rerun under 10% of the cold run.
b. on --dataset (default words-10k) with the --grid sweep (default GRID below; its dataset
   is replaced by --dataset): total wall time of ``annkit bench`` (each index built once,
   cold cache) vs a naive loop that builds the index again for every (build, query) pair
   with the same library calls (build_index + evaluate; exact truth and query profile
   computed once for both, so the difference is the rebuilding). Reports naive / bench.

Writes results/bench_sweep.json (atomically) and prints a summary.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from common import dataset_file, machine, parser, run_bench, utc_now, write_figures

from annkit.bench.spec import DEFAULT_SWEEP, load_sweep, parse_sweep

GRID = """\
[bench]
k = 10
runs = 1

[[engine]]
name = "hnsw"
build = { M = 16, ef_construction = 200 }
query = { ef = [10, 20, 40, 80, 160] }

[[engine]]
name = "ivfpq"
query = { nprobe = [4, 16, 64], rerank = 10 }

[[engine]]
name = "flat"
"""


def part_a(sweep: Path, workdir: Path, threads: int) -> dict:
    root = workdir / "a"
    common = ["--results-root", str(root), "--threads", str(threads)]
    cold, cold_out = run_bench(str(sweep), "-o", "first", *common)
    resumed, resumed_out = run_bench(str(sweep), "-o", "first", *common)
    cached, cached_out = run_bench(str(sweep), "-o", "second", *common)
    return {
        "settings": cold_out["runs"]["total"],
        "failed": cold_out["runs"]["failed"] + cold_out["runs"]["timeout"],
        "cold_seconds": cold,
        "rerun_same_folder_seconds": resumed,
        "rerun_same_folder_ratio": resumed / cold,
        "rerun_same_folder_skipped": resumed_out["sweep"]["skipped"],
        "rerun_new_folder_seconds": cached,
        "rerun_new_folder_ratio": cached / cold,
        "rerun_new_folder_cached_builds": cached_out["sweep"]["cached_builds"],
        "target_cold_under_300s": cold < 300,
        "target_rerun_under_10_percent": resumed / cold < 0.10,
    }


def naive_loop(grid_text: str, dataset_spec: str, threads: int) -> tuple[float, list[dict]]:
    """Build the index again for every (build, query) pair; returns (seconds, recalls)."""
    from annkit.bundle import Bundle, build_index, fingerprint_vectors
    from annkit.evaluate import evaluate, true_neighbor_distances
    from annkit.slices import build_profile
    from annkit.sources import open_dataset

    start = time.perf_counter()
    spec = parse_sweep(grid_text, "grid").with_dataset(dataset_spec)
    dataset = open_dataset(**spec.dataset_kwargs())
    truth = true_neighbor_distances(dataset, spec.k)
    profile = build_profile(dataset, truth, spec.k)
    fingerprint = fingerprint_vectors(dataset.base)
    measured = []
    for build in spec.builds:
        for query in build.queries:
            engine, seconds = build_index(
                build.engine, dataset.base, dataset.metric, build.params, threads
            )
            manifest = {
                "dim": engine.dim,
                "count": engine.count,
                "metric": engine.metric,
                "dataset_fingerprint": fingerprint,
                "files": {},
                "build_params": engine.built_params(),
                "build_seconds": seconds,
            }
            bundle = Bundle(path=Path("<memory>"), manifest=manifest, engine=engine)
            evaluation = evaluate(
                bundle,
                dataset,
                spec.k,
                query.params,
                mode=spec.mode,
                runs=spec.runs,
                true_distances=truth,
                profile=profile,
            )
            measured.append(
                {
                    "engine": build.engine,
                    "query_params": evaluation.query_params,
                    "recall": evaluation.recall,
                }
            )
            del bundle, engine
    return time.perf_counter() - start, measured


def part_b(grid: Path | None, dataset_spec: str, workdir: Path, threads: int) -> dict:
    grid_text = grid.read_text(encoding="utf-8") if grid else GRID
    grid_file = workdir / "grid.toml"
    grid_file.write_text(grid_text, encoding="utf-8")
    spec = parse_sweep(grid_text, "grid")
    bench_seconds, bench_out = run_bench(
        str(grid_file),
        "--dataset",
        dataset_spec,
        "-o",
        "b",
        "--results-root",
        str(workdir / "b"),
        "--threads",
        str(threads),
    )
    naive_seconds, naive = naive_loop(grid_text, dataset_spec, threads)
    records = [
        json.loads(line) for line in (workdir / "b" / "b" / "runs.jsonl").read_text().splitlines()
    ]
    bench_recalls = sorted(
        (r["engine"], json.dumps(r["query_params"], sort_keys=True), r["recall"]) for r in records
    )
    naive_recalls = sorted(
        (m["engine"], json.dumps(m["query_params"], sort_keys=True), m["recall"]) for m in naive
    )
    return {
        "dataset": dataset_spec,
        "grid": grid_text,
        "builds": len(spec.builds),
        "pairs": spec.n_runs,
        "bench_seconds": bench_seconds,
        "naive_seconds": naive_seconds,
        "naive_over_bench": naive_seconds / bench_seconds,
        "bench_failed": bench_out["runs"]["failed"] + bench_out["runs"]["timeout"],
        "max_recall_difference": max(
            (abs(a[2] - b[2]) for a, b in zip(bench_recalls, naive_recalls, strict=True)),
            default=0.0,
        ),
    }


def main() -> None:
    arguments = parser(__doc__, threads=os.cpu_count() or 1, output="bench_sweep.json")
    arguments.add_argument(
        "--sweep",
        type=Path,
        default=None,
        help="sweep for part a (default: the built-in default sweep)",
    )
    arguments.add_argument(
        "--dataset", default="words-10k", help="dataset for part b: words-10k or a file"
    )
    arguments.add_argument("--grid", type=Path, default=None, help="sweep TOML for part b")
    arguments.add_argument("--parts", default="a,b", help="which parts to run: a, b or a,b")
    options = arguments.parse_args()
    parts = {part.strip() for part in options.parts.split(",")}
    dataset_spec = options.dataset
    if dataset_spec != "words-10k" and "b" in parts:
        dataset_spec = str(dataset_file(dataset_spec))
    figures: dict = {
        "machine": machine(),
        "threads": options.threads,
        "measured_at": utc_now(),
    }
    with tempfile.TemporaryDirectory(prefix="annkit-bench-sweep-") as tmp:
        workdir = Path(tmp)
        if "a" in parts:
            sweep = options.sweep
            if sweep is None:
                sweep = workdir / "default.toml"
                sweep.write_text(DEFAULT_SWEEP, encoding="utf-8")
            load_sweep(sweep)  # fail early on a bad file
            figures["default_sweep" if options.sweep is None else "sweep"] = part_a(
                sweep.resolve(), workdir, options.threads
            )
        if "b" in parts:
            figures["bench_vs_naive"] = part_b(options.grid, dataset_spec, workdir, options.threads)
    write_figures(options.output, figures)
    a = figures.get("default_sweep") or figures.get("sweep")
    if a:
        print(
            f"a. {a['settings']} settings: cold {a['cold_seconds']:.1f}s; same command "
            f"again {a['rerun_same_folder_seconds']:.1f}s "
            f"({100 * a['rerun_same_folder_ratio']:.1f}% of cold); new folder with cached "
            f"indexes {a['rerun_new_folder_seconds']:.1f}s "
            f"({100 * a['rerun_new_folder_ratio']:.1f}%)"
        )
    b = figures.get("bench_vs_naive")
    if b:
        print(
            f"b. {b['dataset']}: {b['pairs']} (build, query) pairs over {b['builds']} builds: "
            f"annkit bench {b['bench_seconds']:.1f}s, naive rebuild loop "
            f"{b['naive_seconds']:.1f}s: {b['naive_over_bench']:.2f}x "
            f"(max recall difference {b['max_recall_difference']:.4f})"
        )
    print(f"figures: {options.output}")


if __name__ == "__main__":
    main()
