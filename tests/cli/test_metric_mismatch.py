"""An index and a dataset scored under different metrics: the one-line error names both
metrics and both ways out; with the index's metric the evaluation runs."""

from __future__ import annotations

import json

import pytest
from cli_runner import WIDE, run_cli


@pytest.fixture(scope="module")
def euclidean_flat(tmp_path_factory):
    path = tmp_path_factory.mktemp("metric") / "flat-l2"
    result = run_cli(
        "build", "words-10k", "-e", "flat", "--metric", "euclidean", "-o", str(path), env=WIDE
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("extra", [(), ("--metric", "angular")])
def test_metric_mismatch_says_which_metric_the_index_has(euclidean_flat, extra):
    result = run_cli("evaluate", str(euclidean_flat), "words-10k", *extra, env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: index {euclidean_flat} uses metric euclidean, dataset words-10k is scored "
        "with angular: rebuild the index with --metric angular, or evaluate it with "
        "--metric euclidean\n"
    )


def test_evaluating_with_the_index_metric_works(euclidean_flat):
    result = run_cli(
        "evaluate",
        str(euclidean_flat),
        "words-10k",
        "--metric",
        "euclidean",
        "--json",
        "--runs",
        "1",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metric"] == "euclidean"
