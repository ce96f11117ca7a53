"""Plot error bars: each run's QPS drawn from its slowest to its fastest timed run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annkit.bench.plot import plot_sweep, qps_error_bars
from annkit.types import RunRecord


def _record(run_id: str, engine: str, recall: float, runs: list[float] | None) -> RunRecord:
    spread = (
        {}
        if runs is None
        else {
            "qps_runs": runs,
            "qps_min": min(runs),
            "qps_median": float(np.median(runs)),
            "qps_max": max(runs),
        }
    )
    return RunRecord.from_dict(
        {
            "run_id": run_id,
            "status": "ok",
            "engine": engine,
            "recall": recall,
            "qps": max(runs or [500.0]),
            "k": 10,
            "mode": "batch",
            "dataset": "toy",
            **spread,
        }
    )


def test_error_bars_span_the_slowest_to_the_fastest_run(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [
        _record("a", "hnsw", 0.9, [800.0, 1000.0, 950.0]),
        _record("b", "hnsw", 0.95, [600.0, 640.0]),
        _record("old", "hnsw", 0.97, None),
    ]  # an old record: no spread, no bar
    figure, axes = plt.subplots()
    try:
        qps_error_bars(axes, records, "C0")
        (container,) = axes.containers
        segments = container.lines[2][0].get_segments()
        spans = sorted((float(seg[0][1]), float(seg[1][1])) for seg in segments)
        assert spans == [(600.0, 640.0), (800.0, 1000.0)]
    finally:
        plt.close(figure)
    target = plot_sweep(records + [_record("f", "flat", 1.0, [50.0, 55.0])], tmp_path / "plot.png")
    assert target.stat().st_size > 0
