"""Issue-4 performance figures: what the long tail costs, measured in one run on one machine.

    python benchmarks/bench_longtail.py [--dataset ../shared/data/words-minilm-384-angular.hdf5]
                                        [--parts sweep,tune] [--workdir DIR]

sweep. ``annkit bench`` (the real command) with the SWEEP grid below on --dataset; from its
       runs.jsonl, per engine and per slice (all queries, the tail band, the hardest 10% by
       each hardness measure): the fastest setting reaching recall@10 >= 0.90 / 0.95, and how
       many times more QPS the slice costs than the average (QPS on all / QPS on the slice).
       Plots of the tail's and the hardest-10%-by-LID frontiers beside the overall ones go to
       results/longtail-<slice>.png, the recall curves (effort -> recall per slice) to the JSON.
tune.  ``annkit.tune`` for hnsw (M = 8, 16, 32) and ivfpq to recall@10 >= 0.95 on the tail,
       then an exhaustive scan of the same grids on the same cached indexes: evaluate runs
       used by tune vs the grid's, whether the chosen setting is the grid's, and the chosen
       setting's QPS vs the grid's best (both from the scan, so measured in one pass).

Writes results/longtail_benchmark.json (atomically) and prints a summary.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import (
    RESULTS,
    ROOT,
    dataset_file,
    machine,
    parser,
    run_annkit,
    utc_now,
    write_figures,
)

from annkit.bench.report import best_at, load_results, on_slice, usable

SLICES = ("all", "head", "torso", "tail", "hard-lid", "hard-rc", "hard-expansion", "hard-ood")
THRESHOLDS = (0.90, 0.95)
TARGET = 0.95
TUNE_SLICE = "tail"

SWEEP = """\
[bench]
k = 10
runs = 3

[[engine]]
name = "hnsw"
build = { M = 16, ef_construction = 200 }
query = { ef = [10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320] }

[[engine]]
name = "annoy"
build = { n_trees = 50 }
query = { search_k = [1000, 2000, 5000, 10000, 20000, 40000, 80000] }

[[engine]]
name = "ivfpq"
query = { nprobe = [2, 4, 8, 16, 32, 64, 128], rerank = 10 }

