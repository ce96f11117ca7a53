"""The core commands through click's CliRunner: output, --json, exact errors, exit codes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from cli_runner import run_cli

from annkit.cli.main import cli
from annkit.engines import engine_names


def test_help_for_every_command():
    result = run_cli("--help")
    assert result.exit_code == 0
    for name, command in cli.commands.items():
        sub = run_cli(name, "--help")
        assert sub.exit_code == 0, name
        assert command.name in sub.output


@pytest.fixture(scope="module")
def hnsw_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "idx"
    result = run_cli(
        "build",
        "words-10k",
        "-e",
        "hnsw",
        "-p",
        "M=8",
        "-p",
        "ef_construction=100",
        "--threads",
        "1",
        "-o",
        str(path),
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 10_000 and summary["metric"] == "angular"
    assert summary["build_params"]["M"] == 8
    return path


@pytest.mark.slow
def test_evaluate_json(hnsw_index):
    result = run_cli("evaluate", str(hnsw_index), "-k", "10", "-p", "ef=64", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in (
        "engine",
        "build_params",
        "query_params",
        "k",
        "recall",
        "qps",
        "latency_ms",
        "build_seconds",
        "index_bytes",
        "queries",
        "mode",
    ):
        assert key in out
    assert out["query_params"] == {"ef": 64} and out["mode"] == "batch" and out["k"] == 10
    assert out["queries"] == 1000 and 0.9 < out["recall"] <= 1
    assert out["latency_ms"]["p50"] is None


def test_evaluate_single_mode_table(hnsw_index):
    result = run_cli("evaluate", str(hnsw_index), "words-10k", "-p", "ef=20", "--mode", "single")
    assert result.exit_code == 0, result.output
    assert "recall@10" in result.output and "latency ms p50/p95/p99" in result.output


def test_evaluate_single_mode_reports_its_interval_and_sample(hnsw_index):
    """Single mode says how many queries it timed and the QPS interval, in --json and in
    the table; a QPS tolerance outside [0, 1) is refused with exit code 2."""
    args = ("evaluate", str(hnsw_index), "words-10k", "-p", "ef=20", "--mode", "single")
    out = json.loads(run_cli(*args, "--qps-tolerance", "0.99", "--json").stdout)
    assert out["queries"] == 1000 and out["timed_queries"] == 200  # the minimum sample
    assert out["qps_low"] <= out["qps"] <= out["qps_high"]
    shown = run_cli(*args, "--qps-tolerance", "0.99").stdout.replace("\u2502", " ")
    table = " ".join(shown.split())  # the cells' text, wherever a cell wraps
    assert "QPS (95% interval)" in table
    assert "(single, 95% interval, 200 of 1,000 queries timed)" in table
    bad = run_cli(*args, "--qps-tolerance", "1.5")
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--qps-tolerance': 1.5 is not in the range 0<=x<1."
    )


def test_evaluate_recall_matches_library(hnsw_index, words10k):
    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate

    out = json.loads(run_cli("evaluate", str(hnsw_index), "-p", "ef=30", "--json").stdout)
    assert out["recall"] == evaluate(load_bundle(hnsw_index), words10k, 10, {"ef": 30}).recall


def test_query_outputs(hnsw_index, tmp_path, words10k):
    out_h5 = tmp_path / "nn.hdf5"
    result = run_cli(
        "query", str(hnsw_index), "words-10k", "-k", "5", "-p", "ef=64", "-o", str(out_h5)
    )
    assert result.exit_code == 0, result.output
    with h5py.File(out_h5) as handle:
        ids = handle["neighbors"][:]
        assert ids.shape == (1000, 5) and handle["distances"].shape == (1000, 5)
    assert (ids[:, 0] == words10k.neighbors[:, 0]).mean() > 0.95
    np.save(tmp_path / "q.npy", words10k.queries[:7])
    out_npy = tmp_path / "ids.npy"
    result = run_cli(
        "query", str(hnsw_index), str(tmp_path / "q.npy"), "-k", "3", "-o", str(out_npy)
    )
    assert result.exit_code == 0, result.output
    assert np.load(out_npy).shape == (7, 3)


def test_groundtruth_writes_dataset_and_evaluate_uses_it(hnsw_index, tmp_path, words10k):
    np.save(tmp_path / "base.npy", words10k.base)
    np.save(tmp_path / "queries.npy", words10k.queries[:50])
    out = tmp_path / "gt.hdf5"
    result = run_cli(
        "groundtruth",
        str(tmp_path / "base.npy"),
        str(tmp_path / "queries.npy"),
        "-k",
        "20",
        "--metric",
        "angular",
        "-o",
        str(out),
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.output
    with h5py.File(out) as handle:
        np.testing.assert_array_equal(handle["neighbors"][:], words10k.neighbors[:50, :20])
        assert handle.attrs["distance"] == "angular"
    result = run_cli("evaluate", str(hnsw_index), str(out), "-p", "ef=64", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["queries"] == 50


def test_evaluate_with_separate_files(hnsw_index, tmp_path, words10k):
    np.save(tmp_path / "base.npy", words10k.base)
    np.save(tmp_path / "queries.npy", words10k.queries[:30])
    words10k.neighbors[:30].astype(np.int32).tofile(tmp_path / "gt.raw")
    header = np.array([30, 100], dtype="<u4").tobytes()
    (tmp_path / "gt.ibin").write_bytes(header + (tmp_path / "gt.raw").read_bytes())
    result = run_cli(
        "evaluate",
        str(hnsw_index),
        str(tmp_path / "base.npy"),
        "--queries",
        str(tmp_path / "queries.npy"),
        "--groundtruth",
        str(tmp_path / "gt.ibin"),
        "--metric",
        "angular",
        "-p",
        "ef=64",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["queries"] == 30


def test_info_index_and_file(hnsw_index):
    result = run_cli("info", str(hnsw_index), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["engine"] == "hnsw"
    result = run_cli("info", "words-10k", "--json")
    assert json.loads(result.stdout)["arrays"]["train"]["shape"] == [10000, 384]


def test_engines_listing():
    result = run_cli("engines", "--json")
    assert list(json.loads(result.stdout)) == engine_names()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("build", "words-10k", "-e", "nope", "-o", "{tmp}/x"),
            f"Error: unknown engine 'nope' (known: {', '.join(engine_names())})",
        ),
        (
            ("build", "words-10k", "-e", "hnsw", "-p", "M=x", "-o", "{tmp}/x"),
            "Error: parameter M: expected int, got 'x'",
        ),
        (
            ("build", "{tmp}/missing.fvecs", "-e", "hnsw", "-o", "{tmp}/x"),
            "Error: {tmp}/missing.fvecs: no such file, and not a bundled dataset "
            "(bundled: words-10k, words-10k-labelled)",
        ),
        (("evaluate", "{tmp}/noindex"), "Error: {tmp}/noindex: no such index directory"),
        (
            ("evaluate", "{index}", "-p", "eff=3"),
            "Error: engine hnsw has no query parameter 'eff' (known: ef)",
        ),
        (
            ("query", "{index}", "words-10k", "-o", "{tmp}/out.csv"),
            "Error: {tmp}/out.csv: output must end in .hdf5, .h5 or .npy",
        ),
        (
            ("info", "{tmp}/nothing.xyz"),
            "Error: {tmp}/nothing.xyz: no such file, and not a bundled dataset "
            "(bundled: words-10k, words-10k-labelled)",
        ),
    ],
)
def test_errors_are_one_line_exit_2(args, message, tmp_path, hnsw_index):
    filled = [a.format(tmp=tmp_path, index=hnsw_index) for a in args]
    result = run_cli(*filled)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == message.format(tmp=tmp_path)
    assert "Traceback" not in result.output


def test_existing_output_needs_force(hnsw_index):
    result = run_cli("build", "words-10k", "-e", "flat", "-o", str(hnsw_index))
    assert result.exit_code == 2
    expected = f"Error: {hnsw_index} already exists (use --force to replace it)"
    assert result.output.strip() == expected


def test_dimension_mismatch(tmp_path, hnsw_index):
    np.save(tmp_path / "q.npy", np.ones((3, 5), dtype=np.float32))
    result = run_cli(
        "query", str(hnsw_index), str(tmp_path / "q.npy"), "-o", str(tmp_path / "o.npy")
    )
    assert result.exit_code == 2
    assert "queries have dimension 5, index" in result.output


def test_nan_input_refused(tmp_path):
    data = np.ones((10, 4), dtype=np.float32)
    data[3, 1] = np.nan
    np.save(tmp_path / "bad.npy", data)
    result = run_cli("build", str(tmp_path / "bad.npy"), "-e", "flat", "-o", str(tmp_path / "i"))
    assert result.exit_code == 2 and "NaN" in result.output and "Traceback" not in result.output


def test_python_m_annkit_entry_point():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "annkit", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "annkit" in done.stdout


def test_evaluate_slices_and_per_query_csv(hnsw_index, tmp_path, words10k):
    import csv

    out = tmp_path / "pq.csv"
    result = run_cli("evaluate", str(hnsw_index), "-p", "ef=10", "--json", "--per-query", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["slices"]) >= {"head", "torso", "tail", "hard-lid", "lid-q4", "hard-ood"}
    assert summary["slices"]["tail"]["queries"] == 400
    assert set(summary["tail"]) >= {"p1", "p5", "p10", "share_below_0_5", "share_zero"}
    assert 0 < summary["weighted_recall"] <= 1
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1000 and rows[0]["text"] == "it"
    recall = np.array([float(r["recall@10"]) for r in rows])
    assert recall.mean() == pytest.approx(summary["recall"])
    tail = np.array([r["band"] == "tail" for r in rows])
    assert recall[tail].mean() == pytest.approx(summary["slices"]["tail"]["recall"])
    assert summary["distance_computations"] is None  # hnswlib cannot count: null, no estimate
    assert all(r["distance_computations"] == "" for r in rows)


@pytest.mark.slow
def test_evaluate_shows_distance_computations_where_the_engine_counts(hnsw_index, tmp_path):
    import csv

    index = tmp_path / "flat"
    assert run_cli("build", "words-10k", "-e", "flat", "-o", str(index)).exit_code == 0
    out = tmp_path / "flat.csv"
    result = run_cli("evaluate", str(index), "--per-query", str(out), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "dist/query" in line)
    assert row.split("│")[2].strip().startswith("10,000")  # then its p50/p95/p99
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1000 and {r["distance_computations"] for r in rows} == {"10000"}
    table = run_cli("evaluate", str(hnsw_index), "-p", "ef=10", env={"COLUMNS": "200"})
    row = next(line for line in table.stdout.splitlines() if "dist/query" in line)
    assert row.split("│")[2].strip() == "-"
