"""How trustworthy the CI regression gate (.ci/gate) is, measured on this machine.

    python benchmarks/bench_gate.py [--runs 20] [--output results/ci-gate.json]

1. determinism: each engine of benchmarks/ci-sweep.toml built twice with one thread and
   twice with two; are the neighbours of all 1,000 queries the same?
2. false alarms: .ci/gate run --runs times on the unchanged code (every run builds every
   index from scratch); each run must pass. Records the worst relative-QPS change and the
   largest recall change of each run against the baseline;
3. regressions it must catch, each from a real run of .ci/gate:
   - hnsw searching with half the ef it is given (a code change that loses recall),
   - annoy searching three times per query (a code change that costs speed),
   - the sweep edited to smaller ef values (baseline settings missing),
   - a baseline whose tail-slice recall of one setting is 0.02 higher (tail-only drop).
   The code changes are injected into the sweep's processes by a sitecustomize module on
   PYTHONPATH; nothing in the source tree is touched.

Writes results/ci-gate.json (atomically) and prints a summary.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, ROOT, machine, parser, write_figures

from annkit.bench.spec import load_sweep
from annkit.bundle import build_index
from annkit.sources import open_dataset

GATE = ROOT / ".ci" / "gate"
SWEEP = ROOT / "benchmarks" / "ci-sweep.toml"
BASELINE = RESULTS / "ci-baseline"

HALF_EF = """\
from annkit.engines.hnsw import HnswEngine

