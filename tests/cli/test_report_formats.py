"""``annkit report --markdown`` / ``--csv`` (issue 19, item 9): one row per setting that a
file, a pull request or a CI log can hold; and the report's work-unit and timing marks."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from cli_runner import run_cli

from annkit.types import RunRecord, SliceRecall, TailSummary, WorkSummary

LATENCY = {"p50": None, "p95": None, "p99": None, "mean": None}


def _record(run_id: str, engine: str, query: dict, recall: float, qps: float, **extra) -> dict:
    tail = TailSummary(
        mean=recall,
        p1=recall - 0.3,
        p5=recall - 0.2,
        p10=recall - 0.1,
        share_below_0_5=0.01,
        share_zero=0.0,
        queries=100,
        work=None,
    )
    values = {
        "engine": engine,
        "build_params": {"M": 8} if engine == "hnsw" else {"factory": "IVF16,PQ48x4fs"},
        "query_params": query,
        "metric": "angular",
        "dataset": "words-10k",
        "k": 10,
        "mode": "batch",
        "queries": 100,
        "recall": recall,
        "qps": qps,
        "latency_ms": dict(LATENCY),
        "build_seconds": 1.0,
        "index_bytes": 1000,
        "search_seconds": 0.1,
        "runs": 3,
        "tail": tail,
        "slices": {"tail": SliceRecall(queries=40, recall=recall - 0.05, p5_recall=0.5)},
        "qps_runs": [qps * 0.9, qps, qps * 0.95],
        "run_id": run_id,
        "status": "ok",
        "relative_distance_error": 0.01,
        "cpu_per_wall": 0.97,
        "load_average": 0.5,
        "qps_min": qps * 0.9,
        "qps_median": qps * 0.95,
        "qps_max": qps,
    }
    values.update(extra)
    return RunRecord(**values).to_dict()


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """A results folder of four settings: two hnsw, a fast-scan one counting PQ codes (its
    timing flagged as starved) and a failed one."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    records = [
        _record("hnsw-1", "hnsw", {"ef": 10}, 0.81, 9000.0),
        _record("hnsw-2", "hnsw", {"ef": 40}, 0.95, 4000.0, recall_at={"10@100": 0.99}),
        _record(
            "faiss-1",
            "faiss",
            {"nprobe": 4},
            0.90,
            7000.0,
            distance_computations=29102.0,
            work_unit="PQ code distances",
            tail=TailSummary(0.9, 0.5, 0.6, 0.7, 0.0, 0.0, 100, WorkSummary(29000, 29000, 1, 2)),
            starved="starved: CPU 0.4 of 1",
            cpu_per_wall=0.41,
        ),
        RunRecord.failed(
            "hnsw-3",
            "failed",
            "out of memory",
            engine="hnsw",
            build_params={"M": 64},
            query_params={"ef": 10},
            measured_on={"k": 10, "mode": "batch", "dataset": "words-10k"},
        ).to_dict(),
    ]
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_csv_has_one_row_per_setting(results):
    result = run_cli("report", results, "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["engine"] for row in rows] == ["hnsw", "hnsw", "faiss", "hnsw"]
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "failed"]
    first, second, fast_scan, failed = rows
    assert first["query_params"] == "ef=10" and first["build_params"] == "M=8"
    assert float(first["recall"]) == 0.81 and float(first["p5_recall"]) == pytest.approx(0.61)
    assert float(first["tail_recall"]) == pytest.approx(0.76)
    assert float(first["qps"]) == 9000.0 and float(first["qps_min"]) == pytest.approx(8100.0)
    assert float(second["recall_10@100"]) == 0.99 and first["recall_10@100"] == ""
    assert fast_scan["work_unit"] == "PQ code distances"
    assert float(fast_scan["distance_computations"]) == 29102.0
    assert fast_scan["starved"] == "starved: CPU 0.4 of 1"
    assert float(fast_scan["relative_distance_error"]) == 0.01
    assert failed["recall"] == "" and failed["qps"] == ""
    assert "ef=" in first["setting"] and first["setting"] != second["setting"]
    assert "filter_strategy" not in first  # no filtered record: no filter columns


