"""A sweep on labelled data: listed filter strategies become settings of their own, each
record carries its strategy and plan, and the report names each band's fastest strategy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli

SWEEP = """[bench]
dataset = "words-10k-labelled"
runs = 1
filter_strategy = ["native", "subset"]

[[engine]]
name = "faiss"
build = { factory = "HNSW16,Flat" }
query = { efSearch = [16, 64] }
"""


@pytest.mark.slow
def test_listed_strategies_are_settings_and_the_report_picks_per_band(tmp_path: Path) -> None:
    sweep = tmp_path / "filtered.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"
    result = run_cli("bench", sweep, "-o", out, "--results-root", tmp_path, "--threads", "1", "-q")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert sorted((r["query_params"]["efSearch"], r["filter_strategy"]) for r in records) == [
        (16, "native"),
        (16, "subset"),
        (64, "native"),
        (64, "subset"),
    ]
    for record in records:
        assert record["query_params"]["filter_strategy"] == record["filter_strategy"]
        plan = record["filter_plan"]
        assert set(plan["sel1-10%"]) == {record["filter_strategy"]}
        assert plan["unfiltered"] == {"none": 321}
    subset = [r for r in records if r["filter_strategy"] == "subset"]
    assert all(r["slices"]["sel1-10%"]["recall"] == 1.0 for r in subset)
    report = json.loads(run_cli("report", out, "--json").stdout)
    choices = {(c["band"], c["strategy"]) for c in report["filter_choices"]}
    assert ("sel1-10%", "subset") in choices  # native HNSW misses 0.95 on 1-10% at ef <= 64
    assert all(c["band"] != "unfiltered" for c in report["filter_choices"])


def test_a_bad_filter_strategy_in_a_sweep_names_its_line(tmp_path: Path) -> None:
    sweep = tmp_path / "bad.toml"
    sweep.write_text('[bench]\nfilter_strategy = "pre"\n\n[[engine]]\nname = "flat"\n')
    result = run_cli("bench", sweep, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {sweep} line 2: [bench] filter_strategy must be one")
