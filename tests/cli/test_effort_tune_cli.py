"""``annkit effort`` and ``annkit tune`` through click's CliRunner: --json keys, the
per-query CSV, exact error text and exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_runner import run_cli

from annkit.engines import engine_names, get_engine

WITH_EFFORT = ", ".join(  # engines whose default build has an effort parameter
    name
    for name in engine_names()
    if get_engine(name).effort_param_for(
        {param: spec.default for param, spec in get_engine(name).build_specs.items()}
    )
)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("effort-cli")
    paths = {}
    for engine, params in (("hnsw", ["-p", "M=8"]), ("flat", [])):
        paths[engine] = folder / engine
        result = run_cli(
            "build", "words-10k", "-e", engine, *params, "--threads", "1", "-o", paths[engine]
        )
        assert result.exit_code == 0, result.output
    return paths


@pytest.mark.slow
def test_effort_json_and_per_query_csv(indexes: dict[str, Path], tmp_path: Path) -> None:
    table = tmp_path / "per_query.csv"
    result = run_cli(
        "effort",
        indexes["hnsw"],
        "words-10k",
        "-k",
        "10",
        "--target",
        "0.9",
        "--grid",
        "10,20,40,80,160,320,640",
        "--json",
        "-o",
        table,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in (
        "engine",
        "param",
        "grid",
        "k",
        "target",
        "queries",
        "searches",
        "full_scan",
        "distribution",
        "heavy",
        "spearman",
        "index",
    ):
        assert key in out
    assert out["param"] == "ef" and out["grid"] == [10, 20, 40, 80, 160, 320, 640]
    assert out["searches"] < out["full_scan"] == 1000 * 7
    for name in ("all", "head", "torso", "tail", "hard-lid", "lid-q4"):
        assert {"median", "p90", "p99", "share_not_reached", "share_heavy"} <= set(
            out["distribution"][name]
        )
    assert {"count", "share", "indices", "threshold"} <= set(out["heavy"])
    assert out["heavy"]["count"] == len(out["heavy"]["indices"])
    assert {"weight", "lid", "rc", "expansion", "ood"} == set(out["spearman"])
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "query",
        "text",
        "min_effort",
        "reached",
        "weight",
        "band",
        "lid",
        "rc",
        "expansion",
        "ood",
    ]
    assert len(rows) == 1001


def test_effort_table(indexes: dict[str, Path]) -> None:
    result = run_cli("effort", indexes["hnsw"], "--grid", "10,40,160", "--slice-report")
    assert result.exit_code == 0, result.output
    for text in ("minimum effort per query", "minimum ef by slice", "lid-q4", "Spearman"):
        assert text in result.stdout


def test_effort_on_flat_is_a_clear_error(indexes: dict[str, Path]) -> None:
    result = run_cli("effort", indexes["flat"], "words-10k")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: engine flat has no effort parameter (it searches exactly); "
        f"use an index of {WITH_EFFORT}\n"
    )


def test_effort_bad_grid_value(indexes: dict[str, Path]) -> None:
    result = run_cli("effort", indexes["hnsw"], "words-10k", "--grid", "10,x")
    assert result.exit_code == 2
    assert result.stderr == "Error: parameter ef: expected int, got 'x'\n"


@pytest.mark.slow
def test_tune_json(tmp_path: Path) -> None:
    result = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "hnsw",
        "--target",
        "0.95",
        "--slice",
        "tail",
        "--build-grid",
        "M=8",
        "--effort-grid",
        "10,20,40,80,160",
        "-k",
        "10",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        tmp_path / "cache",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in (
        "engine",
        "param",
        "target",
        "slice",
        "k",
        "evaluations",
        "exhaustive",
        "settings",
        "best",
    ):
        assert key in out
    assert out["slice"] == "tail" and out["exhaustive"] == 5
    (setting,) = out["settings"]
    grid_probes = [entry for entry in setting["trace"] if entry["ef"] in setting["grid"]]
    assert len(grid_probes) < out["exhaustive"]  # bisection: fewer than the whole grid
    assert setting["build_params"]["M"] == 8 and setting["reached"]
    for name in ("all", "head", "torso", "tail", "hard-lid"):
        assert name in setting["recall"]
    assert out["best"]["effort"] == setting["effort"] and out["best"]["qps"] > 0
    assert any((tmp_path / "cache" / "indexes").iterdir())
    # the grid answer refined between the last failing and first passing grid values
    failing, passing = setting["bracket"]
    assert [failing, passing] in ([10, 20], [20, 40], [40, 80], [80, 160])
    assert setting["grid_effort"] == passing and failing < setting["effort"] <= passing
    assert setting["resolution"] == 1 and out["resolution"] == 1
    assert setting["precision"] == f"refined between {failing} and {passing}; exact"
    trace = {entry["ef"]: entry["slice_recall"] for entry in setting["trace"]}
    assert trace[setting["effort"]] >= 0.95 and trace[failing] < 0.95
    if setting["effort"] - 1 > failing:
        assert trace[setting["effort"] - 1] < 0.95  # exact: the effort below misses
    assert setting["qps_min"] <= setting["qps_median"] <= setting["qps_max"] == setting["qps"]
    assert setting["runs"] == len(setting["qps_runs"]) == 1
    assert out["tied"] == []  # one build setting: nothing to tie with
    assert out["choice_rule"].endswith(
        "the tied setting with the smallest index (then the shortest build) is chosen"
    )


@pytest.mark.slow
def test_tune_table_says_how_fine_the_answer_is(tmp_path: Path) -> None:
    result = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "hnsw",
        "--target",
        "0.95",
        "--build-grid",
        "M=8",
        "--effort-grid",
        "10,20,40,80,160",
        "--runs",
        "2",
        "--threads",
        "1",
        "--cache-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    out = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "hnsw",
        "--target",
        "0.95",
        "--build-grid",
        "M=8",
        "--effort-grid",
        "10,20,40,80,160",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        tmp_path,
        "--json",
    )
    best = json.loads(out.stdout)["best"]
    failing, passing = best["bracket"]
    assert (
        f"answer: M=8 ef_construction=200 seed=100 ef={best['effort']} (refined between "
        f"{failing} and {passing}; exact)"
    ) in " ".join(result.stdout.split())
    assert "fastest of " in result.stdout and "QPS (min-max)" in result.stdout


@pytest.mark.slow
def test_tune_exits_1_when_no_setting_reaches_the_target(tmp_path: Path) -> None:
    result = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "hnsw",
        "--target",
        "1.0",
        "--slice",
        "hard-lid",
        "--build-grid",
        "M=8",
        "--effort-grid",
        "10,20",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        tmp_path,
        "--json",
    )
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["best"] is None and out["best_reached"]["effort"] == 20
    recall = out["best_reached"]["slice_recall"]
    assert result.stderr == (
        "Error: no build setting reaches recall@10 >= 1 on hard-lid "
        f"within the effort grid; best reached {recall:.4f} at M=8 "
        "ef_construction=200 seed=100 ef=20\n"
    )
    table = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "hnsw",
        "--target",
        "1.0",
        "--slice",
        "hard-lid",
        "--build-grid",
        "M=8",
        "--effort-grid",
        "10,20",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        tmp_path,
        "-q",
    )
    assert table.exit_code == 1 and table.stderr == result.stderr
    assert "not reached (>20)" in table.stdout


@pytest.mark.slow
def test_tie_notice_names_the_tied_settings_and_the_cheaper_build(words10k, tmp_path: Path) -> None:
    """Real tune outcomes whose timed runs are set to overlapping QPS ranges."""
    import dataclasses

    from annkit.cli.tune import answer_lines
    from annkit.tune import tune

    result = tune(
        words10k,
        "hnsw",
        0.9,
        "all",
        {"M": [8, 12]},
        [10, 20, 40, 80],
        runs=1,
        cache_dir=tmp_path,
        threads=1,
    )
    small, large = sorted(result.settings, key=lambda setting: setting.index_bytes)
    spreads = {id(small): (700.0, 790.0), id(large): (780.0, 828.0)}  # 828 vs 790: tied
    settings = [
        dataclasses.replace(
            setting,
            evaluation=dataclasses.replace(
                setting.evaluation, qps=spreads[id(setting)][1], qps_runs=spreads[id(setting)]
            ),
        )
        for setting in result.settings
    ]
    tied_result = dataclasses.replace(result, settings=settings)
    assert tied_result.fastest.build_params["M"] == 12
    assert tied_result.best.build_params["M"] == 8  # the smaller index among the tied
    lines = answer_lines(tied_result, tied_result.best)
    assert lines[1].startswith("tied: QPS ranges overlap for 2 settings (M=8 ")
    assert "790 (700-790)" in lines[1] and "828 (780-828)" in lines[1]
    assert "chose M=8 ef_construction=200 seed=100, the cheaper build" in lines[1]
    out = tied_result.to_dict()
    assert [entry["build_params"]["M"] for entry in out["tied"]] == [8, 12]
    assert out["best"]["build_params"]["M"] == 8 and out["fastest"]["build_params"]["M"] == 12


def test_tune_unknown_slice(tmp_path: Path) -> None:
    result = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "hnsw",
        "--slice",
        "nope",
        "--build-grid",
        "M=8",
        "--cache-dir",
        tmp_path,
        "-q",
    )
    assert result.exit_code == 2
    slices = ["all", "head", "torso", "tail"]
    for measure in ("lid", "rc", "expansion", "ood"):
        slices += [f"{measure}-q{quartile}" for quartile in range(1, 5)] + [f"hard-{measure}"]
    assert result.stderr == f"Error: unknown slice 'nope' (available: {', '.join(slices)})\n"


def test_tune_flat_and_bad_build_grid() -> None:
    result = run_cli("tune", "words-10k", "--engine", "flat")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: engine flat has no effort parameter (it searches exactly); "
        f"use an index of {WITH_EFFORT}\n"
    )
    result = run_cli("tune", "--engine", "hnsw", "--build-grid", "M")
    assert result.exit_code == 2
    assert "expected NAME=V1,V2,..., got 'M'" in result.stderr
