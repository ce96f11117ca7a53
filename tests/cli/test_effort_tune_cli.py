"""``annkit effort`` and ``annkit tune`` through click's CliRunner: --json keys, the
per-query CSV, exact error text and exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from annkit.cli.main import cli
from annkit.engines import engine_names, get_engine

WITH_EFFORT = ", ".join(  # engines whose default build has an effort parameter
    name for name in engine_names() if get_engine(name).effort_param_for(
        {param: spec.default for param, spec in get_engine(name).build_params.items()}))


def run(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("effort-cli")
    paths = {}
    for engine, params in (("hnsw", ["-p", "M=8"]), ("flat", [])):
        paths[engine] = folder / engine
        result = run("build", "words-10k", "-e", engine, *params, "--threads", "1",
                     "-o", paths[engine])
        assert result.exit_code == 0, result.output
    return paths


def test_effort_json_and_per_query_csv(indexes: dict[str, Path], tmp_path: Path) -> None:
    table = tmp_path / "per_query.csv"
    result = run("effort", indexes["hnsw"], "words-10k", "-k", "10", "--target", "0.9",
                 "--grid", "10,20,40,80,160,320,640", "--json", "-o", table)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in ("engine", "param", "grid", "k", "target", "queries", "searches", "full_scan",
                "distribution", "heavy", "spearman", "index"):
        assert key in out
    assert out["param"] == "ef" and out["grid"] == [10, 20, 40, 80, 160, 320, 640]
    assert out["searches"] < out["full_scan"] == 1000 * 7
    for name in ("all", "head", "torso", "tail", "hard-lid", "lid-q4"):
        assert {"median", "p90", "p99", "share_not_reached", "share_heavy"} <= set(
            out["distribution"][name])
    assert {"count", "share", "indices", "threshold"} <= set(out["heavy"])
    assert out["heavy"]["count"] == len(out["heavy"]["indices"])
    assert {"weight", "lid", "rc", "expansion", "ood"} == set(out["spearman"])
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["query", "text", "min_effort", "reached", "weight", "band", "lid", "rc",
                       "expansion", "ood"]
    assert len(rows) == 1001


def test_effort_table(indexes: dict[str, Path]) -> None:
    result = run("effort", indexes["hnsw"], "--grid", "10,40,160", "--slice-report")
    assert result.exit_code == 0, result.output
    for text in ("minimum effort per query", "minimum ef by slice", "lid-q4", "Spearman"):
        assert text in result.stdout


def test_effort_on_flat_is_a_clear_error(indexes: dict[str, Path]) -> None:
    result = run("effort", indexes["flat"], "words-10k")
    assert result.exit_code == 2
    assert result.stderr == ("Error: engine flat has no effort parameter (it searches exactly); "
                             f"use an index of {WITH_EFFORT}\n")


def test_effort_bad_grid_value(indexes: dict[str, Path]) -> None:
    result = run("effort", indexes["hnsw"], "--grid", "10,x")
    assert result.exit_code == 2
    assert result.stderr == "Error: parameter ef: expected int, got 'x'\n"


def test_tune_json(tmp_path: Path) -> None:
    result = run("tune", "words-10k", "--engine", "hnsw", "--target", "0.95", "--slice", "tail",
                 "--build-grid", "M=8", "--effort-grid", "10,20,40,80,160", "-k", "10",
                 "--runs", "1", "--threads", "1", "--cache-dir", tmp_path / "cache", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in ("engine", "param", "target", "slice", "k", "evaluations", "exhaustive",
                "settings", "best"):
        assert key in out
    assert out["slice"] == "tail" and out["exhaustive"] == 5
    assert out["evaluations"] < out["exhaustive"]
    (setting,) = out["settings"]
    assert setting["build_params"]["M"] == 8 and setting["reached"]
    for name in ("all", "head", "torso", "tail", "hard-lid"):
        assert name in setting["recall"]
    assert out["best"]["effort"] == setting["effort"] and out["best"]["qps"] > 0
    assert any((tmp_path / "cache" / "indexes").iterdir())


def test_tune_unknown_slice(tmp_path: Path) -> None:
    result = run("tune", "words-10k", "--engine", "hnsw", "--slice", "nope", "--build-grid",
                 "M=8", "--cache-dir", tmp_path, "-q")
    assert result.exit_code == 2
    slices = ["all", "head", "torso", "tail"]
    for measure in ("lid", "rc", "expansion", "ood"):
        slices += [f"{measure}-q{quartile}" for quartile in range(1, 5)] + [f"hard-{measure}"]
    assert result.stderr == f"Error: unknown slice 'nope' (available: {', '.join(slices)})\n"


def test_tune_flat_and_bad_build_grid() -> None:
    result = run("tune", "--engine", "flat")
    assert result.exit_code == 2
    assert result.stderr == ("Error: engine flat has no effort parameter (it searches exactly); "
                             f"use an index of {WITH_EFFORT}\n")
    result = run("tune", "--engine", "hnsw", "--build-grid", "M")
    assert result.exit_code == 2
    assert "expected NAME=V1,V2,..., got 'M'" in result.stderr
