"""The gate on work: mean distance computations per query may not rise by more than
--max-work-increase unless the setting's point lies above the baseline's recall-vs-work
frontier of its index (one point here: beyond it the frontier keeps its recall).

First on hand-made records (every rule), then on real sweeps of words-10k with faiss HNSW
and IVF built with one thread: a run at 3x the effort whose recall barely moves, and an
engine change that searches twice, must both fail on work while the recall gate passes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from sweep_files import sweep_text

from annkit.bench.compare import (
    WORK_CHECKED,
    WORK_NEWLY_COUNTED,
    WORK_NO_LONGER_COUNTED,
    WORK_NOT_COUNTED,
    GateThresholds,
    compare_records,
    compare_results,
)
from annkit.bench.runner import run_sweep
from annkit.bench.spec import parse_sweep
from annkit.engines.base import get_engine, register
from annkit.engines.faiss import FaissFactoryEngine
from annkit.types import SearchResult


def record(
    run_id: str,
    engine: str,
    recall: float,
    work: float | None,
    qps: float = 1000.0,
    tail: float | None = None,
) -> dict:
    """A runs.jsonl record with a mean distance-computation count (None: not counted)."""
    out = {
        "run_id": run_id,
        "status": "ok",
        "engine": engine,
        "build_params": {},
        "query_params": {"q": run_id},
        "metric": "angular",
        "dataset": "toy",
        "k": 10,
        "mode": "batch",
        "recall": recall,
        "qps": qps,
        "distance_computations": work,
    }
    if tail is not None:
        out["slices"] = {"tail": {"queries": 4, "recall": tail, "p5_recall": 0.5}}
    return out


BASELINE = [
    record("g", "graph", 0.95, 600.0, tail=0.93),
    record("i", "ivf", 0.90, 2000.0),
    record("h", "hnsw", 0.96, None),
    record("f", "flat", 1.0, 10_000.0, qps=500.0),
]


def changed(run_id: str, **fields) -> list[dict]:
    out = copy.deepcopy(BASELINE)
    for item in out:
        if item["run_id"] == run_id:
            tail = fields.pop("tail", None)
            item.update(fields)
            if tail is not None:
                item["slices"]["tail"]["recall"] = tail
    return out


def rows(comparison) -> dict:
    return {row.run_id: row for row in comparison.rows}


def test_unchanged_work_passes_and_says_what_was_checked():
    comparison = compare_records(BASELINE, copy.deepcopy(BASELINE))
    assert comparison.passed
    by_id = rows(comparison)
    assert by_id["g"].work_status == WORK_CHECKED and by_id["g"].work_change == 0.0
    assert by_id["h"].work_status == WORK_NOT_COUNTED
    assert [row.run_id for row in comparison.work_checked] == ["g", "i", "f"]
    assert comparison.verdict().endswith(
        "dist/query rise 2% (checked on 3 settings; not counted on 1: hnsw))"
    )
    assert comparison.notes[-1] == (
        "work not counted for 1 setting (hnsw: the library cannot count distance "
        "computations), so its work is not checked; only its recall and QPS are"
    )


@pytest.mark.parametrize(("work", "passes"), [(612.0, True), (612.1, False), (1800.0, False)])
def test_more_work_at_the_same_recall_fails_beyond_the_limit(work, passes):
    comparison = compare_records(BASELINE, changed("g", distance_computations=work))
    assert comparison.passed is passes
    row = rows(comparison)["g"]
    if not passes:
        assert row.verdict == "regressed"
        assert row.problems == [
            f"dist/query {work / 600 - 1:+.1%}, not above the baseline frontier"
        ]


def test_more_work_at_lower_recall_fails_on_both():
    worse = changed("g", recall=0.90, distance_computations=900.0)
    row = rows(compare_records(BASELINE, worse))["g"]
    assert row.problems == [
        "recall@10 -0.0500",
        "recall@10 0.9000 at 900 dist/query (+50.0%): below the baseline frontier (0.9500 there)",
    ]


def test_more_work_that_bought_recall_is_a_trade_off_not_a_regression():
    comparison = compare_records(BASELINE, changed("g", distance_computations=1200.0, recall=0.97))
    assert comparison.passed
    assert rows(comparison)["g"].verdict == "improved"
    assert rows(comparison)["g"].frontier_position == "above"
    # the frontier is of recall@k (or the --slice's): tail recall alone does not buy work
    tail_only = compare_records(BASELINE, changed("g", distance_computations=1200.0, tail=0.96))
    assert not tail_only.passed
    # a recall rise within the recall tolerance is "the same recall"
    assert not compare_records(
        BASELINE, changed("g", recall=0.954, distance_computations=1200.0)
    ).passed


def test_less_work_is_an_improvement():
    row = rows(compare_records(BASELINE, changed("i", distance_computations=1500.0)))["i"]
    assert row.verdict == "improved" and row.work_change == pytest.approx(-0.25)


def test_counts_that_vanish_fail_and_counts_that_appear_pass():
    lost = compare_records(BASELINE, changed("g", distance_computations=None))
    assert not lost.passed
    assert rows(lost)["g"].work_status == WORK_NO_LONGER_COUNTED
    assert rows(lost)["g"].problems == [
        "distance computations no longer counted (work not checked)"
    ]
    gained = compare_records(BASELINE, changed("h", distance_computations=700.0))
    assert gained.passed and rows(gained)["h"].work_status == WORK_NEWLY_COUNTED


def test_the_limit_is_a_threshold():
    tripled = changed("g", distance_computations=1800.0)
    assert compare_records(BASELINE, tripled, GateThresholds(max_work_increase=2.0)).passed
    assert not compare_records(BASELINE, tripled, GateThresholds(max_work_increase=1.99)).passed


def write_results(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_cli_json_markdown_and_table_carry_the_work_gate(tmp_path):
    base = write_results(tmp_path / "base", BASELINE)
    worse = write_results(tmp_path / "worse", changed("g", distance_computations=1800.0))
    result = run_cli("compare", str(base), str(worse), "--json")
    assert result.exit_code == 1
    output = json.loads(result.stdout)
    assert output["thresholds"]["max_work_increase"] == 0.02
    row = next(r for r in output["rows"] if r["run_id"] == "g")
    assert row["distance_computations"] == {
        "baseline": 600.0,
        "current": 1800.0,
        "change": pytest.approx(2.0),
        "status": "checked",
    }
    hnsw = next(r for r in output["rows"] if r["run_id"] == "h")
    assert hnsw["distance_computations"]["status"] == "work not counted"
    assert output["counts"]["work_checked"] == 3 and output["counts"]["work_not_counted"] == 1
    assert result.stderr == "Error: regression gate failed: 1 of 4 baseline settings regressed\n"
    markdown = run_cli("compare", str(base), str(worse), "--markdown").stdout
    assert (
        "| 600 → 1,800 (+200%) | **regressed: dist/query +200.0%, not above the baseline "
        "frontier** |" in markdown
    )
    assert "| work not counted | ok |" in markdown
    table = run_cli("compare", str(base), str(worse))
    assert "600 → 1,800" in table.stdout and "(+200%)" in table.stdout  # (wrapped cells)
    assert "work not" in table.stdout and "dist/query rise 2% (checked on 3" in table.stdout
    looser = run_cli("compare", str(base), str(worse), "--max-work-increase", "2")
    assert looser.exit_code == 0, looser.output


# ------------------------------------------------------------------ real sweeps (words-10k)


def sweep(tmp_path: Path, name: str, ef: int = 256, nprobe: int = 32) -> Path:
    """One real sweep (indexes built with one thread, cached under tmp_path/root)."""
    spec = parse_sweep(sweep_text("work-gate-faiss-flat", ef=ef, nprobe=nprobe), f"{name}.toml")
    folder = tmp_path / "root" / name
    run_sweep(spec, folder, results_root=tmp_path / "root", threads=1)
    return folder


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, Path]:
    tmp_path = tmp_path_factory.mktemp("work-gate")
    return tmp_path, sweep(tmp_path, "baseline")


def effort_changed(folder: Path, target: Path) -> Path:
    """The runs of ``folder`` relabelled as the baseline's settings: a sweep that ran at a
    different effort than it claims (the code under test changed how much it searches)."""
    base = [
        json.loads(line)
        for line in (folder.parent / "baseline" / "runs.jsonl").read_text().splitlines()
    ]
    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    for old, new in zip(base, runs, strict=True):
        assert old["engine"] == new["engine"]
        new.update(run_id=old["run_id"], query_params=old["query_params"])
    return write_results(target, runs)


@pytest.mark.slow
def test_three_times_the_effort_fails_on_work_while_recall_passes(baseline, tmp_path):
    root, base = baseline
    # the HNSW graph searched with 3x the efSearch it is given (768 for 256): recall is
    # already ~0.998 and barely moves
    tripled = effort_changed(sweep(root, "tripled", ef=3 * 256), tmp_path / "tripled")
    recall_only = compare_results(
        base, tripled, GateThresholds(max_qps_drop=1.0, max_work_increase=1e9)
    )
    assert recall_only.passed  # the recall gate alone misses it
    comparison = compare_results(base, tripled, GateThresholds(max_qps_drop=1.0))
    assert not comparison.passed
    [row] = comparison.regressed
    assert row.build_params["factory"] == "HNSW16,Flat"
    assert row.work_change is not None and row.work_change > 1.0  # ~2x the distances
    assert row.recall_change is not None and 0 <= row.recall_change <= 0.005
    assert len(row.problems) == 1
    assert row.problems[0].startswith("dist/query +")
    assert row.problems[0].endswith(", not above the baseline frontier")
    assert all(r.work_status == WORK_CHECKED for r in comparison.rows)


class SearchTwice(FaissFactoryEngine):
    """The faiss engine with a regression: every search runs twice and counts both."""

    name = "faiss"

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        first = super().search(queries, k)
        second = super().search(queries, k)
        if first.distance_computations is None or second.distance_computations is None:
            return second  # a timed (uncounted) pass: counted afterwards, searching twice again
        return SearchResult(
            second.ids, second.distances, first.distance_computations + second.distance_computations
        )


@pytest.fixture()
def search_twice():
    """SearchTwice registered as "faiss" for one test, the real engine put back after."""
    real = get_engine("faiss")
    register(SearchTwice)
    yield SearchTwice
    register(real)


@pytest.mark.slow
def test_an_engine_that_searches_twice_fails_on_work_with_recall_identical(
    baseline, search_twice, tmp_path
):
    root, base = baseline
    twice = sweep(root, "twice")  # same settings, same cached indexes, the changed engine
    comparison = compare_results(base, twice, GateThresholds(max_qps_drop=1.0))
    assert not comparison.passed
    faiss_rows = [row for row in comparison.rows if row.engine == "faiss"]
    assert len(faiss_rows) == 2 and all(row.verdict == "regressed" for row in faiss_rows)
    for row in faiss_rows:
        assert row.recall_change == 0.0 and row.tail_recall_change == 0.0
        assert row.work_change == pytest.approx(1.0)
        assert row.problems == ["dist/query +100.0%, not above the baseline frontier"]
    flat = next(row for row in comparison.rows if row.engine == "flat")
    assert flat.verdict == "ok" and flat.work_status == WORK_CHECKED


@pytest.mark.slow
def test_bench_baseline_passes_the_work_limit_through(tmp_path):
    """``annkit bench --baseline`` gates work as compare does (flat: n per query, exactly)."""
    sweep_file = tmp_path / "flat.toml"
    sweep_file.write_text(
        '[bench]\ndataset = "words-10k"\nk = 10\nruns = 1\n\n[[engine]]\nname = "flat"\n'
    )
    first = run_cli(
        "bench",
        str(sweep_file),
        "-o",
        str(tmp_path / "base"),
        "--results-root",
        str(tmp_path / "root"),
        "-q",
        "--json",
    )
    assert first.exit_code == 0, first.output
    [base] = [
        json.loads(line) for line in (tmp_path / "base" / "runs.jsonl").read_text().splitlines()
    ]
    assert base["distance_computations"] == 10_000.0
    base["distance_computations"] = 9_000.0  # the baseline did 10% less work
    (tmp_path / "base" / "runs.jsonl").write_text(json.dumps(base) + "\n")
    args = [
        "bench",
        str(sweep_file),
        "-o",
        str(tmp_path / "now"),
        "--results-root",
        str(tmp_path / "root"),
        "-q",
        "--json",
        "--baseline",
        str(tmp_path / "base"),
        "--max-qps-drop",
        "1",
    ]
    gated = run_cli(*args)
    assert gated.exit_code == 1, gated.output
    [row] = json.loads(gated.stdout)["compare"]["rows"]
    assert row["problems"] == ["dist/query +11.1%, not above the baseline frontier"]
    assert gated.stderr == "Error: regression gate failed: 1 of 1 baseline settings regressed\n"
    looser = run_cli(*args, "--max-work-increase", "0.2")
    assert looser.exit_code == 0, looser.output
