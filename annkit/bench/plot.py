"""Plots of a sweep: recall@k against QPS, or against distance computations per query
(matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from annkit.bench.pareto import pareto_front
from annkit.bench.report import (
    REFERENCE_ENGINE,
    Records,
    as_records,
    concurrency_rows,
    engine_frontiers,
    point,
    reference_qps,
)
from annkit.errors import InputError
from annkit.files import atomic_write
from annkit.types import RunRecord

#: what the x axis of a plot can show besides recall
AXES = ("qps", "work", "threads", "clients")


def counted(record: RunRecord) -> bool:
    """A usable record with a positive, finite mean distance computations per query."""
    work = record.distance_computations
    return record.usable and work is not None and math.isfinite(work) and work > 0


def work_point(record: RunRecord) -> tuple[float, float]:
    """(recall, -distance computations) of a counted record: both larger is better, so the
    Pareto frontier of these points is the recall-vs-work frontier."""
    assert record.recall is not None and record.distance_computations is not None
    return record.recall, -record.distance_computations


def work_frontiers(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Per engine, the counted records no other of its records beats on recall and work."""
    by_engine: dict[str, list[RunRecord]] = {}
    for record in records:
        if counted(record):
            by_engine.setdefault(record.engine, []).append(record)
    return {engine: [runs[i] for i in pareto_front([work_point(r) for r in runs])]
            for engine, runs in by_engine.items()}


def qps_error_bars(axes: Any, runs: list[RunRecord], colour: str) -> None:
    """Vertical bars from each run's slowest to fastest timed QPS (records that kept their
    spread; the point itself is the fastest)."""
    spread = [r for r in runs if r.qps_min is not None and r.qps_max is not None
              and r.recall is not None and r.qps is not None]
    if not spread:
        return
    axes.errorbar([r.recall for r in spread], [r.qps for r in spread],
                  yerr=[[max(0.0, r.qps - r.qps_min) for r in spread],  # type: ignore[operator]
                        [max(0.0, r.qps_max - r.qps) for r in spread]],  # type: ignore[operator]
                  fmt="none", ecolor=colour, elinewidth=0.9, capsize=2, alpha=0.7)


