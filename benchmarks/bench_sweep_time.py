"""Issue-11 item 11: wall time of annkit's sweep of ann-benchmarks' words-100k grid.

    flock /tmp/annkit-bench.lock python benchmarks/bench_sweep_time.py \
        [--dataset ../shared/data/words-minilm-384-angular.hdf5] [--threads 2]

The grid is the 14 settings of ann-benchmarks' ``--local`` run that the issue timed (hnsw
M=16 ef 10..160; annoy 50 trees search_k 1k/5k/20k; IVF-PQ nlist 1024 with 4-bit codes,
nprobe 4/16/64 with and without re-rank) plus ``flat``; single-query mode, at most 3 timed
runs (stopping once the two fastest agree within annkit's default QPS tolerance), k=10.

1. cold: ``python -m annkit bench`` into a fresh results root (empty index cache);
2. warm: the same root, a new results folder, a changed query grid: it must rebuild
   nothing (asserted from the command's build counts and every record's ``cached``).

ann-benchmarks cannot be installed here (it is not on PyPI and needs docker), so it is not
timed: the cold wall time is compared with the figure the issue reports for ann-benchmarks
on this grid (6.5-7.2 min, another machine-day), as a ratio "vs the reported figure", not
as a same-machine measurement. Writes results/sweep_time.json (atomically), keeping the wall
times of the runs already in it under ``earlier_runs``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, dataset_file, machine, parser, run_bench, utc_now, write_figures

from annkit.evaluate import DEFAULT_QPS_TOLERANCE, TIMING_SAMPLE

#: ann-benchmarks' wall time on this grid (without flat) as reported in issue 11, minutes
REPORTED_ANN_BENCHMARKS_MIN = (6.5, 7.2)
TARGET_RATIO = 0.7

HEADER = """\
[bench]
dataset = "{dataset}"
k = 10
runs = 3
mode = "single"
timeout = 3600
"""

COLD_GRID = """
[[engine]]
name = "hnsw"
build = { M = 16, ef_construction = 200 }
query = { ef = [10, 20, 40, 80, 160] }

[[engine]]
name = "annoy"
build = { n_trees = 50 }
query = { search_k = [1000, 5000, 20000] }

[[engine]]
name = "ivfpq"
build = { nlist = 1024, nbits = 4 }
query = { nprobe = [4, 16, 64], rerank = [0, 10] }

[[engine]]
name = "flat"
"""

#: the warm rerun: the same builds, a different query grid
WARM_GRID = """
[[engine]]
name = "hnsw"
build = { M = 16, ef_construction = 200 }
query = { ef = [12, 30, 120] }

[[engine]]
name = "annoy"
build = { n_trees = 50 }
query = { search_k = [2000, 10000] }

[[engine]]
name = "ivfpq"
build = { nlist = 1024, nbits = 4 }
query = { nprobe = [8, 32], rerank = [0, 10] }

[[engine]]
name = "flat"
"""


def sweep_into(sweep: Path, root: Path, name: str, threads: int) -> tuple[float, dict]:
    """Wall seconds and JSON output of ``python -m annkit bench SWEEP`` into root/name."""
    return run_bench(str(sweep), "-o", name, "--results-root", str(root), "--threads", str(threads))


def read_records(folder: Path) -> list[dict]:
    with open(folder / "runs.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def setting_rows(records: list[dict]) -> list[dict]:
    """Recall and QPS with its spread per setting, in the sweep's order."""
    return [
        {
            "engine": record["engine"],
            "build_params": record["build_params"],
            "query_params": record["query_params"],
            "status": record["status"],
            "recall": record.get("recall"),
            "qps": record.get("qps"),
            "qps_min": record.get("qps_min"),
            "qps_median": record.get("qps_median"),
            "qps_max": record.get("qps_max"),
            "runs": record.get("runs"),
            "timed_queries": record.get("timed_queries"),
            "queries": record.get("queries"),
            "cached": record.get("cached"),
            "build_seconds": record.get("build_seconds"),
            "search_seconds_all_runs": None
            if not record.get("qps_runs")
            else sum(record["timed_queries"] / qps for qps in record["qps_runs"]),
        }
        for record in records
    ]


def earlier_runs(path: Path) -> list[dict]:
    """Wall times of the runs already in ``path`` (kept so repeats can be compared)."""
    if not path.is_file():
        return []
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return []
    keys = ("measured_at", "cold_seconds", "warm_seconds", "cold_vs_reported_figure")
    return [*previous.get("earlier_runs", []), {key: previous.get(key) for key in keys}]


