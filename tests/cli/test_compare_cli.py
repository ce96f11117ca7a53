"""``annkit compare`` and ``annkit bench --baseline``: the regression gate from the command
line, on hand-made results folders and on a tiny real sweep."""

from __future__ import annotations

import json

import pytest
from cli_runner import WIDE, run_cli
from sweep_files import sweep_text

from annkit.bench.store import read_runs


def record(run_id, engine, recall, qps, tail, query=None, k=10):
    return {
        "run_id": run_id,
        "status": "ok",
        "engine": engine,
        "build_params": {},
        "query_params": query or {},
        "metric": "angular",
        "dataset": "toy",
        "k": k,
        "mode": "batch",
        "recall": recall,
        "qps": qps,
        "error": None,
        "slices": {"tail": {"queries": 4, "recall": tail, "p5_recall": 0.5}},
    }


RECORDS = [
    record("h16", "hnsw", 0.90, 20000.0, 0.85, {"ef": 16}),
    record("h32", "hnsw", 0.95, 12000.0, 0.93, {"ef": 32}),
    record("f", "flat", 1.0, 10000.0, 1.0),
]


def write_results(folder, records, k=10):
    folder.mkdir(parents=True)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = {"dataset": {"name": "toy", "metric": "angular"}, "k": k, "mode": "batch"}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture()
def folders(tmp_path):
    """(baseline, same results on a machine twice as slow, h32 with lower recall)."""
    slower = [{**r, "qps": r["qps"] / 2} for r in RECORDS]
    worse = [{**r, "recall": 0.93} if r["run_id"] == "h32" else r for r in RECORDS]
    return (
        write_results(tmp_path / "base", RECORDS),
        write_results(tmp_path / "slow", slower),
        write_results(tmp_path / "worse", worse),
    )


def test_a_slower_machine_passes_with_the_reason_shown(folders):
    base, slow, _ = folders
    result = run_cli("compare", base, slow, "--max-qps-drop", "0.15", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "QPS x flat" in result.stdout
    assert "5,000 now, so this run was 0.50x as fast overall" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        "PASSED: 3 baseline settings compared, none regressed (limits: recall@10 drop 0.005, "
        "QPS drop 15% (relative to flat), dist/query rise 2% (checked on 0 settings; not "
        "counted on 3: hnsw, flat))"
    )
    assert result.stderr == ""


def test_a_recall_drop_fails_with_exit_1_and_one_line(folders):
    base, _, worse = folders
    result = run_cli("compare", base, worse, env=WIDE)
    assert result.exit_code == 1
    assert "regressed: recall@10 -0.0200" in result.stdout
    assert "0.9500 → 0.9300 (-0.0200)" in result.stdout
    assert result.stderr == "Error: regression gate failed: 1 of 3 baseline settings regressed\n"
    # a looser limit lets it pass
    assert run_cli("compare", base, worse, "--max-recall-drop", "0.03", env=WIDE).exit_code == 0


def test_json_output(folders):
    base, _, worse = folders
    result = run_cli("compare", base, worse / "runs.jsonl", "--json", env=WIDE)
    assert result.exit_code == 1
    output = json.loads(result.stdout)
    assert output["passed"] is False
    assert output["thresholds"] == {
        "max_recall_drop": 0.005,
        "max_qps_drop": None,
        "max_work_increase": 0.02,
    }
    assert output["qps_basis"] == "flat"
    assert [row["run_id"] for row in output["rows"]] == ["h16", "h32", "f"]
    assert [row["verdict"] for row in output["rows"]] == ["ok", "regressed", "ok"]
    assert [item["run_id"] for item in output["regressed"]] == ["h32"]
    assert output["missing"] == [] and output["failed"] == [] and output["new"] == []


def test_markdown_output(folders):
    base, slow, worse = folders
    result = run_cli("compare", base, worse, "--markdown", env=WIDE)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "### annkit regression gate: ❌ failed"
    assert "| setting | recall@10 | tail recall@10 | QPS x flat | dist/query | verdict |" in lines
    assert "|---|---:|---:|---:|---:|---|" in lines
    assert (
        "| hnsw ef=32 | 0.9500 → 0.9300 (-0.0200) | 0.9300 | 1.20x → 1.20x (+0%) | "
        "work not counted | **regressed: recall@10 -0.0200** |"
    ) in lines
    assert lines[-1].startswith("**FAILED: 1 of 3 baseline settings regressed")
    passed = run_cli("compare", base, slow, "--markdown", env=WIDE)
    assert passed.exit_code == 0
    assert passed.stdout.splitlines()[0] == "### annkit regression gate: ✅ passed"