def _markdown_rows(text: str) -> list[list[str]]:
    """The cells of each line of a Markdown table (escaped pipes kept in their cell)."""
    rows = []
    for line in text.strip().splitlines():
        assert line.startswith("|") and line.endswith("|"), line
        cells = re.split(r"(?<!\\)\|", line[1:-1])
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def test_markdown_is_a_table_with_every_setting(results):
    result = run_cli("report", results, "--markdown")
    assert result.exit_code == 0, result.output
    header, rule, *body = _markdown_rows(result.stdout)
    assert len(body) == 4
    assert all(len(row) == len(header) for row in [rule, *body])
    assert all(re.fullmatch(r":?-{3,}:?", cell) for cell in rule)
    assert header[:5] == ["engine", "setting", "build params", "query params", "recall@10"]
    assert "recall 10@100" in header and "QPS (min-max)" in header
    column = dict(zip(header, zip(*body, strict=True), strict=True))
    assert column["engine"] == ("hnsw", "hnsw", "faiss", "hnsw")
    assert column["recall@10"][:3] == ("0.8100", "0.9500", "0.9000")
    assert column["dist/query"][2] == "29,102 (codes)"
    assert column["QPS (min-max)"][0] == "9,000 (8,100-9,000)"
    assert column["status / timing"] == ("ok", "ok", "starved: CPU 0.4 of 1", "failed")


def test_filter_fields_appear_when_present(results, tmp_path):
    filtered = _record(
        "hnsw-f",
        "hnsw",
        {"ef": 40, "filter_strategy": "post"},
        0.9,
        1000.0,
        filter_strategy="post",
        short_results=3,
        filter_plan={"1-10%": {"post": 100}},
    )
    runs = results / "runs.jsonl"
    runs.write_text(runs.read_text() + json.dumps(filtered) + "\n")
    rows = list(csv.DictReader(io.StringIO(run_cli("report", results, "--csv").stdout)))
    assert rows[-1]["filter_strategy"] == "post" and rows[-1]["short_results"] == "3"
    assert json.loads(rows[-1]["filter_plan"]) == {"1-10%": {"post": 100}}
    assert rows[0]["filter_strategy"] == ""
    markdown = run_cli("report", results, "--markdown")
    header, _, *body = _markdown_rows(markdown.stdout)
    assert "filter" in header and body[-1][header.index("filter")] == "post"


def test_the_report_marks_units_and_flags(results):
    result = run_cli("report", results)
    assert result.exit_code == 0, result.output
    assert "29,102 (codes)" in result.stdout
    assert "(!) timing flagged: faiss" in result.stdout
    assert "starved: CPU 0.4 of 1" in result.stdout


def test_one_format_at_a_time(results):
    result = run_cli("report", results, "--csv", "--markdown")
    assert result.exit_code == 2
    assert "use one of --json, --markdown and --csv" in result.stderr


def test_a_ci_log_line_names_a_flagged_timing():
    from annkit.bench.runner import SweepEvent
    from annkit.cli.sweep_render import plain_progress_line

    flagged = RunRecord.from_dict(
        _record(
            "h", "hnsw", {"ef": 10}, 0.9512, 8123.0, starved="busy machine: load 3.4 on 2 cores"
        )
    )
    line = plain_progress_line(SweepEvent("record", 3, 14, "hnsw M=8 | ef=10", flagged))
    assert line == (
        "[3/14] hnsw M=8 | ef=10: recall@10 0.9512, 8,123 QPS (busy machine: load 3.4 on 2 cores)"
    )
    quiet = RunRecord.from_dict(_record("h", "hnsw", {"ef": 10}, 0.9512, 8123.0))
    assert plain_progress_line(SweepEvent("record", 3, 14, "x", quiet)).endswith("8,123 QPS")
