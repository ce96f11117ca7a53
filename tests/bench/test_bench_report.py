"""Pareto frontiers, the report, the results store and the plot, on hand-made records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit.bench.pareto import dominates, pareto_front
from annkit.bench.plot import plot_sweep
from annkit.bench.report import build_report
from annkit.bench.store import REQUIRED_KEYS, ResultsStore, read_runs
from annkit.errors import InputError
from annkit.types import RunRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pareto_on_hand_made_points():
    points = [
        (0.50, 1000.0),  # 0 on the front
        (0.70, 900.0),  # 1 on the front
        (0.60, 800.0),  # 2 dominated by 1
        (0.70, 700.0),  # 3 same recall as 1, slower: dominated
        (0.90, 300.0),  # 4 on the front
        (0.90, 300.0),  # 5 equal to 4: neither dominates, both kept
        (0.40, 1000.0),  # 6 same qps as 0, lower recall: dominated
        (0.99, 100.0),  # 7 on the front
        (float("nan"), 5000.0),  # 8 never on the front
    ]
    assert pareto_front(points) == [0, 1, 4, 5, 7]
    assert dominates((0.7, 900.0), (0.6, 800.0))
    assert not dominates((0.9, 300.0), (0.9, 300.0))
    assert pareto_front([]) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.1, 0.5, 0.9, 1.0]), st.sampled_from([10.0, 100.0, 1000.0])),
        max_size=12,
    )
)
def test_pareto_matches_the_definition(points):
    expected = [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i)
    ]
    assert sorted(pareto_front(points)) == expected


def record(run_id, engine, recall, qps, status="ok", **build):
    return {
        "run_id": run_id,
        "status": status,
        "engine": engine,
        "build_params": build,
        "query_params": {"q": run_id},
        "k": 10,
        "mode": "batch",
        "dataset": "toy",
        "recall": recall if status == "ok" else None,
        "qps": qps if status == "ok" else None,
        "latency_ms": {"p50": None, "p95": None, "p99": None},
        "build_seconds": 1.0,
        "index_bytes": 100,
        "finished_at": "2026-01-01T00:00:00Z",
        "error": None if status == "ok" else "boom",
    }


RECORDS = [
    record("a1", "hnsw", 0.85, 20000.0),
    record("a2", "hnsw", 0.93, 10000.0),
    record("a3", "hnsw", 0.92, 8000.0),  # dominated
    record("a4", "hnsw", 0.995, 4000.0),
    record("b1", "annoy", 0.96, 3000.0),
    record("b2", "annoy", 0.0, 0.0, status="failed"),
    record("f1", "flat", 1.0, 2000.0),
]


def test_report_headlines_and_speedups():
    report = build_report(RECORDS, {"k": 10, "mode": "batch", "dataset": {"name": "toy"}}).to_dict()
    assert report["dataset"] == "toy" and report["k"] == 10 and report["flat_qps"] == 2000.0
    assert report["runs"] == {"total": 7, "ok": 6, "failed": 1, "timeout": 0}
    assert [r["run_id"] for r in report["engines"]["hnsw"]["pareto"]] == ["a1", "a2", "a4"]
    assert report["engines"]["hnsw"]["pareto"][0]["speedup_vs_flat"] == 10.0
    by_threshold = {h["threshold"]: h for h in report["headlines"]}
    assert by_threshold[0.90]["best"]["run_id"] == "a2"
    assert by_threshold[0.90]["engines"]["annoy"]["run_id"] == "b1"
    assert by_threshold[0.95]["engines"]["hnsw"]["run_id"] == "a4"
    assert by_threshold[0.95]["best"]["speedup_vs_flat"] == 2.0
    assert by_threshold[0.99]["engines"]["annoy"] is None
    assert by_threshold[0.99]["best"]["run_id"] == "a4"
    assert [f["run_id"] for f in report["failed"]] == ["b2"]
    json.dumps(report)  # JSON-ready


def test_report_without_flat_has_no_speedups():
    report = build_report([r for r in RECORDS if r["engine"] != "flat"]).to_dict()
    assert report["flat_qps"] is None
    assert report["headlines"][0]["best"]["speedup_vs_flat"] is None


def test_store_upserts_and_writes_whole_files(tmp_path):
    store = ResultsStore(tmp_path / "res")
    store.add(RECORDS[5], None)  # failed first
    store.add(RECORDS[0], np.array([1.0, 0.5], dtype=np.float32))
    retried = dict(RECORDS[5], status="ok", recall=0.9, qps=5.0, error=None)
    store.add(retried, np.array([0.25, 0.75]))
    records = read_runs(tmp_path / "res" / "runs.jsonl")
    assert [r["run_id"] for r in records] == ["b2", "a1"]  # replaced in place, no duplicate
    assert records[0]["status"] == "ok"
    assert all(set(REQUIRED_KEYS) <= set(r) for r in records)
    reopened = ResultsStore(tmp_path / "res")
    assert reopened.ok_run_ids() == {"a1", "b2"}
    np.testing.assert_array_equal(reopened.per_query_recall("b2"), [0.25, 0.75])
    assert reopened.per_query_recall("b2").dtype == np.float32
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["perquery.h5", "runs.jsonl"]


def test_store_nan_becomes_null(tmp_path):
    store = ResultsStore(tmp_path)
    store.add(dict(RECORDS[0], qps=float("inf")))
    assert read_runs(tmp_path / "runs.jsonl")[0]["qps"] is None


def test_damaged_runs_file_is_reported_with_its_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{not json\n")
    with pytest.raises(InputError, match=r"runs.jsonl line 2: not a valid JSON record"):
        read_runs(path)


@pytest.mark.slow
def test_plot_is_a_png_written_atomically(tmp_path):
    target = plot_sweep(RECORDS, tmp_path / "plot.png")
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    svg = plot_sweep(RECORDS, tmp_path / "plot.svg", title="custom")
    assert b"<svg" in svg.read_bytes()[:500]


def test_plot_needs_a_successful_run(tmp_path):
    with pytest.raises(InputError, match="nothing to plot"):
        plot_sweep([RECORDS[5]], tmp_path / "plot.png")


def test_report_on_a_slice_uses_the_slice_recall():
    from annkit.bench.report import on_slice
    from annkit.errors import InputError

    records = [
        RunRecord.from_dict(record)
        for record in (
            {
                "run_id": "h1",
                "status": "ok",
                "engine": "hnsw",
                "recall": 0.9,
                "qps": 10.0,
                "slices": {"tail": {"recall": 0.8, "queries": 4, "p5_recall": 0.5}},
            },
            {"run_id": "h2", "status": "failed", "engine": "hnsw", "recall": None, "qps": None},
        )
    ]
    tail = on_slice(records, "tail")
    assert tail[0].recall == 0.8 and records[0].recall == 0.9
    assert tail[0].slices == records[0].slices
    assert tail[1] == records[1] and tail[1].status == "failed"
    assert on_slice(records, "all") == records
    with pytest.raises(InputError, match=r"unknown slice 'hard' \(available: all, tail\)"):
        on_slice(records, "hard")


def test_plot_draws_the_slice_frontier_beside_the_overall_one(tmp_path):
    import matplotlib

    from annkit.bench.report import on_slice

    records = [
        {**r, "slices": {"tail": {"queries": 4, "recall": (r["recall"] or 0) - 0.1}}}
        for r in RECORDS
        if r["status"] == "ok"
    ]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        svg = plot_sweep(
            records,
            tmp_path / "both.svg",
            slice_name="tail",
            slice_records=on_slice(records, "tail"),
        ).read_text()
        alone = plot_sweep(records, tmp_path / "alone.svg").read_text()
    for engine in ("hnsw", "annoy"):
        assert f"{engine} (tail)" in svg and f"{engine} (tail)" not in alone


def test_store_keeps_per_query_distance_computations_next_to_recall(tmp_path):
    store = ResultsStore(tmp_path)
    counted = dict(RECORDS[6], distance_computations=3.0)
    store.add(counted, {"recall": np.array([1.0, 1.0]), "distance_computations": np.array([3, 3])})
    store.add(RECORDS[0], {"recall": np.array([0.5, 1.0]), "distance_computations": None})
    store.add(RECORDS[5])  # a failed run: no arrays, distance_computations null
    reopened = ResultsStore(tmp_path)
    counts = reopened.per_query_distance_computations("f1")
    assert counts is not None and counts.dtype == np.int64 and counts.tolist() == [3, 3]
    assert reopened.per_query_distance_computations("a1") is None
    np.testing.assert_array_equal(reopened.per_query_recall("a1"), [0.5, 1.0])
    by_id = {r["run_id"]: r for r in read_runs(tmp_path / "runs.jsonl")}
    assert by_id["f1"]["distance_computations"] == 3.0
    assert by_id["a1"]["distance_computations"] is None
    assert by_id["b2"]["distance_computations"] is None and by_id["b2"]["error"] == "boom"
