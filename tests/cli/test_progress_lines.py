"""Progress on long commands when stderr is not a terminal (a CI log, a pipe): one plain line
per step, at most one per tenth of the work, with the time spent and the time left; nothing
with --quiet or --json."""

from __future__ import annotations

import io
import re

from cli_runner import run_cli
from rich.console import Console

from annkit.cli import console as console_module
from annkit.cli.console import PlainSteps, eta_text


def test_plain_steps_print_the_first_step_each_tenth_and_the_last(monkeypatch):
    clock = iter(float(second) for second in range(1000))
    monkeypatch.setattr(console_module.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    steps = PlainSteps("ground truth", Console(file=out, width=200))
    for done in range(1, 101):
        steps(done, 100)
    steps(100, 100)  # the end reported twice: one line
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == [
        f"{done}/100" for done in (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    ]
    assert lines[0] == "ground truth: 1/100 (1%), 1.0s, ~99s left"
    assert lines[-1] == "ground truth: 100/100 (100%), 11.0s"  # the clock ticks per line


def test_eta_is_the_pace_so_far():
    assert eta_text(0, 10, 0.5) == "0.5s"
    assert eta_text(2, 10, 4.0) == "4.0s, ~16s left"
    assert eta_text(10, 10, 20.0) == "20.0s"


def test_groundtruth_prints_plain_step_lines_and_nothing_when_quiet(tmp_path):
    result = run_cli("groundtruth", "words-10k", "-k", "10", "-o", tmp_path / "gt.hdf5")
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(
        r"(ground truth: [\d,]+/1,000 \(\d+%\), \d+\.\ds(, ~\d+s left)?\n)+", result.stderr
    )
    assert result.stderr.splitlines()[-1].startswith("ground truth: 1,000/1,000 (100%)")
    quiet = run_cli("groundtruth", "words-10k", "-k", "10", "-o", tmp_path / "q.hdf5", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
