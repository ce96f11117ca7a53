"""``annkit bench`` / ``report`` / ``plot`` end to end on the bundled dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from cli_runner import run_cli
from sweep_files import sweep_text

from annkit.bench.spec import DEFAULT_SWEEP
from annkit.bench.store import DISTANCES_SUFFIX, REQUIRED_KEYS, read_runs
from annkit.engines import engine_names

pytestmark = pytest.mark.slow  # sweeps on words-10k

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SWEEP = sweep_text("bench-cli-four-engines")

# the same settings as SWEEP, as `annkit build` / `annkit evaluate` arguments
SETTINGS = [
    ("hnsw", ["M=8", "ef_construction=100"], [["ef=10"], ["ef=40"]]),
    ("annoy", ["n_trees=5"], [["search_k=50"], ["search_k=500"]]),
    ("ivfpq", ["nlist=64", "m=16", "nbits=6"], [["nprobe=2"], ["nprobe=8"]]),
    ("flat", [], [[]]),
]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One small sweep on words-10k (built with one thread: deterministic indexes)."""
    root = tmp_path_factory.mktemp("bench")
    sweep = root / "sweep.toml"
    sweep.write_text(SWEEP)
    result = run_cli(
        "bench", sweep, "-o", "e2e", "--results-root", root / "results", "--threads", "1", "--json"
    )
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def test_sweep_writes_one_valid_record_per_setting(swept):
    root, output = swept
    folder = root / "results" / "e2e"
    records = read_runs(folder / "runs.jsonl")
    assert len(records) == 7 and len({r["run_id"] for r in records}) == 7
    for record in records:
        assert set(REQUIRED_KEYS) <= set(record)
        assert record["status"] == "ok" and record["error"] is None
        assert 0 <= record["recall"] <= 1 and record["qps"] > 0
        assert set(record["latency_ms"]) >= {"p50", "p95", "p99"}
        assert record["build_seconds"] > 0 and record["index_bytes"] > 0
        assert record["dataset"] == "words-10k" and record["k"] == 10
    assert [(r["engine"], r["query_params"]) for r in records][:2] == [
        ("hnsw", {"ef": 10}),
        ("hnsw", {"ef": 40}),
    ]
    # distance computations: exact where the engine counts (flat: every base vector), else null
    counted = {r["run_id"] for r in records if r["engine"] == "flat"}
    assert all(r["distance_computations"] == 10_000 for r in records if r["run_id"] in counted)
    assert all(r["distance_computations"] is None for r in records if r["engine"] != "flat")
    with h5py.File(folder / "perquery.h5", "r") as handle:
        assert sorted(handle) == sorted(
            [r["run_id"] for r in records]
            + [run_id + DISTANCES_SUFFIX for run_id in counted]
            + [r["run_id"] + ".ids" for r in records]
        )
        assert all(
            handle[r["run_id"]].shape == (1000,) and handle[r["run_id"]].dtype == "float32"
            for r in records
        )
        for run_id in counted:
            per_query = handle[run_id + DISTANCES_SUFFIX][()]
            assert per_query.dtype == "int64" and (per_query == 10_000).all()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["sweep"] == SWEEP and meta["dataset"]["name"] == "words-10k"
    assert meta["machine"]["cores"] >= 1 and "faiss" in meta["machine"]["libraries"]
    assert (folder / "plot.png").read_bytes()[:8] == PNG_MAGIC
    assert output["plot"] == str(folder / "plot.png")
    assert output["sweep"]["ran"] == 7 and output["sweep"]["failed"] == 0


@pytest.mark.slow
def test_recall_equals_annkit_evaluate(swept, tmp_path):
    root, _ = swept
    records = read_runs(root / "results" / "e2e" / "runs.jsonl")
    measured = {
        (r["engine"], json.dumps(r["query_params"], sort_keys=True)): r["recall"] for r in records
    }
    for engine, build_params, query_settings in SETTINGS:
        index = tmp_path / engine
        args = ["build", "words-10k", "-e", engine, "--threads", "1", "-o", index]
        for param in build_params:
            args += ["-p", param]
        assert run_cli(*args).exit_code == 0
        for query in query_settings:
            args = ["evaluate", index, "words-10k", "--json"]
            for param in query:
                args += ["-p", param]
            result = run_cli(*args)
            assert result.exit_code == 0, result.output
            evaluation = json.loads(result.stdout)
            key = (engine, json.dumps(evaluation["query_params"], sort_keys=True))
            assert measured[key] == evaluation["recall"], key


