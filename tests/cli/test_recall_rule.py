"""The recall rule (tolerant, the ann-benchmarks definition, or strict): --recall on
evaluate, effort, tune and bench, the sweep key, the rule in records, tables and
compare, and strict recall checked against an independent count on words-10k."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import WIDE, run_cli

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "ci-baseline"


def independent_strict(true_ids, found_ids, k):
    """Strict recall@k the plain way: one Python set per query."""
    return [
        len({int(i) for i in found[:k] if i >= 0} & {int(i) for i in true[:k]}) / k
        for true, found in zip(true_ids, found_ids, strict=True)
    ]


@pytest.mark.slow
def test_strict_recall_matches_an_independent_count_on_words10k(hnsw_words10k, words10k):
    import numpy as np

    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate
    from annkit.metrics import strict_recall_per_query

    bundle = load_bundle(hnsw_words10k.path)
    strict = evaluate(bundle, words10k, 10, {"ef": 12}, runs=1, recall_rule="strict")
    tolerant = evaluate(bundle, words10k, 10, {"ef": 12}, runs=1)
    assert strict.recall_rule == "strict" and tolerant.recall_rule == "tolerant"
    assert np.array_equal(strict.returned_ids, tolerant.returned_ids)
    expected = independent_strict(words10k.neighbors, strict.returned_ids, 10)
    assert np.allclose(strict.per_query_recall, expected)
    assert np.allclose(
        strict_recall_per_query(words10k.neighbors, strict.returned_ids, 10), expected
    )
    # an id inside the true top-k is within the k-th true distance: tolerant >= strict
    assert np.all(tolerant.per_query_recall >= strict.per_query_recall - 1e-12)
    assert 0.5 < strict.recall < 0.99  # a low-effort setting misses some neighbours


def test_strict_recall_of_duplicates_and_missing_ids():
    import numpy as np

    from annkit.metrics import strict_recall_per_query

    truth = np.array([[1, 2, 3, 4]])
    found = np.array([[1, 1, -1, 4]])
    assert strict_recall_per_query(truth, found, 4).tolist() == [0.5]
    assert strict_recall_per_query(truth, truth, 4).tolist() == [1.0]


def test_evaluate_recall_flag_and_json(hnsw_words10k):
    strict = run_cli(
        "evaluate",
        str(hnsw_words10k.path),
        "-p",
        "ef=12",
        "--recall",
        "strict",
        "--json",
        "--runs",
        "1",
        env=WIDE,
    )
    tolerant = run_cli(
        "evaluate", str(hnsw_words10k.path), "-p", "ef=12", "--json", "--runs", "1", env=WIDE
    )
    assert strict.exit_code == 0 and tolerant.exit_code == 0, strict.output + tolerant.output
    strict_out, tolerant_out = json.loads(strict.stdout), json.loads(tolerant.stdout)
    assert strict_out["recall_rule"] == "strict" and tolerant_out["recall_rule"] == "tolerant"
    assert strict_out["recall"] <= tolerant_out["recall"]


@pytest.mark.slow
def test_effort_and_tune_take_the_rule(hnsw_words10k, tmp_path):
    effort = run_cli(
        "effort",
        str(hnsw_words10k.path),
        "--recall",
        "strict",
        "--json",
        "-q",
        "--grid",
        "10,20,40,80",
        env=WIDE,
    )
    assert effort.exit_code == 0, effort.output
    assert json.loads(effort.stdout)["recall_rule"] == "strict"
    tuned = run_cli(
        "tune",
        "-e",
        "hnsw",
        "--build-grid",
        "M=8",
        "--build-grid",
        "ef_construction=60",
        "--effort-grid",
        "10,20,40",
        "--target",
        "0.5",
        "--recall",
        "strict",
        "--json",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        env=WIDE,
    )
    assert tuned.exit_code == 0, tuned.output
    out = json.loads(tuned.stdout)
    assert out["recall_rule"] == "strict" and out["best"]["recall_rule"] == "strict"


def test_old_records_read_as_tolerant():
    from annkit.types import RunRecord

    record = RunRecord.from_dict({"run_id": "x", "status": "ok", "engine": "flat"})
    assert record.recall_rule == "tolerant"
    strict = RunRecord.from_dict({**record.to_dict(), "recall_rule": "strict"})
    assert strict.to_dict()["recall_rule"] == "strict"


def test_compare_refuses_runs_scored_under_different_rules(tmp_path):
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "meta.json").write_text((BASELINE / "meta.json").read_text())
    lines = [
        json.loads(line)
        for line in (BASELINE / "runs.jsonl").read_text().splitlines()
        if line.strip()
    ]
    (strict / "runs.jsonl").write_text(
        "".join(json.dumps({**line, "recall_rule": "strict"}) + "\n" for line in lines)
    )
    result = run_cli("compare", str(BASELINE), str(strict), env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: cannot compare: the baseline and current sweeps differ in recall rule "
        "(tolerant vs strict); a gate compares like with like (make a new baseline)\n"
    )
    assert run_cli("compare", str(strict), str(strict), env=WIDE).exit_code == 0


def test_sweep_recall_key(tmp_path):
    from annkit.bench.spec import SweepError, load_sweep

    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nrecall = "strict"\n\n[[engine]]\nname = "flat"\n')
    spec = load_sweep(sweep)
    assert spec.recall_rule == "strict" and spec.identity()["recall_rule"] == "strict"
    assert "recall_rule" not in load_sweep(None).identity()  # old folders keep resuming
    sweep.write_text('[bench]\nrecall = "exact"\n\n[[engine]]\nname = "flat"\n')
    with pytest.raises(
        SweepError,
        match=r"s.toml line 2: \[bench\] recall must be tolerant "
        r"\(ann-benchmarks\) or strict \(id overlap\), "
        "got 'exact'",
    ):
        load_sweep(sweep)


@pytest.mark.slow
def test_bench_records_carry_the_rule(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nruns = 1\n\n[[engine]]\nname = "flat"\n')
    result = run_cli(
        "bench",
        str(sweep),
        "-o",
        "strict",
        "--results-root",
        str(tmp_path / "r"),
        "--recall",
        "strict",
        "--json",
        "-q",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    from annkit.bench.store import read_runs

    (record,) = read_runs(tmp_path / "r" / "strict" / "runs.jsonl")
    # flat finds every true neighbour; strict loses only exact float32 ties (one id here)
    assert record["recall_rule"] == "strict" and 0.999 <= record["recall"] <= 1.0


def test_evaluate_table_says_strict(hnsw_words10k):
    strict = run_cli(
        "evaluate",
        str(hnsw_words10k.path),
        "words-10k",
        "-p",
        "ef=12",
        "--runs",
        "1",
        "--recall",
        "strict",
        env=WIDE,
    )
    assert strict.exit_code == 0 and "recall@10 (strict)" in strict.stdout
    tolerant = run_cli(
        "evaluate", str(hnsw_words10k.path), "words-10k", "-p", "ef=12", "--runs", "1", env=WIDE
    )
    assert "(strict)" not in tolerant.stdout
