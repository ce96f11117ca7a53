"""Ctrl-C (SIGINT) stops a command within about a second, with a message true for that
command and no partial output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from annkit.cli.main import INTERRUPTED, interrupt_message


def interrupt_after(args: list[str], wait: float) -> tuple[int, float, str]:
    """Run ``annkit ARGS`` in a child process, send SIGINT after ``wait`` seconds (it must
    still be running then): (exit code, seconds from the signal to the exit, stderr)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "annkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(wait)
        assert child.poll() is None, child.communicate()
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, elapsed, stderr


@pytest.mark.slow
def test_ctrl_c_stops_a_long_native_build_at_once(tmp_path):
    """hnsw M=48 ef_construction=400 on words-10k with one thread builds for well over 10 s;
    hnswlib blocks Python's signal handling while it runs, so without the build thread the
    interrupt would wait for the build to finish."""
    output = tmp_path / "idx"
    # imports and data loading take ~2 s; then it is building
    returncode, elapsed, stderr = interrupt_after(
        [
            "build",
            "words-10k",
            "-e",
            "hnsw",
            "-p",
            "M=48",
            "-p",
            "ef_construction=400",
            "--threads",
            "1",
            "-o",
            str(output),
        ],
        4.0,
    )
    assert returncode == 130
    assert elapsed < 2.0, elapsed
    assert stderr.strip().splitlines()[-1] == "annkit: interrupted: no index was written"
    assert "Traceback" not in stderr
    assert os.listdir(tmp_path) == []  # neither the bundle nor its temporary folder


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "x"], "annkit: interrupted: no index was written"),
        (["--debug", "bench", "s.toml"], INTERRUPTED["bench"]),
        (["evaluate", "idx"], "annkit: interrupted: nothing was written"),
        (["groundtruth", "b.npy"], "annkit: interrupted: no ground-truth file was written"),
        (["tune", "-e", "hnsw"], INTERRUPTED["tune"]),
        (["info", "x"], "annkit: interrupted"),
    ],
)
def test_each_command_says_what_an_interrupt_left(argv, message):
    assert interrupt_message(argv) == message


def test_bench_message_says_how_to_resume():
    assert INTERRUPTED["bench"] == (
        "annkit: interrupted: finished runs were kept; run the "
        "same command again to resume the sweep"
    )


@pytest.mark.slow
@pytest.mark.shared
def test_ctrl_c_stops_an_exact_search_at_once(shared_words, tmp_path):
    """groundtruth of 20,000 queries over 100k x 384 vectors with one thread searches for
    well over 10 s; faiss checks for an interrupt between blocks of its search, so it lands
    within a second or two (2.2 s once on a loaded CI machine), with the groundtruth message
    and no output file."""
    import h5py
    import numpy as np

    with h5py.File(shared_words, "r") as handle:
        base = handle["train"][()]
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", base[:20_000])
    output = tmp_path / "out" / "gt.hdf5"
    output.parent.mkdir()
    # the files are read (~1 s); then faiss searches for > 10 s
    returncode, elapsed, stderr = interrupt_after(
        [
            "groundtruth",
            str(tmp_path / "base.npy"),
            str(tmp_path / "queries.npy"),
            "-k",
            "100",
            "--metric",
            "angular",
            "--threads",
            "1",
            "-q",
            "-o",
            str(output),
        ],
        5.0,
    )
    assert returncode == 130
    assert elapsed < 3.0, elapsed
    assert stderr.strip().splitlines()[-1] == (
        "annkit: interrupted: no ground-truth file was written"
    )
    assert os.listdir(output.parent) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_long_batch_search_at_once(tmp_path):
    """evaluate of hnsw with ef=10,000 over words-10k: the one batch of 1,000 queries runs
    for several seconds in native code; the timed passes run in their own thread (so even a
    library that blocks signal handling cannot delay it), and the interrupt lands at once,
    with evaluate's message."""
    index = tmp_path / "hnsw"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "annkit",
            "build",
            "words-10k",
            "-e",
            "hnsw",
            "-p",
            "M=16",
            "-o",
            str(index),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    # start-up and the exact truth take ~2 s; then the batch runs
    returncode, elapsed, stderr = interrupt_after(
        ["evaluate", str(index), "words-10k", "-p", "ef=10000", "--runs", "1"], 4.0
    )
    assert returncode == 130
    assert elapsed < 1.5, elapsed
    assert stderr.strip().splitlines()[-1] == "annkit: interrupted: nothing was written"