def main() -> None:
    args = parser(__doc__, dataset=True, threads=2, output="sweep_time.json").parse_args()
    dataset = dataset_file(args.dataset)

    with tempfile.TemporaryDirectory(prefix="annkit-sweep-time-") as scratch:
        work = Path(scratch)
        cold_sweep, warm_sweep = work / "cold.toml", work / "warm.toml"
        cold_sweep.write_text(HEADER.format(dataset=dataset) + COLD_GRID, encoding="utf-8")
        warm_sweep.write_text(HEADER.format(dataset=dataset) + WARM_GRID, encoding="utf-8")
        root = work / "results"
        print("cold sweep (empty cache) ...", file=sys.stderr)
        cold_seconds, cold_out = sweep_into(cold_sweep, root, "cold", args.threads)
        print(f"cold: {cold_seconds:.1f} s; warm rerun, changed query grid ...", file=sys.stderr)
        warm_seconds, warm_out = sweep_into(warm_sweep, root, "warm", args.threads)
        cold_rows = setting_rows(read_records(root / "cold"))
        warm_rows = setting_rows(read_records(root / "warm"))

    cold_sweep_out, warm_sweep_out = cold_out["sweep"], warm_out["sweep"]
    rebuilt = warm_sweep_out["builds"] - warm_sweep_out["cached_builds"]
    not_cached = [row for row in warm_rows if row["cached"] is not True]
    assert rebuilt == 0 and not not_cached, f"warm rerun rebuilt {rebuilt} indexes"
    low, high = (minutes * 60 for minutes in REPORTED_ANN_BENCHMARKS_MIN)
    result = {
        "benchmark": "issue 11 item 11: sweep wall time, ann-benchmarks' words-100k grid",
        "command": "flock /tmp/annkit-bench.lock python benchmarks/bench_sweep_time.py",
        "dataset": str(dataset.relative_to(ROOT.parent))
        if dataset.is_relative_to(ROOT.parent)
        else str(dataset),
        "grid": COLD_GRID.strip(),
        "warm_grid": WARM_GRID.strip(),
        "mode": "single",
        "k": 10,
        "max_runs": 3,
        "qps_tolerance": DEFAULT_QPS_TOLERANCE,
        "flat_timed_queries": TIMING_SAMPLE,
        "build_threads": args.threads,
        "settings": len(cold_rows),
        "cold_seconds": cold_seconds,
        "cold_builds": cold_sweep_out["builds"],
        "cold_cached_builds": cold_sweep_out["cached_builds"],
        "warm_seconds": warm_seconds,
        "warm_settings": len(warm_rows),
        "warm_builds": warm_sweep_out["builds"],
        "warm_rebuilt": rebuilt,
        "ann_benchmarks": {
            "measured_here": False,
            "why": "ann-benchmarks is not on PyPI and needs docker; neither is available here",
            "reported_minutes": list(REPORTED_ANN_BENCHMARKS_MIN),
            "reported_by": "issue 11 item 11 (same grid without flat, another machine-day)",
        },
        "cold_vs_reported_figure": [cold_seconds / high, cold_seconds / low],
        "target_vs_reported_figure": TARGET_RATIO,
        "measured_at": utc_now(),
        "machine": machine(),
        "cold_runs": cold_rows,
        "warm_runs": warm_rows,
    }
    result["earlier_runs"] = earlier_runs(args.output)
    write_figures(args.output, result)
    ratio_low, ratio_high = result["cold_vs_reported_figure"]
    print(
        f"cold sweep {cold_seconds / 60:.2f} min ({len(cold_rows)} settings), "
        f"{ratio_low:.2f}-{ratio_high:.2f}x the reported ann-benchmarks figure "
        f"({REPORTED_ANN_BENCHMARKS_MIN[0]}-{REPORTED_ANN_BENCHMARKS_MIN[1]} min, not "
        f"measured here); warm rerun with a changed query grid {warm_seconds / 60:.2f} min, "
        f"{rebuilt} indexes rebuilt"
    )
    for row in cold_rows:
        spread = (
            f"{row['qps']:,.0f} ({row['qps_min']:,.0f}-{row['qps_max']:,.0f}, {row['runs']} runs)"
            if row["qps_min"] is not None
            else str(row["qps"])
        )
        print(
            f"  {row['engine']:6} {row['build_params']} {row['query_params']}: recall "
            f"{row['recall']:.4f}, QPS {spread}, timed {row['timed_queries']}"
        )


if __name__ == "__main__":
    main()