def test_report_json_has_headlines_and_speedups(swept):
    root, bench_output = swept
    result = run_cli("report", root / "results" / "e2e", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # bench's own keys: the files it wrote (plot, html) and the sweep file it read
    assert {k: v for k, v in bench_output.items() if k not in ("plot", "html", "sweep")} == report
    assert report["dataset"] == "words-10k" and report["k"] == 10
    assert report["runs"] == {"total": 7, "ok": 7, "failed": 0, "timeout": 0}
    assert report["flat_qps"] > 0
    assert [h["threshold"] for h in report["headlines"]] == [0.90, 0.95, 0.99]
    flat = report["engines"]["flat"]["pareto"][0]
    assert flat["recall"] == 1.0 and flat["speedup_vs_flat"] == 1.0
    assert flat["distance_computations"] == 10_000 and flat["setting"] == ""
    assert all(
        run_summary["distance_computations"] is None
        for run_summary in report["engines"]["hnsw"]["pareto"]
    )
    for engine in ("hnsw", "annoy", "ivfpq"):
        for run_summary in report["engines"][engine]["pareto"]:
            expected = run_summary["qps"] / report["flat_qps"]
            assert run_summary["speedup_vs_flat"] == pytest.approx(expected)
    best = report["headlines"][0]["best"]
    assert best["recall"] >= 0.90 and best["speedup_vs_flat"] is not None
    # the same from the runs.jsonl path, as a table
    table = run_cli(
        "report", str(root / "results" / "e2e" / "runs.jsonl"), env={"COLUMNS": "200"}
    )  # wide enough for unwrapped cells
    assert table.exit_code == 0
    assert "Pareto-optimal runs" in table.stdout
    assert "best QPS at recall@10 >= 0.90:" in table.stdout
    assert "dist/query" in table.stdout
    flat_row = next(line for line in table.stdout.splitlines() if "│ flat" in line)
    hnsw_row = next(line for line in table.stdout.splitlines() if "│ hnsw" in line)
    assert "(defaults)" in flat_row and "10,000" in flat_row
    assert [cell.strip() for cell in hnsw_row.split("│")][6] == "-"  # hnsw cannot count


def test_plot_command_writes_a_png(swept, tmp_path):
    root, _ = swept
    result = run_cli("plot", root / "results" / "e2e", "-o", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC
    for extra in ([], ["--slice-only"]):
        sliced = run_cli(
            "plot", root / "results" / "e2e", "--slice", "tail", *extra, "-o", tmp_path / "tail.png"
        )
        assert sliced.exit_code == 0, sliced.output
        assert (tmp_path / "tail.png").read_bytes()[:8] == PNG_MAGIC
    unknown = run_cli("plot", root / "results" / "e2e", "--slice", "nope")
    assert unknown.exit_code == 2 and "unknown slice 'nope'" in unknown.stderr


def test_second_sweep_reuses_cached_indexes(swept):
    root, _ = swept
    result = run_cli(
        "bench", root / "sweep.toml", "-o", "again", "--results-root", root / "results", "--json"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout and json.loads(result.stdout)["sweep"]["cached_builds"] == 4
    first = read_runs(root / "results" / "e2e" / "runs.jsonl")
    again = read_runs(root / "results" / "again" / "runs.jsonl")
    assert all(r["cached"] for r in again)
    assert [r["build_seconds"] for r in again] == [r["build_seconds"] for r in first]
    assert [r["recall"] for r in again] == [r["recall"] for r in first]


RESUME_SWEEP = sweep_text("bench-cli-resume-single-mode")


@pytest.mark.slow
def test_killed_sweep_resumes_without_duplicates_or_losses(tmp_path):
    sweep = tmp_path / "resume.toml"
    sweep.write_text(RESUME_SWEEP)
    runs_file = tmp_path / "res" / "x" / "runs.jsonl"
    command = [
        sys.executable,
        "-m",
        "annkit",
        "bench",
        str(sweep),
        "-o",
        "x",
        "--results-root",
        str(tmp_path / "res"),
        "--threads",
        "1",
        "-q",
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if runs_file.is_file() and len(runs_file.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = read_runs(runs_file)  # every line of a killed sweep is a whole record
    assert 2 <= len(before) < 6, "the sweep was not interrupted part-way"
    result = run_cli("bench", sweep, "-o", "x", "--results-root", tmp_path / "res", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["sweep"]
    assert summary["skipped"] == len(before) and summary["ran"] == 6 - len(before)
    after = [json.loads(line) for line in runs_file.read_text().splitlines()]
    assert len(after) == 6 and len({r["run_id"] for r in after}) == 6
    assert all(r["status"] == "ok" for r in after)
    assert after[: len(before)] == before  # finished runs kept as they were
    assert sorted(r["query_params"]["ef"] for r in after) == [10, 20, 40, 80, 160, 320]
    leftovers = [p.name for p in runs_file.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[[engine]]\nname = "hnswx"\n',
            "Error: sweep.toml line 2: unknown engine 'hnswx' "
            f"(known: {', '.join(engine_names())})",
        ),
        (
            '[bench]\nk = 10\n\n[[engine]]\nname = "hnsw"\n'
            "build = { M = [8] }\nquery = { eff = 10 }\n",
            "Error: sweep.toml line 7: engine 'hnsw' has no query parameter 'eff' (known: ef)",
        ),
        (
            '[[engine]]\nname = "hnsw"\nbuild = { M = [8, "x"] }\n',
            "Error: sweep.toml line 3: engine 'hnsw': build parameter M: expected int, got 'x'",
        ),
        (
            '[[engine]]\nname = "hnsw"\nquery = { ef = [] }\n',
            "Error: sweep.toml line 3: engine 'hnsw': query parameter 'ef' has an empty list "
            "(nothing to run)",
        ),
        (
            '[[engine]\nname = "hnsw"\n',
            "Error: sweep.toml: invalid TOML: Expected ']]' at the end of an array "
            "declaration (at line 1, column 9)",
        ),
    ],
)
def test_bad_sweep_files_give_one_line_and_exit_2(text, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sweep.toml").write_text(text)
    result = run_cli("bench", "sweep.toml", "--results-root", tmp_path / "r")
    assert result.exit_code == 2
    assert result.output.strip() == message
    assert not (tmp_path / "r").exists()  # nothing ran


def test_print_default_is_the_default_sweep():
    result = run_cli("bench", "--print-default")
    assert result.exit_code == 0 and result.output == DEFAULT_SWEEP


def test_report_of_a_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("report", tmp_path / "empty")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: {tmp_path / 'empty'}: no runs.jsonl here (not an annkit bench results folder)"
    )


def test_help_texts():
    for command in ("bench", "report", "plot"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
