"""The regression gate (annkit.bench.compare) on hand-made records."""

from __future__ import annotations

import copy
import json

import pytest

from annkit.bench.compare import (
    GateThresholds,
    SweepFacts,
    check_comparable,
    compare_records,
    compare_results,
    load_baseline,
    sweep_facts,
)
from annkit.bench.report import build_report, setting_labels
from annkit.errors import InputError


def record(
    run_id,
    engine,
    recall,
    qps,
    *,
    tail=None,
    status="ok",
    build=None,
    query=None,
    k=10,
    dataset="toy",
):
    """A bench record as runs.jsonl holds it (slices only when ``tail`` is given)."""
    out = {
        "run_id": run_id,
        "status": status,
        "engine": engine,
        "build_params": build if build is not None else {},
        "query_params": query if query is not None else {},
        "metric": "angular",
        "dataset": dataset,
        "k": k,
        "mode": "batch",
        "recall": recall if status == "ok" else None,
        "qps": qps if status == "ok" else None,
        "error": None if status == "ok" else "boom",
    }
    if tail is not None and status == "ok":
        out["slices"] = {
            "head": {"queries": 2, "recall": 1.0, "p5_recall": 1.0},
            "tail": {"queries": 4, "recall": tail, "p5_recall": 0.5},
        }
    return out


BASELINE = [
    record("h16", "hnsw", 0.90, 20000.0, tail=0.85, build={"M": 16}, query={"ef": 16}),
    record("h32", "hnsw", 0.95, 12000.0, tail=0.93, build={"M": 16}, query={"ef": 32}),
    record("a1", "annoy", 0.80, 3000.0, tail=0.75, build={"n_trees": 20}, query={"search_k": 400}),
    record("f", "flat", 1.0, 10000.0, tail=1.0),
]
META = {
    "dataset": {
        "name": "toy",
        "fingerprint": "abc",
        "queries_fingerprint": "q1",
        "metric": "angular",
    },
    "k": 10,
    "mode": "batch",
}


def changed(records, run_id, **fields):
    """A deep copy of ``records`` with fields of one record replaced (tail= sets the slice)."""
    out = copy.deepcopy(records)
    for item in out:
        if item["run_id"] == run_id:
            tail = fields.pop("tail", None)
            item.update(fields)
            if tail is not None:
                item["slices"]["tail"]["recall"] = tail
    return out


def scaled_qps(records, factor):
    out = copy.deepcopy(records)
    for item in out:
        if item["qps"] is not None:
            item["qps"] *= factor
    return out


def by_id(comparison):
    return {row.run_id: row for row in comparison.rows}


def test_identical_sweeps_pass():
    comparison = compare_records(
        BASELINE, copy.deepcopy(BASELINE), baseline_meta=META, current_meta=META
    )
    assert comparison.passed
    assert [row.verdict for row in comparison.rows] == ["ok"] * 4
    assert comparison.qps_basis == "flat" and comparison.machine_speed == 1.0
    assert comparison.compared == 4 and not comparison.new
    assert comparison.verdict() == (
        "PASSED: 4 baseline settings compared, none regressed (limits: recall@10 drop 0.005, "
        "QPS not checked, dist/query rise 2% (checked on 0 settings; not "
        "counted on 4: hnsw, annoy, flat))"
    )
    row = by_id(comparison)["h32"]
    assert row.recall_change == 0.0 and row.tail_recall_change == 0.0 and row.qps_change == 0.0
    assert row.baseline_relative_qps == pytest.approx(1.2)


def test_settings_are_matched_by_run_id_whatever_the_order():
    current = list(reversed(copy.deepcopy(BASELINE)))
    current.append(
        record("h64", "hnsw", 0.99, 6000.0, tail=0.98, build={"M": 16}, query={"ef": 64})
    )
    comparison = compare_records(BASELINE, current)
    assert comparison.passed
    assert [row.run_id for row in comparison.rows] == ["h16", "h32", "a1", "f", "h64"]
    assert [row.verdict for row in comparison.rows][-1] == "new"
    assert [row.run_id for row in comparison.new] == ["h64"]
    assert comparison.summary() == (
        "4 baseline settings compared, none regressed; 1 new (not in the baseline)"
    )


def test_recall_drop_beyond_the_limit_fails():
    comparison = compare_records(BASELINE, changed(BASELINE, "h32", recall=0.94))
    assert not comparison.passed
    row = by_id(comparison)["h32"]
    assert row.verdict == "regressed" and row.problems == ["recall@10 -0.0100"]
    assert [r.run_id for r in comparison.regressed] == ["h32"]
    assert comparison.summary() == "1 of 4 baseline settings regressed"


