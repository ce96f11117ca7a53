"""A sweep's timing: ``runs`` is the most timed runs, ``qps_tolerance`` when to stop earlier;
every record keeps each run's QPS."""

from __future__ import annotations

import pytest
from sweep_files import sweep_text

from annkit.bench.runner import run_sweep
from annkit.bench.spec import SweepError, parse_sweep
from annkit.bench.store import read_runs
from annkit.evaluate import DEFAULT_QPS_TOLERANCE


def test_qps_tolerance_key_is_read_and_checked() -> None:
    assert parse_sweep(sweep_text("timing-hnsw", extra="")).qps_tolerance == DEFAULT_QPS_TOLERANCE
    spec = parse_sweep(sweep_text("timing-hnsw", extra="qps_tolerance = 0"))
    assert spec.qps_tolerance == 0.0 and spec.identity()["qps_tolerance"] == 0.0
    assert "qps_tolerance" not in parse_sweep(sweep_text("timing-hnsw", extra="")).identity()
    with pytest.raises(
        SweepError,
        match=r"\[bench\] qps_tolerance must be a fraction in "
        r"\[0, 1\), got 1.5",
    ):
        parse_sweep(sweep_text("timing-hnsw", extra="qps_tolerance = 1.5"))


@pytest.mark.slow
def test_sweep_records_keep_every_run_and_stop_by_the_tolerance(tmp_path) -> None:
    every = run_sweep(
        parse_sweep(sweep_text("timing-hnsw", extra="qps_tolerance = 0")),
        tmp_path / "all",
        results_root=tmp_path,
        threads=1,
    )
    assert every.ran == 1
    (record,) = read_runs(tmp_path / "all" / "runs.jsonl")
    assert record["runs"] == record["max_runs"] == 3 and len(record["qps_runs"]) == 3
    assert record["qps"] == record["qps_max"] == max(record["qps_runs"])
    assert record["qps_min"] == min(record["qps_runs"]) and record["qps_tolerance"] == 0.0
    run_sweep(
        parse_sweep(sweep_text("timing-hnsw", extra="qps_tolerance = 0.99")),
        tmp_path / "loose",
        results_root=tmp_path,
        threads=1,
    )
    (loose,) = read_runs(tmp_path / "loose" / "runs.jsonl")
    assert loose["runs"] == 2 and loose["max_runs"] == 3 and len(loose["qps_runs"]) == 2
