"""An honest gate (issue 19, item 5): the baseline's recall-vs-work frontier per index, QPS
only beyond a measured spread, --slice, skipped checks named, --per-query.

First on hand-made records (every rule), then on real sweeps of words-10k: a faiss HNSW16
graph searched at 1.5x the efSearch it is given (an effort bug) must fail at every setting
below saturation, though its recall rises at each."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bench.compare import (
    FRONTIER_ABOVE,
    FRONTIER_ON,
    Frontier,
    GateThresholds,
    compare_records,
    compare_results,
)
from annkit.bench.runner import run_sweep
from annkit.bench.spec import parse_sweep
from annkit.engines.base import get_engine, register
from annkit.engines.faiss import FaissFactoryEngine
from annkit.errors import InputError

#: faiss HNSW16,Flat on words-10k, one thread: (efSearch, mean distance computations per
#: query, recall@10), measured (efSearch 24, 48, 96, 192 = 1.5x the baseline's settings)
MEASURED = {
    16: (351.922, 0.8787),
    24: (457.623, 0.9268),
    32: (559.572, 0.9504),
    48: (751.406, 0.9686),
    64: (935.107, 0.9797),
    96: (1276.84, 0.9886),
    128: (1589.971, 0.9927),
    192: (2151.945, 0.9962),
}
BASE_EF = (16, 32, 64, 128)


def record(ef: int, work: float, recall: float, **extra) -> dict:
    """A runs.jsonl record of one efSearch setting of one HNSW index."""
    out = {
        "run_id": f"g{ef}",
        "status": "ok",
        "engine": "graph",
        "build_params": {"M": 16},
        "query_params": {"efSearch": ef},
        "metric": "angular",
        "dataset": "toy",
        "k": 10,
        "mode": "batch",
        "recall": recall,
        "qps": 1000.0,
        "distance_computations": work,
    }
    out.update(extra)
    return out


BASELINE = [record(ef, *MEASURED[ef]) for ef in BASE_EF]


def rows(comparison) -> dict:
    return {row.run_id: row for row in comparison.rows}


def test_the_frontier_keeps_the_upper_left_points_and_interpolates_between_them():
    frontier = Frontier([(600, 0.95), (300, 0.80), (500, 0.70), (1200, 0.99)])
    assert frontier.points == [(300, 0.80), (600, 0.95), (1200, 0.99)]  # (500, 0.70) dominated
    assert frontier.recall_at(600) == 0.95 and frontier.recall_at(300) == 0.80
    assert frontier.recall_at(200) is None  # cheaper than any baseline setting: unknown
    assert frontier.recall_at(5000) == 0.99  # beyond the last point: its best recall
    middle = frontier.recall_at(900)
    assert middle is not None and 0.95 < middle < 0.99
    # a power law of the miss rate between neighbours: 1 - r falls geometrically
    halfway = frontier.recall_at((600 * 1200) ** 0.5)
    assert halfway == pytest.approx(1 - (0.05 * 0.01) ** 0.5)


def test_an_effort_bug_fails_at_every_setting_though_recall_rises():
    """The same settings searched at 1.5x efSearch: each point moves along the frontier."""
    buggy = [record(ef, *MEASURED[ef * 3 // 2]) for ef in BASE_EF]
    comparison = compare_records(BASELINE, buggy)
    assert not comparison.passed
    for ef in BASE_EF:
        row = rows(comparison)[f"g{ef}"]
        assert row.verdict == "regressed", ef
        assert row.recall_change is not None and row.recall_change > 0  # recall rose
        assert row.frontier_position == FRONTIER_ON
        assert row.problems == [
            f"dist/query {row.work_change:+.1%}, not above the baseline frontier"
        ]
    assert comparison.summary() == "4 of 4 baseline settings regressed"


def test_a_real_improvement_passes():
    more_recall = [record(ef, work, recall + 0.01) for ef, (work, recall) in MEASURED.items()]
    comparison = compare_records(
        BASELINE, [r for r in more_recall if r["run_id"] in {f"g{ef}" for ef in BASE_EF}]
    )
    assert comparison.passed
    assert all(row.verdict == "improved" for row in comparison.rows)
    less_work = [record(ef, MEASURED[ef][0] * 0.8, MEASURED[ef][1]) for ef in BASE_EF]
    comparison = compare_records(BASELINE, less_work)
    assert comparison.passed and all(row.verdict == "improved" for row in comparison.rows)
    # more work that bought more recall than the baseline's curve gives there
    better = copy.deepcopy(BASELINE)
    better[1].update(distance_computations=751.406, recall=0.9686 + 0.01)
    row = rows(compare_records(BASELINE, better))["g32"]
    assert row.verdict == "improved" and row.frontier_position == FRONTIER_ABOVE


def test_a_point_below_the_frontier_fails_and_a_dominated_baseline_point_does_not():
    # more work, recall down within the recall tolerance: far below the curve there
    worse = copy.deepcopy(BASELINE)
    worse[1].update(distance_computations=751.406, recall=0.9480)
    row = rows(compare_records(BASELINE, worse))["g32"]
    assert row.verdict == "regressed" and row.recall_change == pytest.approx(-0.0024)
    assert row.problems == [
        "recall@10 0.9480 at 751 dist/query (+34.3%): below the baseline frontier (0.9703 there)"
    ]
    # a setting already below its index's frontier in the baseline stays where it was
    dominated = [*BASELINE, record(1000, 1000.0, 0.95)]
    assert compare_records(dominated, copy.deepcopy(dominated)).passed


def spread(qps_runs: list[float]) -> dict:
    return {"qps": max(qps_runs), "qps_runs": qps_runs}


def test_qps_is_checked_only_beyond_a_measured_spread():
    flat = {
        **record(0, 10_000.0, 1.0),
        "run_id": "f",
        "engine": "flat",
        "build_params": {},
        "query_params": {},
    }
    base = [dict(BASELINE[0], **spread([800.0, 1000.0])), dict(flat, **spread([90.0, 100.0]))]
    within = [dict(base[0], **spread([700.0, 900.0])), base[1]]  # best 900 > slowest 800
    comparison = compare_records(base, within)
    assert comparison.passed
    row = rows(comparison)["g16"]
    assert row.qps_status == "beyond the spread"
    assert row.qps_change_beyond_spread == pytest.approx(900 / 800 - 1)
    assert "QPS drop 15% beyond the spread (relative to flat)" in comparison.verdict()
    slower = [dict(base[0], **spread([500.0, 600.0])), base[1]]  # best 600: -25% of 800
    row = rows(compare_records(base, slower))["g16"]
    assert row.problems == ["QPS x flat -25.0% (best run against the slowest baseline run)"]
    # runs timed once have no spread: off by default, and said so
    once = compare_records(BASELINE, copy.deepcopy(BASELINE))
    assert (
        "qps",
        "QPS not checked: the sweeps did not measure their spread (fewer than 2 "
        "timed runs per setting); give --max-qps-drop to compare the best runs",
    ) in once.skipped
    # a reference whose own QPS varied more than the limit: the machine was too busy
    noisy = [base[0], dict(flat, **spread([50.0, 100.0]))]
    comparison = compare_records(noisy, [slower[0], noisy[1]])
    assert (
        comparison.passed and rows(comparison)["g16"].qps_status == "not checked: noisy reference"
    )
    assert (
        "qps",
        "QPS not checked: flat's own QPS varied by 100% in the baseline and 100% in the current "
        "sweep over its timed runs, more than the 15% limit (a busy machine: a drop that size "
        "cannot be told from noise); give --max-qps-drop to check anyway",
    ) in comparison.skipped
    explicit = compare_records(noisy, [slower[0], noisy[1]], GateThresholds(max_qps_drop=0.15))
    assert not explicit.passed  # asked for: checked anyway
    off = compare_records(base, slower, GateThresholds(max_qps_drop=1.0))
    assert off.passed
    assert ("qps", "QPS not checked: turned off (--max-qps-drop >= 1)") in off.skipped


def with_slices(item: dict, hard_recall: float, hard_work: float, tail: float | None) -> dict:
    slices = {
        "hard-lid": {
            "queries": 100,
            "recall": hard_recall,
            "p5_recall": 0.3,
            "work": {"mean": hard_work, "p50": hard_work, "p95": hard_work, "p99": hard_work},
        }
    }
    if tail is not None:
        slices["tail"] = {"queries": 400, "recall": tail, "p5_recall": 0.5}
    return dict(item, slices=slices)


def test_slice_gates_the_slice_recall_and_work():
    base = [
        with_slices(r, r["recall"] - 0.2, r["distance_computations"] * 1.5, None) for r in BASELINE
    ]
    worse = copy.deepcopy(base)
    worse[0]["slices"]["hard-lid"]["recall"] -= 0.02  # all queries unchanged
    assert compare_records(base, worse).passed
    comparison = compare_records(base, worse, slice_name="hard-lid")
    assert not comparison.passed
    assert rows(comparison)["g16"].problems[0] == "recall@10 on hard-lid -0.0200"
    assert rows(comparison)["g16"].baseline_work == pytest.approx(351.922 * 1.5)
    assert "recall@10 on slice hard-lid drop 0.005" in comparison.verdict()
    assert (
        "tail",
        "tail band not checked: the records have no tail slice (the data has no weights)",
    ) in comparison.skipped
    with pytest.raises(InputError) as error:
        compare_records(base, worse, slice_name="sel1-10%")
    assert str(error.value) == (
        "--slice sel1-10%: the baseline records have no such slice (slices: hard-lid)"
    )


def write_results(folder: Path, records: list[dict], per_query: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if per_query is not None:
        with h5py.File(folder / "perquery.h5", "w") as handle:
            for run_id, values in per_query.items():
                handle[run_id] = np.asarray(values, dtype=np.float32)
    return folder


def test_per_query_lists_the_queries_whose_recall_fell(tmp_path):
    arrays = {r["run_id"]: [1.0, 0.9, 0.8, 0.7] for r in BASELINE}
    fell = dict(arrays, g32=[1.0, 0.5, 0.9, 0.6])
    base = write_results(tmp_path / "base", BASELINE, arrays)
    now = write_results(tmp_path / "now", BASELINE, fell)
    comparison = compare_results(base, now, per_query=True)
    row = rows(comparison)["g32"]
    assert row.queries_fell == [
        (1, pytest.approx(0.9), pytest.approx(0.5)),
        (3, pytest.approx(0.7), pytest.approx(0.6)),
    ]
    assert rows(comparison)["g16"].queries_fell == []
    result = run_cli("compare", str(base), str(now), "--per-query", env={"COLUMNS": "200"})
    assert "graph efSearch=32: recall fell on 2 queries: #1 0.90→0.50, #3 0.70→0.60" in (
        result.stdout
    )
    output = json.loads(run_cli("compare", str(base), str(now), "--per-query", "--json").stdout)
    [g32] = [r for r in output["rows"] if r["run_id"] == "g32"]
    assert [item["query"] for item in g32["queries_fell"]] == [1, 3]
    bare = write_results(tmp_path / "bare", BASELINE)
    result = run_cli("compare", str(bare), str(now), "--per-query")
    assert "skipped: per-query not listed: the baseline has no per-query recall" in result.stdout
    output = json.loads(run_cli("compare", str(bare), str(now), "--per-query", "--json").stdout)
    assert {
        "check": "per-query",
        "reason": "per-query not listed: the baseline has no per-query recall",
    } in output["skipped"]


# ------------------------------------------------------------------ real sweeps (words-10k)

SWEEP = """[bench]
dataset = "words-10k"
k = 10
runs = 1

