"""A stream end to end on the bundled words-10k: the records, the ids file, resume after a
kill (a real SIGKILL of a child ``annkit stream``) giving the records of an uninterrupted
run, and a folder of other settings refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_runner import run_cli

from annkit.io import load_dataset
from annkit.metrics import exact_distances, recall_per_query
from annkit.stream import LiveSet, StepRecord, read_runbook
from annkit.stream.make import sliding_window
from annkit.stream.runbook import runbook_document

HNSW = ["-e", "hnsw", "-p", "M=8", "-p", "ef_construction=40", "-p", "ef=30"]


def small_runbook(tmp_path: Path, searches: int = 3, rows: int = 3000) -> Path:
    """A sliding window over the first ``rows`` rows of words-10k."""
    import yaml

    max_pts, steps = sliding_window(rows, searches, window=rows // 2)
    path = tmp_path / "window.yaml"
    path.write_text(yaml.safe_dump(runbook_document({"words-10k": (max_pts, steps)})))
    return path


def records(folder: Path) -> list[dict]:
    lines = (folder / "steps.jsonl").read_text().splitlines()
    return [StepRecord.from_dict(json.loads(line)).comparable() for line in lines]


@pytest.mark.slow
def test_json_has_one_record_per_step_and_the_ids_recheck(tmp_path):
    runbook = small_runbook(tmp_path)
    ids_file = tmp_path / "ids.h5"
    result = run_cli(
        "stream", runbook, "words-10k", *HNSW, "-o", tmp_path / "out", "--max-queries", "50",
        "--runs", "1", "--ids-out", ids_file, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["query_params"] == {"ef": 30} and report["build_params"]["M"] == 8
    steps = report["steps"]
    assert [step["step"] for step in steps] == list(range(1, 9))
    assert [step["operation"] for step in steps][:3] == ["insert", "search", "insert"]
    searches = [step for step in steps if step["operation"] == "search"]
    assert all(step["live"] == 1500 for step in searches)
    for step in searches:
        assert 0.5 < step["recall"] <= 1 and step["dead_ids"] == 0 and step["k"] == 10
        assert step["p5_recall"] <= step["recall"] and step["index_bytes"] > 0
        assert step["distance_computations"] is None  # hnswlib cannot count: null
        assert set(step["slices"]) == {"head", "torso", "tail"}
    assert report["summary"]["mean_recall"] == pytest.approx(
        np.mean([step["recall"] for step in searches])
    )
    # anyone can recheck the recall from the ids file
    dataset = load_dataset("words-10k")
    from annkit.sources import sample_queries

    queries = sample_queries(dataset, 50).queries
    book = read_runbook(runbook, "words-10k", dataset.n_base)
    live = LiveSet(dataset.n_base)
    with h5py.File(ids_file) as handle:
        for step in book.steps:
            live.apply(step)
            if step.operation != "search":
                continue
            found = handle[f"step_{step.number}"][:]
            assert found.shape == (50, 10) and found.dtype == np.int64
            rows = live.rows()
            true = np.sort(
                exact_distances(
                    dataset.base, queries, np.broadcast_to(rows, (50, len(rows))), "angular"
                ),
                axis=1,
            )[:, :10]
            found_rows = np.where(found >= 0, live.row_of[np.maximum(found, 0)], -1)
            got = exact_distances(dataset.base, queries, found_rows, "angular")
            recall = recall_per_query(true, found, got, 10).mean()
            record = next(s for s in searches if s["step"] == step.number)
            assert recall == pytest.approx(record["recall"], abs=1e-12)


def test_a_folder_of_other_settings_is_refused(tmp_path):
    runbook = small_runbook(tmp_path, searches=2, rows=600)
    out = tmp_path / "out"
    args = ["stream", runbook, "words-10k", "-o", out, "--max-queries", "20", "--runs", "1"]
    assert run_cli(*args, *HNSW, "--json").exit_code == 0
    other = run_cli(*args, "-e", "hnsw", "-p", "M=12")
    assert other.exit_code == 2
    assert other.stderr == (
        f"Error: {out} holds a stream with other settings (build_params differs); "
        "use another -o, or --force to start it over\n"
    )
    assert run_cli(*args, "-e", "hnsw", "-p", "M=12", "--force", "--json").exit_code == 0


def test_a_line_cut_short_is_dropped_and_the_stream_resumes(tmp_path):
    runbook = small_runbook(tmp_path, searches=2, rows=600)
    out = tmp_path / "out"
    args = ["stream", runbook, "words-10k", *HNSW, "-o", out, "--max-queries", "20"]
    assert run_cli(*args, "--runs", "1", "--json").exit_code == 0
    whole = records(out)
    lines = (out / "steps.jsonl").read_text().splitlines(keepends=True)
    (out / "steps.jsonl").write_text("".join(lines[:3]) + lines[3][:40])  # killed mid-line
    result = run_cli(*args, "--runs", "1", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["resumed_from"] == 3
    assert records(out) == whole


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_records(tmp_path):
    runbook = small_runbook(tmp_path, searches=8, rows=4000)
    common = [
        "stream", str(runbook), "words-10k", *HNSW, "--max-queries", "100", "--runs", "1",
        "--rebuild-every", "2", "--json",
    ]  # fmt: skip
    whole = tmp_path / "whole"
    assert run_cli(*common, "-o", whole).exit_code == 0
    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-m", "annkit", *common, "-o", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    steps_file = killed / "steps.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if steps_file.is_file() and len(steps_file.read_text().splitlines()) >= 9:
                break
            assert child.poll() is None, "the stream ended before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    done = len(steps_file.read_text().splitlines())
    assert 9 <= done < 23 and not (killed / "report.json").exists()
    result = run_cli(*common, "-o", killed)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["resumed_from"] == done
    assert records(killed) == records(whole)


def test_labelled_data_follows_the_filters_and_the_exact_index_scores_one(tmp_path):
    """On words-10k-labelled the truth and the search follow each query's filter: an exact
    changeable index (faiss Flat through its id map) then has filtered recall 1 at every
    step, with no short results."""
    from annkit.measure import Measure
    from annkit.stream import StreamSettings, run_stream

    runbook = small_runbook(tmp_path, searches=2, rows=2000)
    text = runbook.read_text().replace("words-10k:", "words-10k-labelled:")
    runbook.write_text(text)
    report = run_stream(
        runbook,
        "words-10k-labelled",
        StreamSettings("faiss", {"factory": "Flat"}, {}, Measure(k=10, runs=1)),
        tmp_path / "out",
        max_queries=60,
    )
    assert report.filtered_queries is not None and report.filtered_queries > 0
    for step in report.searches():
        assert step.search is not None
        assert step.search.recall == 1.0 and step.search.short_results == 0
