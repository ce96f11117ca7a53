"""Every table annkit prints stays readable at 80 columns when stdout is not a terminal (a
file, a pipe, a CI log): CliRunner's output is not a terminal, so rich draws at 80 columns.
No cell may be elided ('…'), and the numbers --json gives appear in the table output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_runner import NO_COLUMNS, run_cli
from rich.table import Table
from sweep_files import sweep_text

from annkit.cli.console import stacked_lines, stdout_console
from annkit.engines import engine_names

pytestmark = pytest.mark.slow  # every command run on words-10k

ELLIPSIS = "…"
BOX = "┏┃┡│└┌├╇┗┣"
SWEEP = sweep_text("tables-80-hnsw-flat")


def table_output(*args: object) -> str:
    result = run_cli(*args, env=NO_COLUMNS)
    assert result.exit_code == 0, result.output
    assert ELLIPSIS not in result.stdout, result.stdout
    table_lines = [line for line in result.stdout.splitlines() if line[:1] in BOX]
    assert all(len(line) <= 80 for line in table_lines), result.stdout
    return result.stdout


def json_output(*args: object) -> dict:
    result = run_cli(*args, "--json", env=NO_COLUMNS)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An hnsw index on words-10k and a small sweep's results."""
    root = tmp_path_factory.mktemp("tables80")
    result = run_cli(
        "build",
        "words-10k",
        "-e",
        "hnsw",
        "-p",
        "M=8",
        "--threads",
        "1",
        "-o",
        root / "hnsw",
        env=NO_COLUMNS,
    )
    assert result.exit_code == 0, result.output
    (root / "sweep.toml").write_text(SWEEP, encoding="utf-8")
    result = run_cli(
        "bench",
        root / "sweep.toml",
        "--results-root",
        root,
        "-o",
        "sweep",
        "--threads",
        "1",
        "-q",
        env=NO_COLUMNS,
    )
    assert result.exit_code == 0, result.output
    return root


def test_the_table_rule_stacks_a_table_too_wide_for_its_longest_words() -> None:
    table = Table(title="wide")
    headers = [
        "build params",
        "ef",
        "QPS (min-max)",
        "all",
        "head",
        "torso",
        "tail",
        "hard-lid",
        "hard-rc",
        "hard-expansion",
        "hard-ood",
        "evals",
    ]
    for header in headers:
        table.add_column(header)
    cells = [
        "M=8 ef_construction=200",
        "65",
        "5,376 (5,216-5,376)",
        "0.9618",
        "0.9820",
        "0.9635",
        "0.9500",
        "0.8750",
        "0.8880",
        "0.9230",
        "0.8970",
        "9",
    ]
    table.add_row(*cells)
    console = stdout_console()
    with console.capture() as captured:
        console.print(table)
    text = captured.get()
    assert ELLIPSIS not in text and all(len(line) <= 80 for line in text.splitlines())
    for header, cell in zip(headers, cells, strict=True):
        assert f"{header}: {cell}" in " ".join(text.split())
    lines = stacked_lines(table, 80)
    assert lines[0] == "wide" and lines[1].startswith("- build params: M=8")
    fields = Table(title="fields", show_header=False)
    fields.add_column("field")
    fields.add_column("value")
    fields.add_row("QPS", "4,554 (3,245-4,610)")
    assert stacked_lines(fields, 80) == ["fields", "- QPS: 4,554 (3,245-4,610)"]


@pytest.mark.slow
def test_tune_table(folder: Path) -> None:
    args = (
        "tune",
        "words-10k",
        "-e",
        "hnsw",
        "--build-grid",
        "M=8,12",
        "--effort-grid",
        "10,20,40,80,160",
        "--target",
        "0.95",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        folder / "cache",
        "-q",
    )
    out = json_output(*args)
    text = table_output(*args)
    for setting in out["settings"]:
        assert f"{setting['effort']:,}" in text
        for name, value in setting["recall"].items():
            if "-q" not in name:  # hardness quartiles only with --all-slices
                assert f"{value:.4f}" in text
    # which setting is fastest may differ between the two runs; the answer is one of them
    answer = re.search(r"^answer: M=(\d+) .* ef=(\d+) \(refined between", text, re.M)
    assert answer is not None, text
    chosen = {(setting["build_params"]["M"], setting["effort"]) for setting in out["settings"]}
    assert (int(answer[1]), int(answer[2])) in chosen