def test_recall_drop_of_exactly_the_limit_passes():
    comparison = compare_records(BASELINE, changed(BASELINE, "h32", recall=0.945))
    assert comparison.passed and by_id(comparison)["h32"].verdict == "ok"
    looser = compare_records(
        BASELINE, changed(BASELINE, "h32", recall=0.94), GateThresholds(max_recall_drop=0.02)
    )
    assert looser.passed


def test_tail_recall_drop_alone_fails():
    comparison = compare_records(BASELINE, changed(BASELINE, "a1", tail=0.70))
    row = by_id(comparison)["a1"]
    assert not comparison.passed and row.verdict == "regressed"
    assert row.recall_change == 0.0 and row.problems == ["tail recall@10 -0.0500"]


def test_tail_is_not_checked_when_a_side_has_no_slices():
    current = changed(BASELINE, "a1")
    del current[2]["slices"]
    comparison = compare_records(BASELINE, current)
    row = by_id(comparison)["a1"]
    assert comparison.passed and row.current_tail_recall is None
    assert row.tail_recall_change is None


def test_a_machine_twice_as_slow_does_not_trip_the_gate():
    comparison = compare_records(BASELINE, scaled_qps(BASELINE, 0.5))
    assert comparison.passed and comparison.machine_speed == 0.5
    assert all(row.qps_change == pytest.approx(0.0) for row in comparison.rows)
    assert "this run was 0.50x as fast overall" in comparison.notes[0]


#: an explicit QPS limit: best run against best run (the records have no spread)
BEST_QPS = GateThresholds(max_qps_drop=0.15)


def test_qps_drop_relative_to_flat_fails():
    slower = changed(BASELINE, "h16", qps=20000.0 * 0.8)  # -20%, flat unchanged
    comparison = compare_records(BASELINE, slower, BEST_QPS)
    row = by_id(comparison)["h16"]
    assert not comparison.passed and row.verdict == "regressed"
    assert row.qps_change == pytest.approx(-0.2) and row.problems == ["QPS x flat -20.0%"]
    # the same setting on a machine twice as fast that did not get faster itself
    faster_machine = changed(scaled_qps(BASELINE, 2.0), "h16", qps=20000.0)
    faster_row = by_id(compare_records(BASELINE, faster_machine, BEST_QPS))["h16"]
    assert faster_row.problems == ["QPS x flat -50.0%"]
    # a 10% drop is within 15%
    assert compare_records(BASELINE, changed(BASELINE, "h16", qps=18000.0), BEST_QPS).passed
    # by default (no spread measured) the QPS check is off, and says so
    default = compare_records(BASELINE, slower)
    assert default.passed and by_id(default)["h16"].qps_status == "not checked: no spread"


def test_a_qps_limit_of_one_turns_the_qps_check_off_and_says_so():
    off = GateThresholds(max_qps_drop=1.0)
    much_slower = changed(BASELINE, "h16", qps=20000.0 * 0.1)  # -90%
    comparison = compare_records(BASELINE, much_slower, off)
    row = by_id(comparison)["h16"]
    assert comparison.passed and row.verdict == "ok" and row.qps_change == pytest.approx(-0.9)
    assert "(limits: recall@10 drop 0.005, QPS not checked, dist/query" in comparison.verdict()
    faster = changed(BASELINE, "h16", qps=20000.0 * 3)  # not an improvement either
    assert by_id(compare_records(BASELINE, faster, off))["h16"].verdict == "ok"
    # recall is still checked
    assert not compare_records(BASELINE, changed(BASELINE, "h16", recall=0.5), off).passed


def test_without_a_flat_run_raw_qps_is_compared_and_said_so():
    without_flat = [r for r in BASELINE if r["engine"] != "flat"]
    comparison = compare_records(without_flat, scaled_qps(without_flat, 0.5), BEST_QPS)
    assert comparison.qps_basis == "raw" and comparison.machine_speed is None
    assert comparison.notes[0] == (
        "no usable flat run in the baseline and current sweep: raw QPS compared, so a faster "
        'or slower machine counts as a change (add [[engine]] name = "flat")'
    )
    assert not comparison.passed
    assert by_id(comparison)["h16"].problems == ["QPS -50.0%"]
    one_side = compare_records(BASELINE, [r for r in BASELINE if r["engine"] != "flat"])
    assert one_side.qps_basis == "raw" and "in the current sweep" in one_side.notes[0]


