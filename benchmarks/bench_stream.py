"""Streaming on words-100k: a sliding window (insert the newest rows, delete the oldest) run
through ``annkit stream`` for hnswlib, faiss IVF and usearch, each with fresh builds measured
beside the live index, to answer "when should I rebuild?".

    flock /tmp/annkit-bench.lock python benchmarks/bench_stream.py

1. ``annkit stream make-runbook sliding-window`` over words-100k: a window of half the rows
   (50,000), 12 search steps (35 steps; max_pts 54,545).
2. hnswlib without fresh builds and with a cold truth cache: the wall time of the whole
   stream, exact truth of every search step included (target: a 20-step runbook over 100k
   vectors in under 10 minutes on 2 cores).
3. each engine with ``--rebuild-every 2`` (a fresh build over the live set at every second
   search step) on a seeded sample of 1,000 queries (``--max-queries``; their truth is
   computed once, by the first engine, and cached for the others): recall (mean, p5), distance
   computations and QPS of the live index and of the fresh build at each search step, and
   the first step where the live index drifted past the fresh build (recall 0.01 lower, or
   5% more work that buys no recall).

Builds and inserts use one thread (deterministic); each search is one batch on one thread.
Writes results/stream_words100k.json (atomically) and the plot beside it
(results/stream_words100k.png).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import dataset_file, machine, parser, run_annkit, write_figures

ENGINES: list[tuple[str, list[str]]] = [
    ("hnsw", ["-p", "M=16", "-p", "ef_construction=100", "-p", "ef=64"]),
    ("faiss", ["-p", "factory=IVF256,Flat", "-p", "nprobe=16"]),
    ("usearch", ["-p", "connectivity=16", "-p", "expansion_search=64"]),
]
SEARCHES = 12
REBUILD_EVERY = 2
#: queries (a seeded sample) of the runs with fresh builds
REBUILD_QUERIES = 1000


def compact(report: dict[str, Any]) -> dict[str, Any]:
    """The report's settings, summary and search steps (the change steps only counted)."""
    keep = ("recall", "p5_recall", "distance_computations", "qps", "index_bytes", "short_results")
    steps = []
    for step in report["steps"]:
        if step["operation"] != "search":
            continue
        row = {"step": step["step"], "live": step["live"], "truth_seconds": step["truth_seconds"]}
        row.update({key: step.get(key) for key in keep})
        row["tail_recall"] = (step.get("slices") or {}).get("tail", {}).get("recall")
        fresh = step.get("fresh")
        row["fresh"] = (
            None if fresh is None else {key: fresh.get(key) for key in (*keep, "build_seconds")}
        )
        steps.append(row)
    settings = {
        key: report[key] for key in ("engine", "build_params", "query_params", "k", "queries")
    }
    return {**settings, "summary": report["summary"], "search_steps": steps}


def main() -> None:
    options = parser(__doc__, output="stream_words100k.json", dataset=True).parse_args()
    data = dataset_file(options.dataset)
    work = Path(tempfile.mkdtemp(prefix="annkit-stream-bench-"))
    runbook = work / "window.yaml"
    run_annkit(
        "stream", "make-runbook", "sliding-window", str(data), "-o", str(runbook),
        "--searches", str(SEARCHES),
    )  # fmt: skip
    figures: dict[str, Any] = {
        "dataset": data.name,
        "runbook": {"shape": "sliding-window", "window": "half the rows", "searches": SEARCHES},
        "machine_before": machine(),
    }
    base = ["stream", str(runbook), str(data), "--threads", "1", "--runs", "2", "-q", "--json"]
    truth = work / "truth"

    name, params = ENGINES[0]
    seconds, stdout = run_annkit(*base, "-e", name, *params, "-o", str(work / "plain"),
                                 "--cache-dir", str(truth))  # fmt: skip
    plain = json.loads(stdout)
    figures["timing"] = {
        "engine": name,
        "steps": len(plain["steps"]),
        "search_steps": plain["summary"]["search_steps"],
        "wall_seconds": seconds,
        "truth_seconds": sum(step.get("truth_seconds") or 0 for step in plain["steps"]),
        "change_seconds": sum(
            step["seconds"] for step in plain["steps"] if step["operation"] != "search"
        ),
    }
    print(f"{name}: {len(plain['steps'])} steps in {seconds:.0f} s", file=sys.stderr)

    streams = []
    folders = []
    for name, params in ENGINES:
        folder = work / f"{name}-rebuild"
        started = time.perf_counter()
        _, stdout = run_annkit(
            *base,
            "--max-queries",
            str(REBUILD_QUERIES), "-e", name, *params, "-o", str(folder), "--cache-dir", str(truth),
            "--rebuild-every", str(REBUILD_EVERY),
        )  # fmt: skip
        report = json.loads(stdout)
        entry = compact(report)
        entry["wall_seconds"] = time.perf_counter() - started
        streams.append(entry)
        folders.append(str(folder))
        summary = report["summary"]
        print(
            f"{name}: mean recall {summary['mean_recall']:.4f}, drift {summary['drift']}",
            file=sys.stderr,
        )
    figures["streams"] = streams
    png = Path(options.output).with_suffix(".png")
    title = f"{data.stem}: a sliding window over half the rows (fresh builds hollow)"
    run_annkit("stream", "plot", *folders, "-o", str(png), "--title", title)
    figures["plot"] = png.name
    figures["command"] = "flock /tmp/annkit-bench.lock python benchmarks/bench_stream.py"
    write_figures(options.output, figures)
    print(options.output)


if __name__ == "__main__":
    main()