def test_bad_inputs_exit_2_with_one_line(folders, tmp_path):
    base, _, _ = folders
    missing = tmp_path / "nope"
    result = run_cli("compare", base, missing, env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {missing}: no such results folder or runs.jsonl file\n"
    other_k = write_results(tmp_path / "k20", [{**r, "k": 20} for r in RECORDS], k=20)
    result = run_cli("compare", base, other_k, env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: cannot compare: the baseline and current sweeps differ in k (10 vs 20); a gate "
        "compares like with like (make a new baseline)\n"
    )
    result = run_cli("compare", base, base, "--json", "--markdown", env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == "Error: choose one of --json and --markdown\n"


SWEEP = sweep_text("compare-cli-hnsw-flat")


@pytest.fixture(scope="module")
def baseline_sweep(tmp_path_factory):
    """A tiny real sweep on words-10k, built with one thread: the baseline."""
    root = tmp_path_factory.mktemp("gate")
    (root / "sweep.toml").write_text(SWEEP)
    result = run_cli(
        "bench",
        root / "sweep.toml",
        "-o",
        root / "base",
        "--results-root",
        root,
        "--threads",
        "1",
        "-q",
        "--json",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.slow
def test_bench_with_baseline_rebuilds_and_passes(baseline_sweep):
    root = baseline_sweep
    # rebuilt from scratch: single-threaded hnsw gives the same recall; QPS of a one-run
    # sweep in a test is too noisy to check, so its limit is off
    result = run_cli(
        "bench",
        root / "sweep.toml",
        "-o",
        root / "again",
        "--results-root",
        root,
        "--threads",
        "1",
        "--rebuild",
        "--json",
        "--baseline",
        root / "base",
        "--max-qps-drop",
        "1",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["sweep"]["ran"] == 3 and output["sweep"]["cached_builds"] == 0
    gate = output["compare"]
    assert gate["passed"] is True and gate["counts"]["compared"] == 3
    assert [row["recall"]["change"] for row in gate["rows"]] == [0.0, 0.0, 0.0]
    assert gate["baseline"]["path"] == str(root / "base")


@pytest.mark.slow
def test_bench_with_a_better_baseline_fails(baseline_sweep):
    root = baseline_sweep
    records = read_runs(root / "base" / "runs.jsonl")
    records[1]["recall"] += 0.01  # hnsw ef=20 used to be better
    (root / "better").mkdir()
    (root / "better" / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "better" / "meta.json").write_text((root / "base" / "meta.json").read_text())
    result = run_cli(
        "bench",
        root / "sweep.toml",
        "-o",
        root / "base",
        "--results-root",
        root,
        "-q",
        "--baseline",
        root / "better",
        "--max-qps-drop",
        "1",
        env=WIDE,
    )
    assert result.exit_code == 1
    assert "0 settings measured" in result.stdout  # nothing to redo in a finished folder
    assert "regression gate:" in result.stdout and "regressed: recall@10 -0.0100" in result.stdout
    assert result.stderr == "Error: regression gate failed: 1 of 3 baseline settings regressed\n"


def test_bench_refuses_a_bad_baseline_before_sweeping(baseline_sweep, tmp_path):
    root = baseline_sweep
    result = run_cli(
        "bench",
        root / "sweep.toml",
        "--results-root",
        tmp_path / "r",
        "--baseline",
        tmp_path / "nope",
        env=WIDE,
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path / 'nope'}: no such results folder or runs.jsonl file\n"
    )
    (tmp_path / "k5.toml").write_text(SWEEP.replace("k = 10", "k = 5"))
    result = run_cli(
        "bench",
        tmp_path / "k5.toml",
        "--results-root",
        tmp_path / "r",
        "--baseline",
        root / "base",
        env=WIDE,
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: cannot compare: the baseline and current sweeps differ in k (10 vs 5); a gate "
        "compares like with like (make a new baseline)\n"
    )
    assert not (tmp_path / "r").exists()  # nothing ran


def test_help_says_qps_is_off_by_default_and_why():
    text = " ".join(run_cli("compare", "--help").stdout.split())
    assert "QPS is off by default" in text
    assert "On a shared machine QPS moves by 15-50% with nothing changed" in text
    assert "--slice NAME" in text and "--per-query" in text
    bench = " ".join(run_cli("bench", "--help").stdout.split())
    assert "Default: off, unless the sweeps measured their own spread" in bench