[[engine]]
name = "faiss"
build = { factory = "HNSW16,Flat" }
query = { efSearch = [16, 32, 64, 128] }
"""


class EffortBug(FaissFactoryEngine):
    """The faiss engine with an effort bug: every search runs at 1.5x the efSearch asked."""

    name = "faiss"

    def _apply_query_params(self) -> None:
        if "efSearch" in self.query:
            self.query["efSearch"] = int(self.query["efSearch"] * 3 // 2)
        super()._apply_query_params()


def run(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "root" / name
    run_sweep(parse_sweep(SWEEP, f"{name}.toml"), folder, results_root=tmp_path / "root", threads=1)
    return folder


@pytest.mark.slow
def test_a_one_and_a_half_times_effort_bug_trips_the_gate_at_every_setting(tmp_path):
    base = run(tmp_path, "baseline")
    real = get_engine("faiss")
    register(EffortBug)
    try:
        buggy = run(tmp_path, "buggy")  # same settings, same cached index, the changed engine
    finally:
        register(real)
    comparison = compare_results(base, buggy, GateThresholds(max_qps_drop=1.0))
    assert not comparison.passed
    assert len(comparison.rows) == 4
    for row in comparison.rows:
        assert row.verdict == "regressed", (row.setting, row.problems)
        assert row.work_change is not None and row.work_change > 0.25  # ~+30-40% work
        assert row.recall_change is not None and row.recall_change > 0  # recall rose
        assert row.problems == [
            f"dist/query {row.work_change:+.1%}, not above the baseline frontier"
        ]
    again = run(tmp_path, "again")  # an unchanged rerun passes
    assert compare_results(base, again).passed
