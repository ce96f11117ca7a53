"""Parent side of the fuzz harness: run ``fuzz_child.py`` over a list of cases in batches,
with a watchdog, and collect one verdict per case.

A child that dies by a signal (or exits early) leaves an ``S <index>`` line without its
``E`` line: that case is recorded as a crash and a new child resumes after it. A child
that reports nothing for ``stall_seconds`` is killed and its current case recorded as a
hang. Several children run at once, each over its own share of the cases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("fuzz_child.py")
STARTUP_SECONDS = 120.0  # imports before the child's first line (the watchdog waits longer)


@dataclass(frozen=True)
class Case:
    """One file to load: ``kind`` picks the loaders (see fuzz_child), ``category`` is the
    kind of damage (for the counts), ``label`` says exactly what was done."""

    kind: str
    path: str
    category: str
    label: str
    extra: dict | None = None


@dataclass
class Verdict:
    case: Case
    crash: str | None  # "SIGSEGV", "hang", "exit 1" ... when the child died on this case
    outcome: list  # [[operation, "ok" | "annkit:Class:msg" | "other:Class:msg"], ...]

    def problems(self) -> list[str]:
        """Everything wrong with this case's handling (empty when it was handled well)."""
        where = f"{self.case.category}: {self.case.label} ({self.case.path})"
        if self.crash is not None:
            return [f"{where}: child process {self.crash}"]
        found = []
        for operation, result in self.outcome:
            if result == "ok":
                continue
            family, _, rest = result.partition(":")
            error_class, _, message = rest.partition(":")
            if family != "annkit":
                found.append(f"{where}: {operation} raised {error_class}: {message[:300]}")
            elif "\n" in message or not message.strip():
                found.append(
                    f"{where}: {operation}: {error_class} message is not one line: "
                    f"{message[:300]!r}"
                )
        return found


def _run_share(cases: list[Case], folder: Path, share: int, stall_seconds: float) -> list[Verdict]:
    cases_file = folder / f"cases-{share}.json"
    cases_file.write_text(
        json.dumps([{"kind": c.kind, "path": c.path, "extra": c.extra or {}} for c in cases])
    )
    report = folder / f"report-{share}.txt"
    verdicts: dict[int, Verdict] = {}
    start = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": ""}
    while start < len(cases):
        report.write_text("")
        process = subprocess.Popen(
            [sys.executable, "-P", str(CHILD), str(cases_file), str(report), str(start)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        seen = 0
        last_progress = time.monotonic()
        hung = False
        while process.poll() is None:
            time.sleep(0.05)
            size = report.stat().st_size
            if size != seen:
                seen, last_progress = size, time.monotonic()
            elif time.monotonic() - last_progress > (stall_seconds if seen else STARTUP_SECONDS):
                hung = True
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        code = process.returncode
        current: int | None = None
        for line in report.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "R":
                continue
            if kind == "S":
                current = int(rest)
            elif kind == "E":
                index, _, outcome = rest.partition(" ")
                verdicts[int(index)] = Verdict(cases[int(index)], None, json.loads(outcome))
                current = None
        if current is None:
            if code != 0:
                raise RuntimeError(f"fuzz child exited with {code} outside any case")
            break
        if hung:
            reason = f"hang (no progress for {stall_seconds:g}s)"
        elif code < 0:
            reason = f"died by {signal.Signals(-code).name}"
        else:
            reason = f"exited with code {code}"
        verdicts[current] = Verdict(cases[current], reason, [])
        start = current + 1
    return [verdicts[index] for index in range(len(cases))]


def run_cases(
    cases: list[Case], folder: Path, *, workers: int = 2, stall_seconds: float = 30.0
) -> list[Verdict]:
    """Load every case in ``workers`` child processes at once; one verdict per case, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    shares = [cases[position::workers] for position in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(
            pool.map(
                lambda item: _run_share(item[1], folder, item[0], stall_seconds), enumerate(shares)
            )
        )
    verdicts: list[Verdict] = []
    for position in range(len(cases)):
        verdicts.append(results[position % workers][position // workers])
    return verdicts


def summarise(verdicts: list[Verdict]) -> dict:
    """Counts per category: cases, loaded fine, refused with an annkit error, crashes,
    hangs, non-annkit exceptions."""
    summary: dict[str, dict[str, int]] = {}
    for verdict in verdicts:
        row = summary.setdefault(
            verdict.case.category,
            {"cases": 0, "loaded": 0, "refused": 0, "crashes": 0, "other_exceptions": 0},
        )
        row["cases"] += 1
        if verdict.crash is not None:
            row["crashes"] += 1
        elif any(not r.startswith(("ok", "annkit:")) for _, r in verdict.outcome):
            row["other_exceptions"] += 1
        elif all(r == "ok" for _, r in verdict.outcome):
            row["loaded"] += 1
        else:
            row["refused"] += 1
    return summary
