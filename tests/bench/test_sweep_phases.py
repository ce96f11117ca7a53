"""Where a sweep's time goes: phase times in meta.json and in --json (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import run_cli

from annkit.bench.runner import PHASES


def test_phase_times_are_in_meta_and_json_and_add_up(tmp_path: Path) -> None:
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[bench]\ndataset = "words-10k"\nruns = 1\n\n[[engine]]\nname = "hnsw"\n'
        "build = { M = [8] }\nquery = { ef = [10, 20] }\n"
    )
    out = tmp_path / "out"
    result = run_cli(
        "bench", sweep, "-o", out, "--results-root", tmp_path, "--threads", "1", "-q", "--json"
    )
    assert result.exit_code == 0, result.output
    phases = json.loads(result.stdout)["sweep"]["phases"]
    assert list(phases) == [*PHASES, "other", "report_and_plot"]
    assert phases["build"] > 0 and phases["timed_search"] > 0 and phases["load"] == 0
    meta = json.loads((out / "meta.json").read_text())
    assert {k: v for k, v in phases.items() if k != "report_and_plot"} == meta["phases"]
    seconds = json.loads(result.stdout)["sweep"]["seconds"]
    assert abs(sum(meta["phases"].values()) - seconds) < 0.05 * seconds + 0.1
    again = run_cli(
        "bench",
        sweep,
        "-o",
        out,
        "--results-root",
        tmp_path,
        "--threads",
        "1",
        "-q",
        "--json",
        "--force",
    )
    assert json.loads(again.stdout)["sweep"]["phases"]["load"] > 0  # the cached index