def _half_ef(self):
    if self._index is not None:
        self._index.set_ef(max(1, self.query["ef"] // 2))

HnswEngine._apply_query_params = _half_ef
"""

SLOW_ANNOY = """\
from annkit.engines.annoy import AnnoyEngine

_search = AnnoyEngine.search

def _slow_search(self, queries, k):
    for _ in range(2):
        _search(self, queries, k)
    return _search(self, queries, k)

AnnoyEngine.search = _slow_search
"""


def run_gate(*extra: str, env: dict | None = None, sweep_text: str | None = None) -> dict:
    """One run of .ci/gate --json: exit code, seconds and the comparison."""
    environment = {**os.environ, **(env or {})}
    started = time.perf_counter()
    if sweep_text is None:
        process = subprocess.run(
            ["bash", str(GATE), "--json", *extra],
            capture_output=True,
            text=True,
            env=environment,
            cwd=ROOT,
        )
    else:  # the same command as .ci/gate, on an edited copy of the sweep
        with tempfile.TemporaryDirectory() as work:
            sweep = Path(work) / "ci-sweep.toml"
            sweep.write_text(sweep_text)
            command = [
                sys.executable,
                "-m",
                "annkit",
                "bench",
                str(sweep),
                "-o",
                f"{work}/ci",
                "--results-root",
                work,
                "--threads",
                "1",
                "-q",
                "--baseline",
                str(BASELINE),
                "--max-qps-drop",
                "0.5",
                "--json",
                *extra,
            ]
            process = subprocess.run(
                command, capture_output=True, text=True, env=environment, cwd=ROOT
            )
    seconds = time.perf_counter() - started
    if not process.stdout.strip():
        raise RuntimeError(
            f"the gate printed nothing (exit {process.returncode}): {process.stderr.strip()}"
        )
    return {
        "exit_code": process.returncode,
        "seconds": seconds,
        "stderr": process.stderr.strip().splitlines()[-1:] or [""],
        "compare": json.loads(process.stdout)["compare"],
    }


def largest_recall_change(rows: list[dict]) -> float | None:
    """The largest absolute change of recall or tail recall over a comparison's rows."""
    changes = [
        abs(row[key]["change"])
        for row in rows
        for key in ("recall", "tail_recall")
        if row[key]["change"] is not None
    ]
    return round(max(changes), 6) if changes else None


def worst_changes(comparison: dict) -> dict:
    """The largest drop / change of one comparison's rows, and the rows it flagged."""
    rows = [row for row in comparison["rows"] if row["relative_qps"]["change"] is not None]
    worst = min(rows, key=lambda row: row["relative_qps"]["change"])
    return {
        "worst_qps_change": round(worst["relative_qps"]["change"], 4),
        "worst_qps_setting": worst["setting"],
        "best_qps_change": round(max(row["relative_qps"]["change"] for row in rows), 4),
        "largest_recall_change": largest_recall_change(rows),
        "machine_speed": round(comparison["machine_speed"] or 0.0, 3),
        "flagged": brief({"exit_code": 0, "stderr": [""], "compare": comparison})["flagged"],
    }


def brief(run: dict) -> dict:
    comparison = run["compare"]
    return {
        "exit_code": run["exit_code"],
        "stderr": run["stderr"][0],
        "verdict": comparison["verdict"],
        "flagged": [
            f"{row['setting']}: {row['verdict']}"
            + (f" ({'; '.join(row['problems'])})" if row["problems"] else "")
            for row in comparison["rows"]
            if row["verdict"] not in ("ok", "improved")
        ],
    }


def determinism() -> dict:
    """Per engine of the CI sweep and thread count: do two builds give the same results?"""
    spec = load_sweep(SWEEP)
    dataset = open_dataset(**spec.dataset_kwargs())
    out = {}
    for build in spec.builds:
        query = dict(build.queries[0].params)
        for threads in (1, 2):
            found = []
            for _ in range(2):
                engine, _ = build_index(
                    build.engine, dataset.base, dataset.metric, dict(build.params), threads
                )
                engine.set_query_params(**query)
                found.append(engine.search(dataset.queries, spec.k).ids)
            differing = int((found[0] != found[1]).any(axis=1).sum())
            out[f"{build.engine} threads={threads}"] = {
                "identical": bool(np.array_equal(found[0], found[1])),
                "queries_differing": differing,
            }
    return out


def main() -> int:
    args = parser(__doc__, runs=20, output="ci-gate.json").parse_args()

    print("determinism ...", file=sys.stderr)
    same = determinism()

    runs = []
    thresholds = None
    for number in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        run = run_gate()
        thresholds = run["compare"]["thresholds"]
        runs.append(
            {
                "exit_code": run["exit_code"],
                "seconds": round(run["seconds"], 1),
                "load_before": round(load, 2),
                **worst_changes(run["compare"]),
            }
        )
        print(
            f"run {number}: exit {run['exit_code']}, {run['seconds']:.1f}s, "
            f"worst QPS change {runs[-1]['worst_qps_change']:+.1%}",
            file=sys.stderr,
        )

    print("regression cases ...", file=sys.stderr)
    cases = {}
    with tempfile.TemporaryDirectory() as work:
        for name, code in (
            ("hnsw searches with half the ef", HALF_EF),
            ("annoy searches three times per query", SLOW_ANNOY),
        ):
            folder = Path(work) / name.replace(" ", "-")
            folder.mkdir()
            (folder / "sitecustomize.py").write_text(code)
            path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            )
            cases[name] = brief(run_gate(env={"PYTHONPATH": path}))
        smaller = SWEEP.read_text().replace("ef = [16, 32, 64]", "ef = [8, 16, 32]")
        cases["sweep edited to ef = [8, 16, 32]"] = brief(run_gate(sweep_text=smaller))
        doctored = Path(work) / "baseline"
        doctored.mkdir()
        records = [json.loads(line) for line in (BASELINE / "runs.jsonl").read_text().splitlines()]
        target = next(
            r
            for r in records
            if r["engine"] == "ivfpq" and r["query_params"] == {"nprobe": 16, "rerank": 10}
        )
        target["slices"]["tail"]["recall"] += 0.02
        (doctored / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (doctored / "meta.json").write_text((BASELINE / "meta.json").read_text())
        process = subprocess.run(
            [sys.executable, "-m", "annkit", "compare", str(doctored), str(BASELINE), "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        cases["baseline tail recall of one setting 0.02 higher"] = brief(
            {
                "exit_code": process.returncode,
                "stderr": process.stderr.strip().splitlines()[-1:] or [""],
                "compare": json.loads(process.stdout),
            }
        )

    passes = sum(run["exit_code"] == 0 for run in runs)
    worst = [run["worst_qps_change"] for run in runs]
    unchanged = {
        "runs": len(runs),
        "passes": passes,
        "false_alarms": len(runs) - passes,
        "seconds_median": round(statistics.median(r["seconds"] for r in runs), 1),
        "largest_recall_change": max(r["largest_recall_change"] for r in runs),
        "worst_qps_change": min(worst),
        "runs_with_a_qps_drop_over_15_percent": sum(w < -0.15 for w in worst),
        "runs_with_a_qps_drop_over_30_percent": sum(w < -0.30 for w in worst),
        "runs_with_a_qps_drop_over_40_percent": sum(w < -0.40 for w in worst),
        "per_run": runs,
    }
    report = {
        "what": "false-alarm rate and regression detection of .ci/gate (benchmarks/bench_gate.py)",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "thresholds": thresholds,
        "determinism": same,
        "unchanged_runs": unchanged,
        "regressions": cases,
    }
    write_figures(args.output, report)
    print(
        f"unchanged: {passes}/{len(runs)} passed, worst QPS change "
        f"{unchanged['worst_qps_change']:+.1%}, largest recall change "
        f"{unchanged['largest_recall_change']}"
    )
    for name, case in cases.items():
        print(f"{name}: exit {case['exit_code']}: {case['verdict']}")
    print(f"wrote {args.output}")
    return 0 if passes == len(runs) and all(c["exit_code"] == 1 for c in cases.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