def test_missing_and_failed_settings_fail_the_gate():
    current = [r for r in copy.deepcopy(BASELINE) if r["run_id"] != "a1"]
    current[0] = record(
        "h16", "hnsw", None, None, status="timeout", build={"M": 16}, query={"ef": 16}
    )
    current[0]["error"] = "the query run took longer than 5s"
    comparison = compare_records(BASELINE, current)
    rows = by_id(comparison)
    assert not comparison.passed
    assert rows["a1"].verdict == "missing" and rows["a1"].problems == ["not in the current sweep"]
    assert rows["h16"].verdict == "failed"
    assert rows["h16"].problems == ["timeout: the query run took longer than 5s"]
    assert comparison.summary() == "1 of 4 baseline settings missing, 1 failed"
    result = comparison.to_dict()
    assert [item["run_id"] for item in result["missing"]] == ["a1"]
    assert result["failed"] == [
        {
            "run_id": "h16",
            "engine": "hnsw",
            "setting": "hnsw ef=16",
            "build_params": {"M": 16},
            "query_params": {"ef": 16},
            "status": "timeout",
            "error": "the query run took longer than 5s",
        }
    ]


def test_an_ok_record_without_recall_counts_as_failed():
    current = changed(BASELINE, "h32", recall=None)
    row = by_id(compare_records(BASELINE, current))["h32"]
    assert row.verdict == "failed" and row.problems == ["ok: no recall or QPS recorded"]


def test_a_setting_that_failed_in_the_baseline_is_not_a_regression():
    baseline = changed(BASELINE, "a1", status="failed", recall=None, qps=None)
    for current in (
        copy.deepcopy(baseline),
        BASELINE,
        [r for r in BASELINE if r["run_id"] != "a1"],
    ):
        comparison = compare_records(baseline, current)
        assert comparison.passed and by_id(comparison)["a1"].verdict == "baseline failed"


def test_improvements_are_reported_and_pass():
    comparison = compare_records(BASELINE, changed(BASELINE, "h16", recall=0.95))
    assert comparison.passed and by_id(comparison)["h16"].verdict == "improved"
    assert comparison.summary() == "4 baseline settings compared, none regressed; 1 improved"


def test_json_shape():
    result = compare_records(
        BASELINE,
        changed(BASELINE, "h32", recall=0.90),
        baseline_meta=META,
        current_meta=META,
        baseline_path="base",
        current_path="now",
    ).to_dict()
    assert set(result) == {
        "passed",
        "verdict",
        "thresholds",
        "qps_basis",
        "machine_speed",
        "baseline",
        "current",
        "counts",
        "rows",
        "regressed",
        "missing",
        "failed",
        "new",
        "notes",
        "slice",
        "skipped",
    }
    assert result["passed"] is False
    assert result["slice"] is None
    assert result["skipped"] == [
        {
            "check": "work",
            "reason": "work not checked on 4 settings: hnsw, annoy, flat cannot count "
            "distance computations",
        },
        {
            "check": "qps",
            "reason": "QPS not checked: the sweeps did not measure their spread (fewer than 2 "
            "timed runs per setting); give --max-qps-drop to compare the best runs",
        },
    ]
    assert result["thresholds"] == {
        "max_recall_drop": 0.005,
        "max_qps_drop": None,
        "max_work_increase": 0.02,
    }
    assert result["counts"] == {
        "compared": 4,
        "regressed": 1,
        "missing": 0,
        "failed": 0,
        "improved": 0,
        "new": 0,
        "work_checked": 0,
        "work_not_counted": 4,
    }
    assert result["baseline"] == {
        "path": "base",
        "dataset": "toy",
        "metric": "angular",
        "k": 10,
        "mode": "batch",
        "runs": 4,
        "flat_qps": 10000.0,
        "recall_rule": "tolerant",
    }
    row = result["rows"][1]
    assert row["setting"] == "hnsw ef=32" and row["verdict"] == "regressed"
    assert row["recall"] == {"baseline": 0.95, "current": 0.90, "change": pytest.approx(-0.05)}
    assert row["relative_qps"] == {
        "baseline": 1.2,
        "current": 1.2,
        "change": 0.0,
        "baseline_slowest": None,
        "current_fastest": None,
        "change_beyond_spread": None,
        "status": "not checked: no spread",
    }
    assert row["frontier"] == {"recall_at_current_work": None, "position": None}
    json.dumps(result)  # JSON-ready as it is