def plot_sweep(records: Records, target: str | Path, *, title: str | None = None,
               slice_records: Records | None = None, slice_name: str | None = None,
               x: str = "qps", dpi: int = 120) -> Path:
    """Draw a sweep's frontiers and write the image to ``target`` (format from its suffix:
    png, svg, pdf...; default png).

    ``x="qps"``: recall@k (x) against QPS (log y), one line per engine's Pareto frontier,
    dominated runs as faint points, the exact ``flat`` QPS as a dashed reference line;
    error bars from the slowest to the fastest timed run where the records kept them.
    ``x="work"``: mean distance computations per query (log x) against recall@k (y), as
    ann-benchmarks draws it; engines that do not count are left out and named in the title.

    With ``slice_records`` (the same runs seen on the query slice ``slice_name``, see
    ``report.on_slice``), each engine's slice frontier is drawn beside its overall one, in
    the same colour, dashed, with hollow markers."""
    if x not in AXES:
        raise InputError(f"unknown plot axis {x!r}: use one of {', '.join(AXES)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(target)
    points = [r for r in as_records(records) if r.usable]
    if not points:
        raise InputError("nothing to plot: no successful runs")
    first = points[0]
    slice_points = [r for r in as_records(slice_records or []) if r.usable]
    slice_name = slice_name or "slice"
    figure, axes = plt.subplots(figsize=(8, 5.5))
    try:
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        if x == "work":
            _draw_work(axes, points, slice_points, slice_name, colours, title)
        elif x in ("threads", "clients"):
            _draw_concurrency(axes, points, x, colours, title)
        else:
            _draw_qps(axes, points, slice_points, slice_name, colours,
                      title or f"{first.dataset or 'dataset'}: recall@{first.k} vs QPS "
                               f"({first.mode})")
        axes.grid(True, which="both", alpha=0.25)
        figure.tight_layout()
        file_format = target.suffix.lstrip(".").lower() or "png"
        with atomic_write(target, make_parents=True) as tmp:
            figure.savefig(tmp, format=file_format, dpi=dpi)
    finally:
        plt.close(figure)
    return target


def _draw_qps(axes: Any, points: list[RunRecord], slice_points: list[RunRecord],
              slice_name: str, colours: list[str], title: str) -> None:
    k = points[0].k
    frontiers = engine_frontiers(points)
    slice_frontiers = engine_frontiers(slice_points) if slice_points else {}
    flat_qps = reference_qps(points)
    engines = [e for e in dict.fromkeys(r.engine for r in points) if e != REFERENCE_ENGINE]
    for position, engine in enumerate(engines):
        colour = colours[position % len(colours)]
        runs = [r for r in points if r.engine == engine]
        recall, qps = zip(*map(point, runs), strict=True)
        axes.scatter(recall, qps, s=14, color=colour, alpha=0.25, linewidths=0)
        qps_error_bars(axes, runs, colour)
        front = frontiers[engine]
        recall, qps = zip(*map(point, front), strict=True)
        axes.plot(recall, qps, marker="o", markersize=4, linewidth=1.6, color=colour,
                  label=engine)
        if slice_frontiers.get(engine):
            front = slice_frontiers[engine]
            recall, qps = zip(*map(point, front), strict=True)
            axes.plot(recall, qps, marker="o", markersize=5, markerfacecolor="none",
                      linestyle="--", linewidth=1.3, color=colour,
                      label=f"{engine} ({slice_name})")
    if flat_qps is not None:
        axes.axhline(flat_qps, color="0.35", linestyle="--", linewidth=1,
                     label=f"{REFERENCE_ENGINE} (exact): {flat_qps:,.0f} QPS")
        flat_recall = max(point(r)[0] for r in points if r.engine == REFERENCE_ENGINE)
        axes.scatter([flat_recall], [flat_qps], marker="*", s=90, color="0.2", zorder=3)
        qps_error_bars(axes, [r for r in points if r.engine == REFERENCE_ENGINE], "0.2")
    axes.set_yscale("log")
    axes.set_xlabel(f"recall@{k}")
    axes.set_ylabel("queries per second (log scale)")
    axes.set_title(title)
    axes.legend(loc="lower left", fontsize=9)


def _draw_work(axes: Any, points: list[RunRecord], slice_points: list[RunRecord],
               slice_name: str, colours: list[str], title: str | None) -> None:
    first = points[0]
    k = first.k
    uncounted = [e for e in dict.fromkeys(r.engine for r in points)
                 if not any(counted(r) for r in points if r.engine == e)]
    drawn = [r for r in points if counted(r)]
    if not drawn:
        raise InputError("nothing to plot against work: no run counted its distance "
                         f"computations (not counted: {', '.join(uncounted)})")
    frontiers = work_frontiers(drawn)
    slice_frontiers = work_frontiers(slice_points)
    engines = list(dict.fromkeys(r.engine for r in drawn))
    for position, engine in enumerate(engines):
        colour = colours[position % len(colours)]
        runs = [r for r in drawn if r.engine == engine]
        marker = "*" if engine == REFERENCE_ENGINE else "o"
        axes.scatter([r.distance_computations for r in runs], [r.recall for r in runs],
                     s=14, color=colour, alpha=0.25, linewidths=0)
        front = frontiers[engine]
        axes.plot([r.distance_computations for r in front], [r.recall for r in front],
                  marker=marker, markersize=9 if marker == "*" else 4, linewidth=1.6,
                  color=colour, label=f"{engine} (exact)" if engine == REFERENCE_ENGINE
                  else engine)
        if slice_frontiers.get(engine) and engine != REFERENCE_ENGINE:
            front = slice_frontiers[engine]
            axes.plot([r.distance_computations for r in front], [r.recall for r in front],
                      marker="o", markersize=5, markerfacecolor="none", linestyle="--",
                      linewidth=1.3, color=colour, label=f"{engine} ({slice_name})")
    if uncounted:
        axes.plot([], [], linestyle="none",
                  label=f"not counted (left out): {', '.join(uncounted)}")
    axes.set_xscale("log")
    axes.set_xlabel("distance computations per query (mean, log scale)")
    axes.set_ylabel(f"recall@{k}")
    if title is None:
        title = f"{first.dataset or 'dataset'}: recall@{k} vs distance computations ({first.mode})"
        if uncounted:
            title += f"\nleft out, not counted: {', '.join(uncounted)}"
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize=9)


def _draw_concurrency(axes: Any, points: list[RunRecord], by: str, colours: list[str],
                      title: str | None) -> None:
    """QPS (y) against search threads or concurrent clients (x), one line per setting
    measured at more than one level (see ``report.concurrency_rows``)."""
    rows = [row for row in concurrency_rows(points) if row["by"] == by]
    if not rows:
        option = "--search-threads 1,2" if by == "threads" else "--clients 1,2,4"
        raise InputError(f"nothing to plot against {by}: no setting was measured at more than "
                         f"one level (run annkit bench ... {option})")
    first = points[0]
    for position, row in enumerate(rows):
        levels = [entry["level"] for entry in row["levels"]]
        qps = [entry["qps"] for entry in row["levels"]]
        axes.plot(levels, qps, marker="o", markersize=4, linewidth=1.4,
                  color=colours[position % len(colours)],
                  label=f"{row['engine']} {row['setting']}".strip()[:60])
    axes.set_xscale("log", base=2)
    ticks = sorted({entry["level"] for row in rows for entry in row["levels"]})
    axes.set_xticks(ticks, [str(tick) for tick in ticks])
    axes.set_yscale("log")
    axes.set_xlabel("search threads" if by == "threads" else "concurrent clients")
    axes.set_ylabel("queries per second (log scale)")
    axes.set_title(title or f"{first.dataset or 'dataset'}: QPS against {by} (k={first.k})")
    axes.legend(loc="upper left", fontsize=8)