def test_evaluate_table(folder: Path) -> None:
    args = (
        "evaluate",
        folder / "hnsw",
        "words-10k",
        "-p",
        "ef=40",
        "--runs",
        "2",
        "--all-slices",
        "-q",
    )
    out = json_output(*args)
    text = table_output(*args)
    assert f"{out['recall']:.4f}" in text
    for entry in out["slices"].values():
        assert f"{entry['recall']:.4f}" in text
    assert re.search(r"QPS \(min-max\) +│ +[\d,]+ \([\d,]+-[\d,]+\) \(batch, fastest of 2", text), (
        text
    )


def test_report_and_bench_tables(folder: Path) -> None:
    out = json_output("report", folder / "sweep")
    text = table_output("report", folder / "sweep")
    for entry in out["engines"].values():
        for run_entry in entry["pareto"]:
            assert f"{run_entry['recall']:.4f}" in text
            assert f"{run_entry['qps']:,.0f}" in text
            if run_entry["qps_min"] != run_entry["qps_max"]:
                assert f"{run_entry['qps_min']:,.0f}-{run_entry['qps_max']:,.0f}" in text
    again = table_output(
        "bench",
        folder / "sweep.toml",
        "--results-root",
        folder,
        "-o",
        "sweep",
        "--threads",
        "1",
        "-q",
    )  # finished: reports it again
    for entry in out["engines"].values():
        for run_entry in entry["pareto"]:
            assert f"{run_entry['recall']:.4f}" in again


def test_compare_table(folder: Path) -> None:
    sweep = folder / "sweep"
    out = json_output("compare", sweep, sweep)
    text = table_output("compare", sweep, sweep)
    assert out["passed"] and len(out["rows"]) == 3
    for row in out["rows"]:
        recall = row["recall"]["current"]
        assert f"{recall:.4f}" in text


def test_effort_table(folder: Path) -> None:
    args = ("effort", folder / "hnsw", "words-10k", "--grid", "10,20,40,80,160", "-q")
    out = json_output(*args)
    text = table_output(*args)
    for name, entry in out["distribution"].items():
        if "-q" not in name:  # hardness quartiles only with --all-slices
            assert f"{entry['share_not_reached']:.1%}" in text
            assert f"{entry['queries']:,}" in text


def test_engines_and_info_tables(folder: Path) -> None:
    out = json_output("engines")
    text = table_output("engines")
    flat = " ".join(text.split())
    for name in engine_names():
        assert name in text
        for kind in ("build_params", "query_params"):
            for param in out[name][kind]:
                assert param in flat
    info = json_output("info", folder / "hnsw")
    text = table_output("info", folder / "hnsw")
    assert f"{info['count']:,}" in text or str(info["count"]) in text


@pytest.mark.slow
def test_adapt_table(folder: Path) -> None:
    args = (
        "adapt",
        folder / "hnsw",
        "words-10k",
        "--kind",
        "threshold",
        "--folds",
        "2",
        "--grid",
        "10,20,40,80",
        "--target",
        "0.9",
        "--force",
        "-o",
        folder / "policy.json",
        "-q",
    )
    out = json_output(*args)
    text = table_output(*args)
    for comparison in out["comparisons"]:  # recall is deterministic: the same in both runs
        for name, entry in comparison.items():
            if name == "room":  # a bound: its line below the table, not a row
                assert f"{entry['oracle_work_ratio']:.2f}x the work" in text
                continue
            if isinstance(entry, dict) and entry.get("recall") is not None:
                assert f"{entry['recall']:.4f}" in text
                assert f"{entry['tail_band_recall']:.4f}" in text
