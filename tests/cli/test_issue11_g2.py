"""Issue 11 (items 1, 4, 7, 9, 10): slice-labelled reports, the metric hint, notices for
silent defaults, strict recall, and the smaller things; through the real commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from annkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "ci-baseline"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


# item 1 -------------------------------------------------------------------------------------

def test_report_on_a_slice_says_so_in_every_title():
    result = run("report", str(BASELINE), "--slice", "tail")
    assert result.exit_code == 0, result.output
    assert ("Pareto-optimal runs on slice 'tail' (400 queries): recall@10 vs QPS "
            "(words-10k, batch)") in result.stdout
    assert "best QPS at recall@10 >= threshold on slice 'tail' (400 queries)" in result.stdout
    unsliced = run("report", str(BASELINE))
    assert "on slice" not in unsliced.stdout
    assert "Pareto-optimal runs: recall@10 vs QPS (words-10k, batch)" in unsliced.stdout


def test_report_json_names_the_slice_and_its_size():
    sliced = json.loads(run("report", str(BASELINE), "--slice", "hard-lid", "--json").stdout)
    assert sliced["slice"] == "hard-lid" and sliced["slice_queries"] == 100
    whole = json.loads(run("report", str(BASELINE), "--json").stdout)
    assert whole["slice"] == "all" and whole["slice_queries"] is None


def test_plot_title_label():
    from annkit.cli.bench import slice_label

    assert slice_label("tail", 400) == " on slice 'tail' (400 queries)"
    assert slice_label("tail", None) == " on slice 'tail'"
    assert slice_label("all", 1000) == ""


# item 4 -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def euclidean_flat(tmp_path_factory):
    path = tmp_path_factory.mktemp("metric") / "flat-l2"
    result = run("build", "words-10k", "-e", "flat", "--metric", "euclidean", "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("extra", [(), ("--metric", "angular")])
def test_metric_mismatch_says_which_metric_the_index_has(euclidean_flat, extra):
    result = run("evaluate", str(euclidean_flat), "words-10k", *extra)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: index {euclidean_flat} uses metric euclidean, dataset words-10k is scored "
        "with angular: rebuild the index with --metric angular, or evaluate it with "
        "--metric euclidean\n")


def test_evaluating_with_the_index_metric_works(euclidean_flat):
    result = run("evaluate", str(euclidean_flat), "words-10k", "--metric", "euclidean",
                 "--json", "--runs", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metric"] == "euclidean"
