"""What the benchmark scripts share: where the data is, the options they have in common, the
``annkit`` command run as a child process, and one writer of figures (JSON written atomically,
with the machine's facts).

The scripts run as ``python benchmarks/X.py``, so this folder is first on ``sys.path`` and they
import this module as ``common``. It is not part of annkit and is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# annkit is imported where it is used: bench_scale.py's child processes import this module,
# and their peak memory is measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
#: words-100k: ann-benchmarks HDF5, 100k x 384 MiniLM vectors (angular), 5,000 queries with
#: frequency bands; kept outside the repository, in ../shared/data beside it
WORDS_100K = ROOT.parent / "shared" / "data" / "words-minilm-384-angular.hdf5"


def dataset_file(path: str | os.PathLike[str] | None = None, *, other: str = "") -> Path:
    """``path`` (default: words-100k) as an absolute path; exits with a message saying where the
    file was looked for when it is not there. ``other`` says how to use another file."""
    target = Path(WORDS_100K if path is None else path).expanduser().resolve()
    if not target.is_file():
        how = other or "pass --dataset PATH to use another file"
        raise SystemExit(
            f"dataset not found: {target}\n"
            f"The benchmarks read words-100k from ../shared/data/{WORDS_100K.name} beside "
            f"the repository ({WORDS_100K}); {how}."
        )
    return target


def parser(
    doc: str | None,
    *,
    output: str | None = None,
    dataset: bool = False,
    repeats: int | None = None,
    runs: int | None = None,
    threads: int | None = None,
    workdir: Path | bool = False,
) -> argparse.ArgumentParser:
    """A script's parser: its docstring as the help text, then the shared options it asks for.

    - ``output``: ``--output PATH``, by default that file name in results/;
    - ``dataset``: ``--dataset PATH``, by default words-100k (check it with ``dataset_file``);
    - ``repeats``: ``--repeats N``, timed repetitions (interleaved, best kept);
    - ``runs``: ``--runs N``, runs of the unchanged CI gate;
    - ``threads``: ``--threads N``, threads to build indexes with;
    - ``workdir``: ``--workdir DIR``, where indexes and results are kept between runs: that
      folder by default, or a temporary one (deleted at the end) when ``True``.
    """
    made = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if dataset:
        made.add_argument(
            "--dataset",
            type=Path,
            default=WORDS_100K,
            help=f"ann-benchmarks HDF5 file (default: ../shared/data/{WORDS_100K.name})",
        )
    counts = (
        ("--repeats", repeats, "timed repetitions, interleaved, the best kept"),
        ("--runs", runs, "unchanged gate runs"),
        ("--threads", threads, "threads to build indexes with"),
    )
    for flag, default, what in counts:
        if default is not None:
            made.add_argument(flag, type=int, default=default, help=f"{what} (default: {default})")
    if workdir is not False:
        made.add_argument(
            "--workdir",
            type=Path,
            default=None if workdir is True else workdir,
            help="keep indexes and results here between runs (default: "
            + ("a temporary folder)" if workdir is True else "%(default)s)"),
        )
    if output is not None:
        made.add_argument(
            "--output",
            type=Path,
            default=RESULTS / output,
            help=f"JSON file to write (default: results/{output})",
        )
    return made


def utc_now() -> str:
    """The time now, as the figures record it: 2026-12-07T12:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def git_commit() -> dict[str, Any]:
    """The commit of the working tree, and whether tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_changed": None}
    return {"git_commit": head, "git_changed": bool(changes)}


def machine() -> dict[str, Any]:
    """The facts the figures are read against: CPU model, cores, platform, Python and library
    versions (annkit's own list), the 1/5/15-minute load averages (the machine is shared),
    the date and the git commit."""
    from annkit.bench.store import machine_facts

    return {
        **machine_facts(),
        "load_average": list(os.getloadavg()),
        "date": utc_now(),
        **git_commit(),
    }


def write_figures(
    path: str | os.PathLike[str], figures: dict[str, Any], *, indent: int = 2
) -> Path:
    """Write ``figures`` as JSON to ``path`` atomically (a temporary file beside it, then
    os.replace; the folder is made when missing), with ``machine()`` under ``"machine"`` when
    the figures carry no machine facts of their own. numpy values become Python values and
    NaN or infinity null. Returns the path."""
    from annkit.files import json_ready, write_text

    target = Path(path)
    if "machine" not in figures:
        figures = {**figures, "machine": machine()}
    write_text(target, json.dumps(json_ready(figures), indent=indent, allow_nan=False) + "\n")
    return target


def run_annkit(*args: str) -> tuple[float, str]:
    """Run ``python -m annkit ARGS`` from the repository root: (wall seconds, stdout). Exits
    with the command's error when it fails."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "annkit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"annkit {' '.join(args)} failed: {completed.stderr.strip()}")
    return seconds, completed.stdout


def run_bench(*args: str) -> tuple[float, dict[str, Any]]:
    """Wall seconds and JSON output of ``python -m annkit bench ARGS -q --json``."""
    seconds, stdout = run_annkit("bench", *args, "-q", "--json")
    return seconds, json.loads(stdout)
