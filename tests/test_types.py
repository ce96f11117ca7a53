"""The typed results: every record on disk reads into a RunRecord and writes back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit.bench.store import ResultsStore, read_records
from annkit.engines import get_engine
from annkit.errors import InputError
from annkit.types import Evaluation, RunRecord, SliceRecall, TailSummary

ROOT = Path(__file__).resolve().parents[1]
BASELINE_RUNS = ROOT / "results" / "ci-baseline" / "runs.jsonl"
DEFAULT_SWEEP_REPORT = ROOT / "results" / "default-sweep-words-10k.json"
#: keys a record read from an older file may lack, and what they read as
NEW_KEY_DEFAULTS = {
    "build_params": {},
    "query_params": {},
    "latency_ms": {},
    "search_threads": 1,  # old records: one search thread
    "recall_rule": "tolerant",
}  # old records: ann-benchmarks' rule


def assert_round_trips(record: dict) -> None:
    """dict -> RunRecord -> dict gives the same dict; keys it lacked come back None (or an
    empty mapping for the parameter and latency objects)."""
    written = RunRecord.from_dict(record).to_dict()
    assert {key: written[key] for key in record} == with_work_keys(record)
    for key in set(written) - set(record):
        assert written[key] == NEW_KEY_DEFAULTS.get(key), key


def with_work_keys(record: dict) -> dict:
    """``record`` as written back: a tail summary or slice entry from before the cost tail
    was measured gains ``"work": None`` (not counted)."""
    out = dict(record)
    if isinstance(out.get("tail"), dict):
        out["tail"] = {"work": None, **out["tail"]}
    if isinstance(out.get("slices"), dict):
        out["slices"] = {
            name: {"work": None, **entry} if isinstance(entry, dict) else entry
            for name, entry in out["slices"].items()
        }
    return out


def records_in(value: object) -> list[dict]:
    """Every object holding a run_id and a status anywhere in a JSON value."""
    if isinstance(value, dict):
        found = [value] if "run_id" in value and "status" in value else []
        return found + [r for item in value.values() for r in records_in(item)]
    if isinstance(value, list):
        return [r for item in value for r in records_in(item)]
    return []


def test_every_ci_baseline_record_round_trips():
    lines = [json.loads(line) for line in BASELINE_RUNS.read_text().splitlines() if line]
    assert len(lines) >= 10
    for record in lines:
        assert_round_trips(record)
        typed = RunRecord.from_dict(record)
        # exactly the engines that count hold a count, and their cost tail
        counts = get_engine(record["engine"]).counts_distances
        assert (typed.distance_computations is not None) is counts
        assert typed.tail is not None and (typed.tail.work is not None) is counts
        assert isinstance(typed.tail, TailSummary) and typed.tail.queries == record["queries"]
        assert typed.slice_recall("tail") == record["slices"]["tail"]["recall"]


def test_records_in_the_default_sweep_report_round_trip():
    # the report holds run summaries (no status) and failed runs (with status): only the
    # latter are records; today there are none, so the check covers whatever appears
    for record in records_in(json.loads(DEFAULT_SWEEP_REPORT.read_text())):
        assert_round_trips(record)


def test_failed_and_timed_out_records_round_trip():
    failed = {
        "run_id": "ivfpq-1",
        "status": "failed",
        "engine": "ivfpq",
        "build_params": {"nlist": None, "m": 16},
        "query_params": {"nprobe": 4},
        "metric": "angular",
        "dataset": "toy",
        "k": 10,
        "mode": "batch",
        "queries": 3,
        "recall": None,
        "qps": None,
        "latency_ms": {"p50": None, "p95": None, "p99": None, "mean": None},
        "build_seconds": None,
        "index_bytes": None,
        "runs": 1,
        "cached": None,
        "error": "build: nlist=64 exceeds the 10 base vectors",
        "finished_at": "2026-01-01T00:00:00Z",
    }
    assert_round_trips(failed)
    assert_round_trips({**failed, "status": "timeout", "error": "took longer than 5s"})
    typed = RunRecord.from_dict(failed)
    assert not typed.usable and typed.slices is None and typed.tail is None


def test_a_record_without_run_id_or_with_a_wrong_field_is_refused():
    with pytest.raises(InputError, match="no run_id or status"):
        RunRecord.from_dict({"status": "ok", "engine": "flat"})
    with pytest.raises(InputError, match="record f: a field has the wrong type"):
        RunRecord.from_dict({"run_id": "f", "status": "ok", "engine": "flat", "recall": "high"})


def test_an_old_runs_file_reads_with_the_new_key_as_none(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    old = json.loads(BASELINE_RUNS.read_text().splitlines()[0])
    (folder / "runs.jsonl").write_text(json.dumps(old) + "\n")
    (record,) = read_records(folder / "runs.jsonl")
    assert record.distance_computations is None and record.recall == old["recall"]
    store = ResultsStore(folder)
    assert store.records[old["run_id"]] == RunRecord.from_dict(old)  # read once, typed
    assert (folder / "runs.jsonl").read_text() == json.dumps(old) + "\n"  # not rewritten


def test_summaries_round_trip():
    tail = {
        "mean": 0.9,
        "p1": 0.1,
        "p5": 0.5,
        "p10": 0.6,
        "share_below_0_5": 0.03,
        "share_zero": 0.0,
        "queries": 1000,
        "work": {"mean": 560.5, "p50": 557.0, "p95": 690.0, "p99": 754.0},
    }
    assert TailSummary.from_dict(tail).to_dict() == tail
    entry = {"queries": 400, "recall": 0.86, "p5_recall": 0.5, "work": None}
    assert SliceRecall.from_dict(entry).to_dict() == entry


def test_evaluation_to_dict_keeps_the_json_keys_and_adds_distance_computations():
    evaluation = Evaluation(
        engine="flat",
        build_params={},
        query_params={},
        metric="angular",
        k=10,
        mode="batch",
        queries=2,
        recall=1.0,
        qps=float("inf"),
        latency_ms={"p50": None},
        build_seconds=0.1,
        index_bytes=10,
        search_seconds=0.0,
        runs=1,
        per_query_recall=np.ones(2),
        dataset="toy",
        tail=TailSummary(1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2),
        slices={"tail": SliceRecall(1, 1.0, 1.0)},
        distance_computations=5.0,
        per_query_distance_computations=np.array([5, 5]),
    )
    out = evaluation.to_dict()
    assert list(out) == [
        "engine",
        "build_params",
        "query_params",
        "metric",
        "dataset",
        "k",
        "mode",
        "queries",
        "recall",
        "qps",
        "latency_ms",
        "build_seconds",
        "index_bytes",
        "search_seconds",
        "runs",
        "duplicate_ids",
        "tail",
        "slices",
        "weighted_recall",
        "distance_computations",
        "qps_min",
        "qps_median",
        "qps_max",
        "qps_runs",
        "timed_queries",
        "qps_low",  # single mode's QPS confidence interval (sampled pass), None otherwise
        "qps_high",
        "max_runs",
        "qps_tolerance",
        "search_threads",
        "clients",
        "recall_rule",
        "filter_strategy",  # the filtered-recall fields (issue 20): None without filters
        "short_results",
        "filter_plan",
        "load_average",  # load awareness (issue 19): the machine's load, CPU over wall time
        "cpu_per_wall",
        "starved",
        "recall_at",  # recall at other depths (e.g. 10@100), None unless asked for
        "relative_distance_error",
        "work_unit",  # what distance_computations counts (None: nothing counted)
    ]
    assert out["filter_strategy"] is None and out["short_results"] is None
    assert out["slices"] == {"tail": {"queries": 1, "recall": 1.0, "p5_recall": 1.0, "work": None}}
    record = RunRecord.from_evaluation(evaluation, "flat-1", cached=True, build_threads=1)
    assert record.distance_computations == 5.0 and record.slices == evaluation.slices
    assert record.to_dict()["tail"] == out["tail"] and record.status == "ok"


_numbers = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False))
_counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))


@settings(max_examples=100, deadline=None)
@given(
    status=st.sampled_from(["ok", "failed", "timeout"]),
    recall=_numbers,
    qps=_numbers,
    distances=_numbers,
    queries=_counts,
    cached=st.one_of(st.none(), st.booleans()),
    tail=st.one_of(st.none(), st.lists(_numbers, min_size=6, max_size=6)),
    slices=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["head", "tail", "hard-lid", "lid-q4"]),
            st.tuples(_counts, _numbers, _numbers),
        ),
    ),
)
def test_any_record_survives_json_and_back(
    status, recall, qps, distances, queries, cached, tail, slices
):
    record = {
        "run_id": "x-1",
        "status": status,
        "engine": "hnsw",
        "build_params": {"M": 8},
        "query_params": {"ef": 10},
        "recall": recall,
        "qps": qps,
        "queries": queries,
        "distance_computations": distances,
        "cached": cached,
        "latency_ms": {"p50": None, "p95": recall},
        "error": None if status == "ok" else "x",
    }
    if tail is not None:
        names = ["mean", "p1", "p5", "p10", "share_below_0_5", "share_zero"]
        record["tail"] = {**dict(zip(names, tail, strict=True)), "queries": queries}
    if slices is not None:
        record["slices"] = {
            name: {"queries": n, "recall": r, "p5_recall": p5}
            for name, (n, r, p5) in slices.items()
        }
    assert_round_trips(record)
    again = json.loads(json.dumps(RunRecord.from_dict(record).to_dict(), allow_nan=False))
    assert RunRecord.from_dict(again) == RunRecord.from_dict(record)
