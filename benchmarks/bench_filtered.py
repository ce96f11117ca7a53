"""Filtered recall per selectivity band: engine x setting x strategy (native, post, subset,
auto, and acorn on HNSW graphs), each band's recall, p5 and distance computations per
query, and the planner's choices; then the issue's targets: auto >= 0.95 recall@10 in
every band, auto's mean work no more than the best single strategy reaching the same
recall, and (at 1M) <= 0.5x subset's work; and acorn against faiss' own selector (native) per band.

Work is distance computations (deterministic: the same on every run); QPS is shown but is
the shared machine's. Datasets: the bundled words-10k-labelled and, when given, a larger
labelled file from datasets/make_words_labelled.py (--mode 100k or 1m):

    python benchmarks/bench_filtered.py                                   # 10k only
    python benchmarks/bench_filtered.py --extra results/.cache/words-100k-labelled.hdf5

Writes results/filtered.json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common import RESULTS, parser, write_figures

from annkit.bundle import build_bundle, load_bundle
from annkit.evaluate import Measure, Truth, measure_setting
from annkit.filtering import SELECTIVITY_BAND_NAMES
from annkit.io import load_dataset

STRATEGIES = ("native", "post", "subset", "auto")
#: (engine, build params, effort parameter, values, more strategies): faiss counts its work
#: exactly; annkit's acorn traversal reads HNSW graphs over flat vectors only
INDEXES: tuple[tuple[str, dict[str, Any], str, tuple[int, ...], tuple[str, ...]], ...] = (
    ("faiss", {"factory": "HNSW16,Flat"}, "efSearch", (16, 32, 64, 128, 256), ("acorn",)),
    ("faiss", {"factory": "IVF256,Flat"}, "nprobe", (8, 32), ()),
)
TARGET = 0.95


def measure(data: str | Path, workdir: Path, threads: int) -> dict[str, Any]:
    """Every (index, effort, strategy) on one labelled dataset: per band recall and work."""
    dataset = load_dataset(data)
    truth = Truth(dataset, 10)
    rows = []
    for engine, build, param, values, more in INDEXES:
        name = f"{engine}-{'-'.join(str(v) for v in build.values())}".replace(",", "_")
        index = workdir / f"{dataset.name}-{name}"
        if not index.exists():
            build_bundle(data, engine, index, params=build, threads=threads)
        bundle = load_bundle(index)
        for strategy in more:  # compiled on first use: not inside a timed run
            warm = Measure(k=10, runs=1, filter_strategy=strategy)
            measure_setting(bundle, dataset, warm, {param: values[0]}, truth=truth)
        for value in values:
            for strategy in (*STRATEGIES, *more):
                started = time.perf_counter()
                evaluation = measure_setting(
                    bundle,
                    dataset,
                    Measure(k=10, runs=1, filter_strategy=strategy),
                    {param: value},
                    truth=truth,
                )
                bands = {
                    band: {
                        "queries": entry.queries,
                        "recall": entry.recall,
                        "p5": entry.p5_recall,
                        "work": None if entry.work is None else entry.work.mean,
                    }
                    for band, entry in evaluation.slices.items()
                    if band in SELECTIVITY_BAND_NAMES
                }
                rows.append(
                    {
                        "index": f"{engine} {build}",
                        "setting": {param: value},
                        "strategy": strategy,
                        "recall": evaluation.recall,
                        "work": evaluation.distance_computations,
                        "qps": evaluation.qps,
                        "short_results": evaluation.short_results,
                        "plan": evaluation.filter_plan,
                        "bands": bands,
                        "seconds": time.perf_counter() - started,
                    }
                )
                print(
                    f"{dataset.name} {engine} {build} {param}={value} {strategy}: recall "
                    f"{evaluation.recall:.4f} work {evaluation.distance_computations:,.0f} "
                    + " ".join(f"{b}={v['recall']:.3f}" for b, v in bands.items()),
                    flush=True,
                )
    return {"dataset": dataset.name, "n_base": dataset.n_base, "rows": rows}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per index and setting: does auto reach TARGET in every filtered band, and is its mean
    work no more than the cheapest single strategy whose recall is at least auto's?"""
    out = []
    rows = result["rows"]
    for key in dict.fromkeys((r["index"], str(r["setting"])) for r in rows):
        group = {r["strategy"]: r for r in rows if (r["index"], str(r["setting"])) == key}
        auto = group["auto"]
        filtered_bands = [b for b in auto["bands"] if b != "unfiltered"]
        every_band = all(auto["bands"][b]["recall"] >= TARGET for b in filtered_bands)
        rivals = [
            r for name, r in group.items() if name != "auto" and r["recall"] >= auto["recall"]
        ]
        best = min(rivals, key=lambda r: r["work"]) if rivals else None
        subset = group["subset"]
        out.append(
            {
                "index": key[0],
                "setting": key[1],
                "auto_recall": auto["recall"],
                "auto_work": auto["work"],
                "auto_every_band_at_least_0.95": every_band,
                "worst_band": min(
                    ((b, auto["bands"][b]["recall"]) for b in filtered_bands),
                    key=lambda item: item[1],
                ),
                "best_single_at_auto_recall": None
                if best is None
                else {"strategy": best["strategy"], "work": best["work"]},
                "auto_work_le_best_single": best is None or auto["work"] <= best["work"],
                "auto_work_over_subset": auto["work"] / subset["work"],
            }
        )
    return out


def acorn_against_native(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per setting where both ran and per filtered band: acorn's and native's recall, and
    acorn's work over native's (faiss' selector evaluates failing nodes too)."""
    out = []
    rows = result["rows"]
    for key in dict.fromkeys((r["index"], str(r["setting"])) for r in rows):
        group = {r["strategy"]: r for r in rows if (r["index"], str(r["setting"])) == key}
        if "acorn" not in group:
            continue
        acorn, native = group["acorn"], group["native"]
        bands = {
            band: {
                "queries": entry["queries"],
                "acorn_recall": entry["recall"],
                "native_recall": native["bands"][band]["recall"],
                "work_ratio": entry["work"] / native["bands"][band]["work"]
                if entry["work"] and native["bands"][band]["work"]
                else None,
            }
            for band, entry in acorn["bands"].items()
            if band != "unfiltered"
        }
        out.append(
            {
                "index": key[0],
                "setting": key[1],
                "acorn_recall": acorn["recall"],
                "native_recall": native["recall"],
                "work_ratio": acorn["work"] / native["work"],
                "qps_ratio": acorn["qps"] / native["qps"] if native["qps"] else None,
                "bands": bands,
            }
        )
    return out


def main() -> None:
    args = parser(__doc__, output="filtered.json", threads=1, workdir=True)
    args.add_argument("--extra", type=Path, action="append", default=[], help="more datasets")
    options = args.parse_args()
    workdir = options.workdir or RESULTS / ".cache" / "filtered"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for data in ["words-10k-labelled", *options.extra]:
        result = measure(data, workdir, options.threads)
        result["targets"] = targets(result)
        result["acorn_against_native"] = acorn_against_native(result)
        results.append(result)
    path = write_figures(options.output, {"datasets": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
