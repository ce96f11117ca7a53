"""The gate on work (distance computations per query) in .ci/gate, measured on this machine.

    flock /tmp/annkit-bench.lock python benchmarks/bench_work_gate.py [--runs 20]

1. false alarms: .ci/gate run --runs times on the unchanged code (every run builds every
   index from scratch with one thread); for each run, whether the gate passed, how many
   settings had their work checked, the largest change of any checked setting's mean
   distance computations (expected: exactly 0) and any work problem flagged (a false
   alarm of the work gate);
2. trips, each from a real run of .ci/gate with the faiss engine changed in the sweep's
   processes (a sitecustomize module on PYTHONPATH; nothing in the tree is touched):
   - 3x the effort: every search uses three times the efSearch / nprobe it is given; the
     settings whose recall barely moves must fail on work, and recall alone must pass;
   - searching twice: every search runs twice and counts both; recall is identical, so
     only the work gate can see it.

Writes results/work-gate.json (atomically) and prints a summary.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_gate import largest_recall_change, run_gate
from common import machine, parser, write_figures

TRIPLE_EFFORT = """\
from annkit.engines.faiss import FaissFactoryEngine

def _tripled(self):
    for name in ("efSearch", "nprobe"):
        if name in self.query:
            self.query[name] = 3 * self.query[name]

FaissFactoryEngine._apply_query_params = _tripled
"""

# the search runs twice and counts both; the counts the sweep takes apart from the timed
# search (count_distances) are doubled too
SEARCH_TWICE = """\
from dataclasses import replace

from annkit.engines.faiss import FaissFactoryEngine

_search = FaissFactoryEngine.search
_count = FaissFactoryEngine.count_distances

def _twice(self, queries, k):
    first = _search(self, queries, k)
    second = _search(self, queries, k)
    if first.distance_computations is None or second.distance_computations is None:
        return second
    return replace(second, distance_computations=first.distance_computations
                   + second.distance_computations)

def _count_twice(self, queries, k):
    counts = _count(self, queries, k)
    return None if counts is None else 2 * counts

FaissFactoryEngine.search = _twice
FaissFactoryEngine.count_distances = _count_twice
"""


def _on_work(problem: str) -> bool:
    """True for a work-gate problem: more work not above the baseline's recall-vs-work
    frontier, a point below it, or counts that vanished."""
    return (
        problem.startswith("dist/query")
        or "below the baseline frontier" in problem
        or "no longer counted" in problem
    )


def work_facts(comparison: dict) -> dict:
    """What the work gate saw in one comparison."""
    rows = comparison["rows"]
    checked = [row for row in rows if row["distance_computations"]["status"] == "checked"]
    changes = [
        abs(row["distance_computations"]["change"])
        for row in checked
        if row["distance_computations"]["change"] is not None
    ]
    return {
        "work_checked": len(checked),
        "work_not_counted": sum(
            row["distance_computations"]["status"] == "work not counted" for row in rows
        ),
        "largest_work_change": max(changes) if changes else None,
        "largest_recall_change": largest_recall_change(rows),
        "work_problems": [
            f"{row['setting']}: {problem}"
            for row in rows
            for problem in row["problems"]
            if _on_work(problem)
        ],
        "other_problems": [
            f"{row['setting']}: {problem}"
            for row in rows
            for problem in row["problems"]
            if not _on_work(problem)
        ],
    }


def trip(code: str, work: str) -> dict:
    """One .ci/gate run with ``code`` as sitecustomize in the sweep's processes."""
    folder = Path(work) / f"site-{abs(hash(code))}"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code)
    path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = run_gate(env={"PYTHONPATH": path})
    comparison = run["compare"]
    rows = []
    for row in comparison["rows"]:
        if row["engine"] != "faiss":
            continue
        rows.append(
            {
                "setting": row["setting"],
                "verdict": row["verdict"],
                "recall_change": row["recall"]["change"],
                "tail_recall_change": row["tail_recall"]["change"],
                "work": row["distance_computations"],
                "problems": row["problems"],
            }
        )
    facts = work_facts(comparison)
    return {
        "exit_code": run["exit_code"],
        "seconds": round(run["seconds"], 1),
        "verdict": comparison["verdict"],
        "stderr": run["stderr"][0],
        "tripped_on_work": bool(facts["work_problems"]),
        # the recall (and tail recall) gate alone: would any setting have failed on recall?
        "recall_gate_alone_fails": any(
            "recall" in problem and "dist/query" not in problem
            for problem in facts["other_problems"]
        ),
        "faiss_rows": rows,
        **facts,
    }


def main() -> int:
    args = parser(__doc__, runs=20, output="work-gate.json").parse_args()
    started = time.perf_counter()
    runs = []
    thresholds = None
    for number in range(1, args.runs + 1):
        run = run_gate()
        thresholds = run["compare"]["thresholds"]
        facts = work_facts(run["compare"])
        runs.append({"exit_code": run["exit_code"], "seconds": round(run["seconds"], 1), **facts})
        print(
            f"run {number}: exit {run['exit_code']}, {run['seconds']:.1f}s, work checked on "
            f"{facts['work_checked']} settings, largest work change "
            f"{facts['largest_work_change']}",
            file=sys.stderr,
            flush=True,
        )
    with tempfile.TemporaryDirectory() as work:
        print("3x the effort ...", file=sys.stderr, flush=True)
        tripled = trip(TRIPLE_EFFORT, work)
        print("searching twice ...", file=sys.stderr, flush=True)
        twice = trip(SEARCH_TWICE, work)
    false_alarms = sum(bool(run["work_problems"]) for run in runs)
    report = {
        "what": "false alarms and trips of the work gate in .ci/gate "
        "(benchmarks/bench_work_gate.py)",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "thresholds": thresholds,
        "unchanged_runs": {
            "runs": len(runs),
            "gate_passes": sum(run["exit_code"] == 0 for run in runs),
            "work_gate_false_alarms": false_alarms,
            "largest_work_change": max((run["largest_work_change"] or 0.0) for run in runs),
            "largest_recall_change": max((run["largest_recall_change"] or 0.0) for run in runs),
            "work_checked_per_run": sorted({run["work_checked"] for run in runs}),
            "work_not_counted_per_run": sorted({run["work_not_counted"] for run in runs}),
            "seconds_median": round(statistics.median(run["seconds"] for run in runs), 1),
            "seconds_max": max(run["seconds"] for run in runs),
            "per_run": runs,
        },
        "trips": {"3x the effort (efSearch / nprobe x3)": tripled, "every search run twice": twice},
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_figures(args.output, report)
    unchanged = report["unchanged_runs"]
    print(
        f"unchanged: {unchanged['gate_passes']}/{len(runs)} gate passes, "
        f"{false_alarms} work-gate false alarms, largest work change "
        f"{unchanged['largest_work_change']}, median {unchanged['seconds_median']}s"
    )
    for name, case in report["trips"].items():
        print(
            f"{name}: exit {case['exit_code']}, tripped on work: {case['tripped_on_work']}, "
            f"recall gate alone fails: {case['recall_gate_alone_fails']}"
        )
        for problem in case["work_problems"]:
            print(f"  {problem}")
    print(f"wrote {args.output}")
    ok = (
        false_alarms == 0
        and tripled["tripped_on_work"]
        and twice["tripped_on_work"]
        and not twice["recall_gate_alone_fails"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
