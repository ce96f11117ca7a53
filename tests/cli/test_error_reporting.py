"""How the command line reports errors: one line and exit 2 by default, a traceback with
--debug (or ANNKIT_DEBUG=1), click's usage errors with exit 2, 130 on an interrupt."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_runner import run_cli

TRUNCATED = (
    "Error: bad.fvecs: truncated file: 40 bytes is not a whole number of 36-byte "
    "records (dimension 8, from the first record)"
)


@pytest.fixture()
def bad_file(tmp_path, monkeypatch):
    """A truncated .fvecs (one 36-byte record and 4 stray bytes), in the working folder."""
    monkeypatch.chdir(tmp_path)
    record = np.array([8], "<i4").tobytes() + np.ones(8, "<f4").tobytes()
    (tmp_path / "bad.fvecs").write_bytes(record + record[:4])
    return "bad.fvecs"


def test_default_is_one_line_without_traceback(bad_file):
    result = run_cli("info", bad_file)
    assert result.exit_code == 2
    assert result.stderr == TRUNCATED + "\n" and result.stdout == ""


@pytest.mark.parametrize("how", ["option", "environment"])
def test_debug_shows_the_traceback_then_the_same_line(bad_file, how):
    if how == "option":
        result = run_cli("--debug", "info", bad_file)
    else:
        result = run_cli("info", bad_file, env={"ANNKIT_DEBUG": "1"})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any(
        line.startswith("annkit.errors.DatasetError: bad.fvecs: truncated file") for line in lines
    )
    assert lines[-1] == TRUNCATED


def test_unexpected_exception_is_one_line_and_points_to_debug(bad_file, monkeypatch):
    def broken(path):
        raise ZeroDivisionError("boom\nsecond line")

    monkeypatch.setattr("annkit.cli.info.describe_file", broken)
    result = run_cli("info", bad_file)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: unexpected ZeroDivisionError: boom second line (rerun with --debug for details)\n"
    )
    debug = run_cli("--debug", "info", bad_file)
    assert debug.exit_code == 2
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: boom" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("Error: unexpected ZeroDivisionError")


def test_os_error_is_one_line(bad_file, monkeypatch):
    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("annkit.cli.info.describe_file", denied)
    result = run_cli("info", bad_file)
    assert result.exit_code == 2
    assert result.stderr == ("Error: PermissionError: [Errno 13] Permission denied: 'bad.fvecs'\n")


def test_interrupt_exits_130_without_traceback(bad_file, monkeypatch):
    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr("annkit.cli.info.describe_file", interrupted)
    result = run_cli("info", bad_file)
    assert result.exit_code == 130
    assert result.stderr.strip() == "annkit: interrupted"  # info writes nothing


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "Error: No such command 'nope'."),
        (["info"], "Error: Missing argument 'PATH'."),
        (["info", "words-10k", "--nope"], "Error: No such option '--nope'."),
        (
            ["query", "idx", "q.npy", "-k", "0", "-o", "o.npy"],
            "Error: Invalid value for '-k': 0 is not in the range x>=1.",
        ),
        (["build", "words-10k", "-o", "x"], "Error: Missing option '-e' / '--engine'."),
        (
            ["evaluate", "idx", "--mode", "fast"],
            "Error: Invalid value for '--mode': 'fast' is not one of 'batch', 'single'.",
        ),
    ],
)
def test_usage_errors_exit_2_with_click_usage_text(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message
    assert result.stderr.startswith("Usage: annkit") and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_real_process_debug_and_default(bad_file, tmp_path):
    """The same through the installed entry point (a real stderr, a real exit status)."""
    plain = subprocess.run(
        [sys.executable, "-m", "annkit", "info", bad_file],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (plain.returncode, plain.stderr, plain.stdout) == (2, TRUNCATED + "\n", "")
    debug = subprocess.run(
        [sys.executable, "-m", "annkit", "--debug", "info", bad_file],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode == 2
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert 'File "' in debug.stderr and debug.stderr.splitlines()[-1] == TRUNCATED