[[engine]]
name = "flat"
"""

TUNE_GRIDS = {
    "hnsw": ({"M": [8, 16, 32]}, [10, 20, 40, 80, 160, 320, 640], {}),
    "ivfpq": ({}, [1, 2, 4, 8, 16, 32, 64, 128, 256], {"rerank": 10}),
}


def effort_of(record: dict) -> object:
    params = record["query_params"]
    for name in ("ef", "search_k", "nprobe"):
        if name in params:
            return params[name]
    return None


def slice_costs(records: list[dict]) -> dict:
    """Per engine: per slice and threshold, the fastest setting reaching it, and the cost
    factor QPS(all) / QPS(slice)."""
    engines = list(dict.fromkeys(r["engine"] for r in records if usable(r)))
    table: dict = {}
    for engine in engines:
        runs = [r for r in records if r["engine"] == engine]
        rows: dict = {}
        for slice_name in SLICES:
            try:
                view = on_slice(runs, slice_name)
            except Exception:  # slice not recorded (e.g. no weights): leave it out
                continue
            rows[slice_name] = {}
            for threshold in THRESHOLDS:
                best = best_at(view, threshold)
                rows[slice_name][f"{threshold:.2f}"] = (
                    None
                    if best is None
                    else {"query_params": best.query_params, "recall": best.recall, "qps": best.qps}
                )
        for by_threshold in rows.values():
            for key, best in by_threshold.items():
                overall = rows["all"][key]
                if best is not None:
                    best["cost_vs_all"] = (
                        overall["qps"] / best["qps"] if overall is not None else None
                    )
        table[engine] = rows
    return table


def recall_curves(records: list[dict]) -> dict:
    """Per engine: effort, QPS and recall on each recorded slice, in sweep order."""
    curves: dict = {}
    for record in records:
        if not usable(record):
            continue
        slices = record.get("slices") or {}
        curves.setdefault(record["engine"], []).append(
            {
                "effort": effort_of(record),
                "qps": record["qps"],
                "all": record["recall"],
                **{name: slices[name]["recall"] for name in SLICES if name in slices},
            }
        )
    return curves


def part_sweep(dataset: str, workdir: Path) -> dict:
    sweep = workdir / "longtail.toml"
    sweep.write_text(SWEEP, encoding="utf-8")
    seconds, _ = run_annkit(
        "bench",
        str(sweep),
        "--dataset",
        dataset,
        "-o",
        "longtail",
        "--results-root",
        str(workdir / "results"),
        "-q",
        "--json",
    )
    folder = workdir / "results" / "longtail"
    records = [record.to_dict() for record in load_results(folder)[1]]
    plots = {}
    for slice_name in ("tail", "hard-lid"):
        target = RESULTS / f"longtail-{slice_name}.png"
        run_annkit("plot", str(folder), "--slice", slice_name, "-o", str(target))
        plots[slice_name] = str(target.relative_to(ROOT))
    return {
        "sweep": SWEEP,
        "seconds": seconds,
        "settings": len(records),
        "costs": slice_costs(records),
        "curves": recall_curves(records),
        "plots": plots,
    }


def part_tune(dataset_path: str, workdir: Path) -> dict:
    from annkit.bundle import fingerprint_vectors, load_bundle
    from annkit.cache import index_dir, index_key
    from annkit.engines.base import get_engine, resolve_params
    from annkit.evaluate import evaluate, true_neighbor_distances
    from annkit.io import load_dataset
    from annkit.slices import build_profile
    from annkit.tune import build_settings, exhaustive_choice, slice_recall, tune

    dataset = load_dataset(dataset_path)
    truth = true_neighbor_distances(dataset, 10)
    profile = build_profile(dataset, truth, 10)
    fingerprint = fingerprint_vectors(dataset.base)
    out: dict = {}
    for engine, (build_grid, effort_grid, fixed) in TUNE_GRIDS.items():
        cache = workdir / f"tune-{engine}"
        start = time.perf_counter()
        result = tune(
            dataset,
            engine,
            TARGET,
            TUNE_SLICE,
            build_grid,
            effort_grid,
            k=10,
            runs=3,
            cache_dir=cache,
            threads=2,
            query_params=fixed,
        )
        tune_seconds = time.perf_counter() - start
        param = result.param
        scan: list[dict] = []
        start = time.perf_counter()
        for given in build_settings(engine, build_grid):
            resolved = resolve_params(engine, get_engine(engine).build_specs, given, "build")
            bundle = load_bundle(
                index_dir(cache, index_key(fingerprint, engine, resolved, dataset.metric))
            )
            trace = {}
            for effort in effort_grid:
                evaluation = evaluate(
                    bundle,
                    dataset,
                    10,
                    {**fixed, param: effort},
                    runs=3,
                    true_distances=truth,
                    profile=profile,
                )
                trace[effort] = slice_recall(evaluation, TUNE_SLICE)
                scan.append(
                    {
                        "build_params": given,
                        "effort": effort,
                        "qps": evaluation.qps,
                        "slice_recall": trace[effort],
                    }
                )
            setting = next(
                s
                for s in result.settings
                if all(s.build_params.get(n) == v for n, v in given.items())
            )
            if setting.chosen != exhaustive_choice(trace, TARGET):
                raise SystemExit(
                    f"tune chose {param}={setting.chosen} for {given}, the scan "
                    f"{exhaustive_choice(trace, TARGET)}"
                )
        scan_seconds = time.perf_counter() - start
        meeting = [row for row in scan if row["slice_recall"] >= TARGET]
        grid_best = max(meeting, key=lambda row: row["qps"]) if meeting else None
        fastest = [s for s in result.settings if s.chosen is not None]
        chosen = max(fastest, key=lambda s: s.evaluation.qps) if fastest else None
        chosen_row = (
            None
            if chosen is None
            else next(
                row
                for row in scan
                if row["effort"] == chosen.chosen
                and all(chosen.build_params.get(n) == v for n, v in row["build_params"].items())
            )
        )
        out[engine] = {
            "target": TARGET,
            "slice": TUNE_SLICE,
            "build_grid": build_grid,
            "effort_grid": effort_grid,
            "fixed_query_params": fixed,
            "tune_runs": result.evaluations,
            "grid_runs": result.exhaustive,
            "tune_seconds": tune_seconds,
            "scan_seconds": scan_seconds,
            "chosen": None
            if chosen is None
            else {
                "build_params": chosen.build_params,
                param: chosen.chosen,
                "qps_in_tune": chosen.evaluation.qps,
                "qps_in_scan": chosen_row["qps"] if chosen_row else None,
            },
            "grid_best": grid_best,
            "chosen_qps_over_grid_best": (
                chosen_row["qps"] / grid_best["qps"] if chosen_row and grid_best else None
            ),
            "same_setting_as_grid_best": bool(
                chosen_row
                and grid_best
                and chosen_row["effort"] == grid_best["effort"]
                and chosen_row["build_params"] == grid_best["build_params"]
            ),
        }
    return out


def main() -> None:
    arguments = parser(__doc__, dataset=True, workdir=True, output="longtail_benchmark.json")
    arguments.add_argument("--parts", default="sweep,tune", help="sweep, tune or sweep,tune")
    options = arguments.parse_args()
    parts = {part.strip() for part in options.parts.split(",")}
    dataset = str(dataset_file(options.dataset))
    figures: dict = {
        "dataset": dataset,
        "machine": machine(),
        "measured_at": utc_now(),
    }
    with tempfile.TemporaryDirectory(prefix="annkit-longtail-") as tmp:
        workdir = options.workdir.resolve() if options.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if "sweep" in parts:
            figures["sweep"] = part_sweep(dataset, workdir)
        if "tune" in parts:
            figures["tune"] = part_tune(dataset, workdir)
    write_figures(options.output, figures)
    for engine, rows in figures.get("sweep", {}).get("costs", {}).items():
        for slice_name in ("all", "tail", "hard-lid"):
            best = rows.get(slice_name, {}).get(f"{TARGET:.2f}")
            text = (
                "not reached"
                if best is None
                else f"{best['qps']:,.0f} QPS at {best['query_params']} "
                f"(cost x{best['cost_vs_all'] or float('nan'):.2f})"
            )
            print(f"{engine:6s} recall@10 >= {TARGET} on {slice_name:9s}: {text}")
    for engine, tuned in figures.get("tune", {}).items():
        ratio = tuned["chosen_qps_over_grid_best"]
        print(
            f"tune {engine}: {tuned['tune_runs']} runs vs {tuned['grid_runs']} in the grid; "
            f"chosen {tuned['chosen']}; QPS vs grid best "
            f"{'n/a' if ratio is None else f'{ratio:.3f}'}"
        )
    print(f"figures: {options.output}")


if __name__ == "__main__":
    main()
