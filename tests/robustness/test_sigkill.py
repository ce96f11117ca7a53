"""SIGKILL ``annkit bench`` at seeded random moments, rerun it, and check the results folder.

Each round runs one small sweep on words-10k into a fresh results root. The sweep is
started again and again and killed with SIGKILL: three kills in four hit the whole process
group (runner and its worker die together, as when a machine goes down), every fourth only
the runner (its worker is orphaned and must exit by itself). Kills come either after a
seeded random delay or a seeded moment after a new record appears in runs.jsonl (when the
next setting starts and the per-query file is rewritten). After every kill or completed
run:

- runs.jsonl parses line by line, every line a whole record, no run_id twice; the store's
  own reader agrees; no record present before has gone, no finished record has changed;
- perquery.h5 opens and holds every finished run; meta.json parses; plot.png, when there,
  is a whole PNG; the report can be built from the folder;
- the only extra files are the store's hidden ``.<name>.<hex>.tmp`` temporaries, and a
  run that completes leaves none; every index in the cache is a complete, verified bundle.

A completed round must have every setting ok with exactly the recall (and per-query
recall) of an uninterrupted run. Set ANNKIT_ROBUSTNESS_REPORT to a folder to get the
counts as JSON there.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from sweep_files import sweep_text

from annkit.bench.report import build_report, load_results
from annkit.bench.store import read_runs
from annkit.bundle import read_manifest, verify_payload
from annkit.errors import InputError

SEED = 4242
KILLS = 22
SWEEP = sweep_text("sigkill-hnsw-annoy-flat")
SETTINGS = 17
RESULT_FILES = {"runs.jsonl", "perquery.h5", "meta.json", "plot.png", ".lock", "worker.log"}
TEMPORARY = re.compile(r"^\.(runs\.jsonl|perquery\.h5|meta\.json|plot\.png)\.[0-9a-f]{8}\.tmp$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"


@dataclass
class Tally:
    kills_group: int = 0
    kills_parent: int = 0
    completed_runs: int = 0
    rounds_completed: int = 0
    rounds_completed_after_kills: int = 0
    records_lost: int = 0
    records_changed: int = 0
    duplicates: int = 0
    corrupt_files: int = 0
    stray_files: int = 0
    temporaries_after_kill: int = 0
    failed_records_seen: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)


def bench(root: Path, sweep: Path, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "annkit",
        "bench",
        str(sweep),
        "-o",
        "x",
        "--results-root",
        str(root),
        "--threads",
        "1",
        "-q",
        "--json",
    ]
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            command,
            start_new_session=True,
            cwd=root.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def count_lines(path: Path) -> int:
    try:
        return len(path.read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def inspect(root: Path, tally: Tally, when: str) -> dict[str, dict]:
    """Check the results folder and the cache; returns the records by run_id."""
    folder = root / "x"
    if not folder.exists():
        return {}
    names = {path.name for path in folder.iterdir()}
    temporaries = {name for name in names if TEMPORARY.match(name)}
    stray = names - RESULT_FILES - temporaries
    if stray:
        tally.stray_files += len(stray)
        tally.problem(f"{when}: unexpected files {sorted(stray)}")
    tally.temporaries_after_kill += len(temporaries)
    records: dict[str, dict] = {}
    runs = folder / "runs.jsonl"
    if runs.exists():
        lines = runs.read_bytes().splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                assert isinstance(record, dict) and {"run_id", "status"} <= set(record)
            except (ValueError, AssertionError):
                tally.corrupt_files += 1
                tally.problem(f"{when}: runs.jsonl line {number} of {len(lines)} is not a record")
                continue
            if record["run_id"] in records:
                tally.duplicates += 1
                tally.problem(f"{when}: run {record['run_id']} stored twice")
            records[record["run_id"]] = record
        try:
            if [r["run_id"] for r in read_runs(runs)] != list(records):
                tally.problem(f"{when}: the store's reader disagrees with the file")
        except InputError as exc:
            tally.problem(f"{when}: the store cannot read runs.jsonl: {exc}")
    ok = {run_id for run_id, record in records.items() if record["status"] == "ok"}
    tally.failed_records_seen += len(records) - len(ok)
    perquery = folder / "perquery.h5"
    if ok or perquery.exists():
        try:
            with h5py.File(perquery, "r") as handle:
                missing = ok - set(handle)
                # per-query recall (and counts) (1000,); returned ids <run_id>.ids (1000, k)
                shapes = {handle[name].shape for name in handle if not name.endswith(".ids")}
                id_shapes = {handle[name].shape for name in handle if name.endswith(".ids")}
            if missing or shapes - {(1000,)} or id_shapes - {(1000, 10)}:
                tally.problem(f"{when}: perquery.h5 lacks {sorted(missing)} or has shapes {shapes}")
        except OSError as exc:
            tally.corrupt_files += 1
            tally.problem(f"{when}: perquery.h5 unreadable: {exc}")
    meta = folder / "meta.json"
    if meta.exists():
        try:
            assert isinstance(json.loads(meta.read_text()), dict)
        except (ValueError, AssertionError):
            tally.corrupt_files += 1
            tally.problem(f"{when}: meta.json is not a JSON object")
    plot = folder / "plot.png"
    if plot.exists():
        data = plot.read_bytes()
        if not (data.startswith(PNG_MAGIC) and data.endswith(PNG_END)):
            tally.corrupt_files += 1
            tally.problem(f"{when}: plot.png is not a whole PNG ({len(data)} bytes)")
    if ok:
        try:
            loaded_folder, loaded, loaded_meta = load_results(folder)
            build_report(loaded, loaded_meta, loaded_folder)
        except InputError as exc:
            tally.problem(f"{when}: no report from the folder: {exc}")
    for index in (root / ".cache" / "indexes").glob("[!.]*"):
        try:
            verify_payload(index, read_manifest(index))
        except Exception as exc:  # noqa: BLE001 - any failure is a half-written cache entry
            tally.corrupt_files += 1
            tally.problem(f"{when}: cached index {index.name} is not a whole bundle: {exc}")
    for truth in (root / ".cache" / "groundtruth").glob("[!.]*.npy"):
        try:
            np.load(truth, allow_pickle=False)
        except (OSError, ValueError) as exc:
            tally.corrupt_files += 1
            tally.problem(f"{when}: cached ground truth {truth.name} unreadable: {exc}")
    return records


def compare_with_before(before: dict, after: dict, tally: Tally, when: str) -> None:
    for run_id, record in before.items():
        if run_id not in after:
            tally.records_lost += 1
            tally.problem(f"{when}: run {run_id} ({record['status']}) disappeared")
        elif record["status"] == "ok" and after[run_id] != record:
            tally.records_changed += 1
            tally.problem(f"{when}: finished run {run_id} was changed")


def recall_by_run(root: Path) -> tuple[dict, dict]:
    folder = root / "x"
    records = {r["run_id"]: r for r in read_runs(folder / "runs.jsonl")}
    with h5py.File(folder / "perquery.h5", "r") as handle:
        per_query = {name: handle[name][()] for name in handle}
    return {run_id: (r["status"], r["recall"]) for run_id, r in records.items()}, per_query


def write_summary(tally: Tally) -> dict:
    """The counts (and to ANNKIT_ROBUSTNESS_REPORT/sigkill.json when that is set)."""
    summary = {key: value for key, value in vars(tally).items() if key != "problems"}
    summary["kills"] = tally.kills_group + tally.kills_parent
    report = os.environ.get("ANNKIT_ROBUSTNESS_REPORT")
    if report:
        Path(report).mkdir(parents=True, exist_ok=True)
        Path(report, "sigkill.json").write_text(
            json.dumps({**summary, "problems": tally.problems}, indent=1)
        )
    return summary


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.mark.slow
def test_sigkilled_sweeps_resume_without_loss_duplicates_or_torn_files(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    log = tmp_path / "stderr.log"
    reference_root = tmp_path / "reference"
    reference_root.mkdir()
    done = bench(reference_root, sweep, log)
    assert done.wait(300) == 0, log.read_text()[-2000:]
    reference_recall, reference_per_query = recall_by_run(reference_root)
    assert len(reference_recall) == SETTINGS
    assert all(status == "ok" for status, _ in reference_recall.values())

    rng = random.Random(SEED)
    tally = Tally()
    orphaned_groups: list[int] = []
    live: list[subprocess.Popen] = []
    round_number = 0
    root = tmp_path / f"round{round_number}"
    root.mkdir()
    before: dict[str, dict] = {}
    kills_in_round = 0

    def check_round_complete(records: dict, when: str, kills: int) -> bool:
        if len(records) != SETTINGS or any(r["status"] != "ok" for r in records.values()):
            return False
        recall, per_query = recall_by_run(root)
        if recall != reference_recall:
            tally.problem(f"{when}: recall differs from the uninterrupted run")
        for run_id, values in reference_per_query.items():
            if not np.array_equal(per_query.get(run_id), values):
                tally.problem(f"{when}: per-query recall of {run_id} differs")
        tally.rounds_completed += 1
        tally.rounds_completed_after_kills += kills > 0
        return True

    try:
        attempt = 0
        while tally.kills_group + tally.kills_parent < KILLS:
            attempt += 1
            assert attempt < 4 * KILLS, "the sweep keeps finishing before it can be killed"
            when = f"round {round_number} attempt {attempt}"
            process = bench(root, sweep, log)
            live.append(process)
            whole_group = (tally.kills_group + tally.kills_parent) % 4 != 3  # every 4th: runner
            if rng.random() < 0.5:
                deadline = time.monotonic() + rng.uniform(0.2, 4.0)
                while time.monotonic() < deadline and process.poll() is None:
                    time.sleep(0.01)
            else:  # just after the next record is committed
                runs, seen = root / "x" / "runs.jsonl", len(before)
                deadline = time.monotonic() + 60
                while (
                    process.poll() is None
                    and count_lines(runs) <= seen
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                if whole_group:
                    os.killpg(process.pid, signal.SIGKILL)
                    tally.kills_group += 1
                else:
                    os.kill(process.pid, signal.SIGKILL)
                    tally.kills_parent += 1
                    orphaned_groups.append(process.pid)
                process.wait()
                kills_in_round += 1
                when += f" (killed {'group' if whole_group else 'runner'})"
            else:
                tally.completed_runs += 1
                if process.returncode != 0:
                    tally.problem(f"{when}: exit code {process.returncode}")
            after = inspect(root, tally, when)
            compare_with_before(before, after, tally, when)
            before = after
            if process.returncode == 0 and check_round_complete(after, when, kills_in_round):
                round_number += 1
                kills_in_round = 0
                root = tmp_path / f"round{round_number}"
                root.mkdir()
                before = {}

        # orphaned workers notice their runner is gone and exit by themselves
        deadline = time.monotonic() + 60
        while any(group_alive(g) for g in orphaned_groups) and time.monotonic() < deadline:
            time.sleep(0.1)
        stuck = [g for g in orphaned_groups if group_alive(g)]
        assert stuck == [], f"orphaned workers still running: {stuck}"

        final = bench(root, sweep, log)
        live.append(final)
        assert final.wait(300) == 0, log.read_text()[-2000:]
        tally.completed_runs += 1
        after = inspect(root, tally, "final run")
        compare_with_before(before, after, tally, "final run")
        assert check_round_complete(after, "final run", kills_in_round), after
        leftovers = [p.name for p in (root / "x").iterdir() if TEMPORARY.match(p.name)]
        assert leftovers == [], leftovers
    finally:
        write_summary(tally)
        for process in live:
            if process.poll() is None or group_alive(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    summary = write_summary(tally)
    assert tally.problems == []
    assert summary["kills"] == KILLS and tally.kills_parent == KILLS // 4
    assert tally.rounds_completed_after_kills >= 1
    assert (tally.records_lost, tally.duplicates, tally.corrupt_files) == (0, 0, 0)


@pytest.mark.parametrize("damage", ["torn last line", "garbage line"])
def test_a_damaged_runs_file_is_reported_not_resumed_over(tmp_path, damage):
    """The store never writes a partial line (whole-file atomic replace), so one in
    runs.jsonl means outside damage: the reader names the line instead of guessing."""
    from annkit.bench.store import ResultsStore
    from annkit.errors import InputError

    folder = tmp_path / "x"
    store = ResultsStore(folder)
    record = {
        "run_id": "a",
        "status": "ok",
        "engine": "flat",
        "build_params": {},
        "query_params": {},
        "k": 10,
        "mode": "batch",
        "recall": 1.0,
        "qps": 1.0,
        "latency_ms": {},
        "build_seconds": 0.1,
        "index_bytes": 1,
        "dataset": "d",
        "finished_at": "now",
    }
    store.add(record)
    store.add({**record, "run_id": "b"})
    text = (folder / "runs.jsonl").read_text()
    broken = text[:-20] if damage == "torn last line" else text + "{not json\n"
    (folder / "runs.jsonl").write_text(broken)
    with pytest.raises(InputError, match=r"runs\.jsonl line \d: not a valid JSON record$"):
        ResultsStore(folder)