def test_like_with_like_is_checked():
    other_k = [dict(r, k=20) for r in BASELINE]
    with pytest.raises(InputError) as error:
        compare_records(BASELINE, other_k)
    assert str(error.value) == (
        "cannot compare: the baseline and current sweeps differ in k (10 vs 20); a gate "
        "compares like with like (make a new baseline)"
    )
    other_vectors = {**META, "dataset": {**META["dataset"], "fingerprint": "zzz"}}
    with pytest.raises(InputError) as error:
        compare_records(BASELINE, BASELINE, baseline_meta=META, current_meta=other_vectors)
    assert "differ in base vectors (toy: base abc vs toy: base zzz);" in str(error.value)
    other_queries = {**META, "dataset": {**META["dataset"], "queries_fingerprint": "q2"}}
    with pytest.raises(InputError) as error:
        compare_records(BASELINE, BASELINE, baseline_meta=META, current_meta=other_queries)
    assert str(error.value) == (
        "cannot compare: the baseline and current sweeps differ in queries only (toy vs toy: "
        "same base vectors abc, queries q1 vs q2); a gate compares like with like (make a new "
        "baseline)"
    )
    other_name = [dict(r, dataset="other", metric="euclidean") for r in BASELINE]
    with pytest.raises(
        InputError,
        match=r"dataset \(toy vs other\), metric \(angular vs "
        r"euclidean\)",
    ):
        compare_records(BASELINE, other_name)
    # a fact unknown on one side is not checked
    check_comparable(sweep_facts(BASELINE, META), SweepFacts(k=10))
    with pytest.raises(InputError, match=r"mode \(batch vs single\)"):
        check_comparable(sweep_facts(BASELINE, META), SweepFacts(mode="single"))


def test_an_empty_baseline_is_an_input_error_and_an_empty_current_fails():
    with pytest.raises(InputError, match="the baseline has no runs"):
        compare_records([], BASELINE)
    comparison = compare_records(BASELINE, [])
    assert not comparison.passed and len(comparison.missing) == 4


def test_thresholds_must_be_non_negative():
    with pytest.raises(InputError, match="max_qps_drop must be a number >= 0"):
        GateThresholds(max_qps_drop=-0.1)


def test_setting_labels_show_what_varies_or_differs_from_a_fixed_default():
    records = [
        *BASELINE,
        record(
            "i1",
            "ivfpq",
            0.5,
            1.0,
            build={"nlist": 64, "m": 16, "refine": True},
            query={"nprobe": 4, "rerank": 0},
        ),
        record(
            "i2",
            "ivfpq",
            0.5,
            1.0,
            build={"nlist": None, "m": 16, "refine": True},
            query={"nprobe": 4, "rerank": 10},
        ),
    ]
    labels = setting_labels(records)
    # M=16 is hnsw's default; nlist None (a failed build) does not count as varying; m and
    # nlist have data-derived defaults; nprobe=4 differs from the fixed default 16
    assert labels == {
        "h16": "ef=16",
        "h32": "ef=32",
        "a1": "n_trees=20 | search_k=400",
        "f": "",
        "i1": "nprobe=4 rerank=0",
        "i2": "nprobe=4 rerank=10",
    }


def test_report_and_compare_name_a_setting_alike():
    now = changed(BASELINE, "h16", recall=0.5)
    report = build_report(now).to_dict()
    reported = {
        run["run_id"]: f"{engine} {run['setting']}".strip()
        for engine, entry in report["engines"].items()
        for run in entry["pareto"]
    }
    rows = {row.run_id: row.setting for row in compare_records(BASELINE, now).rows}
    assert reported and all(rows[run_id] == name for run_id, name in reported.items())
    assert rows == {
        "h16": "hnsw ef=16",
        "h32": "hnsw ef=32",
        "a1": "annoy n_trees=20 | search_k=400",
        "f": "flat",
    }


def test_compare_results_reads_folders_and_runs_files(tmp_path):
    for name, records in (("base", BASELINE), ("now", changed(BASELINE, "h16", recall=0.5))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "base" / "meta.json").write_text(json.dumps(META))
    comparison = compare_results(tmp_path / "base", tmp_path / "now" / "runs.jsonl")
    assert [row.run_id for row in comparison.regressed] == ["h16"]
    assert comparison.baseline.path == str(tmp_path / "base")
    assert comparison.baseline.fingerprint == "abc" and comparison.current.fingerprint is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "runs.jsonl").write_text("")
    with pytest.raises(InputError, match="empty: the baseline has no runs"):
        load_baseline(tmp_path / "empty")
