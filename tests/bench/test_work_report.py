"""Work in report and plot: dist/query and its p50/p95/p99 per run and per slice, and
``annkit plot --x work`` (recall against distance computations, engines without counts left
out), on a real sweep of words-10k."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli
from sweep_files import sweep_text

from annkit.bench.plot import plot_sweep, work_frontiers
from annkit.bench.report import build_report, load_results, on_slice
from annkit.bench.runner import run_sweep
from annkit.bench.spec import parse_sweep
from annkit.errors import InputError

pytestmark = pytest.mark.slow  # sweeps run once per module

SWEEP = sweep_text("work-report-faiss-hnsw-flat")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("work-report")
    run_sweep(parse_sweep(SWEEP, "work.toml"), root / "sweep", results_root=root, threads=1)
    return root / "sweep"


def test_report_json_carries_dist_per_query_and_its_tail(results):
    _, records, meta = load_results(results)
    report = build_report(records, meta).to_dict()
    faiss_runs = report["engines"]["faiss"]["pareto"]
    assert len(faiss_runs) == 3
    for run in faiss_runs:
        work = run["work"]
        assert run["distance_computations"] > 64  # the quantizer's 64 plus the lists scanned
        assert work["p50"] <= work["p95"] <= work["p99"]
    assert all(
        run["work"] is None and run["distance_computations"] is None
        for run in report["engines"]["hnsw"]["pareto"]
    )
    flat = report["engines"]["flat"]["pareto"][0]
    assert flat["distance_computations"] == 10_000 and flat["work"]["p99"] == 10_000
    headline = report["headlines"][0]["engines"]["faiss"]  # best at recall >= 0.90
    assert headline["distance_computations"] is not None


def test_on_a_slice_recall_and_work_are_the_slices(results):
    _, records, _ = load_results(results)
    tail = {r.run_id: r for r in on_slice(records, "tail")}
    for record in records:
        seen = tail[record.run_id]
        entry = (record.slices or {})["tail"]
        assert seen.recall == entry.recall and seen.qps == record.qps
        if record.distance_computations is None:
            assert seen.distance_computations is None and entry.work is None
        else:
            assert entry.work is not None
            assert seen.distance_computations == entry.work.mean
            assert seen.tail is not None and seen.tail.work == entry.work
            assert seen.tail.queries == 400


def test_report_cli_shows_the_cost_tail_on_a_slice(results):
    result = run_cli("report", str(results), "--slice", "tail", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    _, records, _ = load_results(results)
    by_id = {r.run_id: r for r in records}
    for run in report["engines"]["faiss"]["pareto"]:
        work = by_id[run["run_id"]].slices["tail"].work
        assert run["work"] == {"p50": work.p50, "p95": work.p95, "p99": work.p99}
    table = run_cli("report", str(results), "--slice", "tail", env={"COLUMNS": "160"})
    assert "dist p50/p95/p99" in table.stdout and "on slice 'tail'" in table.stdout


def test_plot_against_work_leaves_out_engines_that_do_not_count(results, tmp_path):
    _, records, _ = load_results(results)
    fronts = work_frontiers(records)
    assert set(fronts) == {"faiss", "flat"}
    works = [r.distance_computations for r in fronts["faiss"]]
    assert works == sorted(works)  # more work, more recall along the frontier
    result = run_cli(
        "plot", str(results), "--x", "work", "--slice", "tail", "-o", str(tmp_path / "work.png")
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    only_hnsw = [r for r in records if r.engine == "hnsw"]
    with pytest.raises(
        InputError,
        match=r"no run counted its distance computations "
        r"\(not counted: hnsw\)",
    ):
        plot_sweep(only_hnsw, tmp_path / "none.png", x="work")
    with pytest.raises(InputError, match="unknown plot axis 'speed'"):
        plot_sweep(records, tmp_path / "x.png", x="speed")
