"""The cost tail: p50 / p95 / p99 distance computations per query, overall and per slice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bundle import build_index, fingerprint_vectors, load_bundle, save_bundle
from annkit.evaluate import evaluate
from annkit.slices import summarize
from annkit.types import QueryProfile, RunRecord, WorkSummary


def test_work_summary_of_counts():
    work = WorkSummary.of(np.arange(1, 101))
    assert work == WorkSummary(mean=50.5, p50=50.5, p95=95.05, p99=99.01)
    assert WorkSummary.of(np.array([], dtype=np.int64)) is None
    assert WorkSummary.from_dict(work.to_dict()) == work
    assert WorkSummary.from_dict(None) is None and WorkSummary.from_dict("x") is None


def test_summarize_puts_each_slices_work_in_it():
    recall = np.array([1.0, 1.0, 0.5, 0.0])
    counts = np.array([10, 20, 300, 4000])
    masks = {
        "head": np.array([True, True, False, False]),
        "tail": np.array([False, False, True, True]),
    }
    tail, slices, _ = summarize(recall, QueryProfile(masks=masks), counts)
    assert tail.work == WorkSummary.of(counts)
    assert slices["head"].work == WorkSummary(15.0, 15.0, 19.5, 19.9)
    assert slices["tail"].work is not None and slices["tail"].work.p99 == pytest.approx(3963.0)
    plain_tail, plain_slices, _ = summarize(recall, QueryProfile(masks=masks))
    assert plain_tail.work is None and all(s.work is None for s in plain_slices.values())
    assert plain_slices["tail"].recall == slices["tail"].recall


def _bundle(engine: str, params: dict, words10k, tmp_path):
    built, seconds = build_index(engine, words10k.base, "angular", params, threads=1)
    return load_bundle(
        save_bundle(
            built,
            tmp_path / engine,
            build_seconds=seconds,
            dataset_fingerprint=fingerprint_vectors(words10k.base),
        )
    )


def test_evaluation_carries_the_cost_tail_through_runs_jsonl(words10k, tmp_path):
    bundle = _bundle("faiss", {"factory": "IVF64,Flat"}, words10k, tmp_path)
    evaluation = evaluate(bundle, words10k, 10, {"nprobe": 4})
    counts = evaluation.per_query_distance_computations
    assert counts is not None
    assert evaluation.tail is not None and evaluation.tail.work == WorkSummary.of(counts)
    profile = evaluation.profile
    assert profile is not None
    for name, entry in evaluation.slices.items():
        assert entry.work == WorkSummary.of(counts[profile.masks[name]]), name
    # the cost tail is a real tail: some queries scan far more than the median
    assert evaluation.tail.work.p99 > evaluation.tail.work.p50
    record = RunRecord.from_evaluation(evaluation, "faiss-1")
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and again.slices is not None
    assert again.slices["tail"].work == evaluation.slices["tail"].work


@pytest.mark.slow
def test_an_engine_that_cannot_count_has_no_cost_tail(words10k, tmp_path):
    bundle = _bundle("hnsw", {"M": 8}, words10k, tmp_path)
    evaluation = evaluate(bundle, words10k, 10, {"ef": 20})
    assert evaluation.distance_computations is None
    assert evaluation.tail is not None and evaluation.tail.work is None
    assert all(entry.work is None for entry in evaluation.slices.values())
    out = evaluation.to_dict()
    assert out["tail"]["work"] is None and out["slices"]["tail"]["work"] is None


@pytest.mark.slow
def test_evaluate_tables_show_the_cost_tail(words10k, tmp_path):

    bundle = _bundle("faiss", {"factory": "IVF64,Flat"}, words10k, tmp_path)
    result = run_cli("evaluate", str(bundle.path), "-p", "nprobe=4", "-q", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    evaluation = evaluate(bundle, words10k, 10, {"nprobe": 4})
    work = evaluation.slices["tail"].work
    assert work is not None
    assert "dist/query p50/p95/p99" in result.stdout
    tail_row = next(line for line in result.stdout.splitlines() if line.startswith("│ tail "))
    assert tail_row.rstrip(" │").endswith(f"{work.p50:,.0f} / {work.p95:,.0f} / {work.p99:,.0f}")
    assert "(p50/p95/p99 " in result.stdout  # the overall cost tail beside dist/query
