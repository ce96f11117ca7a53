"""Reports, plots and effort on a slice say so: every title names the slice and its size,
the JSON names it, and ``effort --all-slices`` (old name ``--slice-report``) shows them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import WIDE, run_cli

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "ci-baseline"


def test_report_on_a_slice_says_so_in_every_title():
    result = run_cli("report", str(BASELINE), "--slice", "tail", env=WIDE)
    assert result.exit_code == 0, result.output
    assert (
        "Pareto-optimal runs on slice 'tail' (400 queries): recall@10 vs QPS (words-10k, batch)"
    ) in result.stdout
    assert "best QPS at recall@10 >= threshold on slice 'tail' (400 queries)" in result.stdout
    unsliced = run_cli("report", str(BASELINE), env=WIDE)
    assert "on slice" not in unsliced.stdout
    assert "Pareto-optimal runs: recall@10 vs QPS (words-10k, batch)" in unsliced.stdout


def test_report_json_names_the_slice_and_its_size():
    sliced = json.loads(
        run_cli("report", str(BASELINE), "--slice", "hard-lid", "--json", env=WIDE).stdout
    )
    assert sliced["slice"] == "hard-lid" and sliced["slice_queries"] == 100
    whole = json.loads(run_cli("report", str(BASELINE), "--json", env=WIDE).stdout)
    assert whole["slice"] == "all" and whole["slice_queries"] is None


def test_plot_title_label():
    from annkit.cli.bench import slice_label

    assert slice_label("tail", 400) == " on slice 'tail' (400 queries)"
    assert slice_label("tail", None) == " on slice 'tail'"
    assert slice_label("all", 1000) == ""


@pytest.mark.slow
def test_effort_all_slices_and_the_old_name(hnsw_words10k):
    for flag in ("--all-slices", "--slice-report"):
        result = run_cli(
            "effort",
            str(hnsw_words10k.path),
            "words-10k",
            "--grid",
            "10,40,160",
            flag,
            "-q",
            env=WIDE,
        )
        assert result.exit_code == 0, result.output
        assert "lid-q4" in result.stdout
    assert "--slice-report" not in run_cli("effort", "--help", env=WIDE).stdout
    assert "--all-slices" in run_cli("effort", "--help", env=WIDE).stdout
