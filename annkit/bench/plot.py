"""Recall@k vs QPS plot of a sweep (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

from annkit.bench.report import (
    REFERENCE_ENGINE,
    Records,
    as_records,
    engine_frontiers,
    point,
    reference_qps,
)
from annkit.errors import InputError
from annkit.files import atomic_write


def plot_sweep(records: Records, target: str | Path, *, title: str | None = None,
               slice_records: Records | None = None, slice_name: str | None = None,
               dpi: int = 120) -> Path:
    """Draw recall@k (x) against QPS (log y): one line per engine's Pareto frontier,
    dominated runs as faint points, the exact ``flat`` QPS as a dashed reference line.

    With ``slice_records`` (the same runs with recall on the query slice ``slice_name``, see
    ``report.on_slice``), each engine's slice frontier is drawn beside its overall one, in
    the same colour, dashed, with hollow markers. The format follows ``target``'s suffix
    (png, svg, pdf...; default png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(target)
    points = [r for r in as_records(records) if r.usable]
    if not points:
        raise InputError("nothing to plot: no successful runs")
    first = points[0]
    k = first.k
    if title is None:
        title = f"{first.dataset or 'dataset'}: recall@{k} vs QPS ({first.mode})"
    frontiers = engine_frontiers(points)
    slice_points = [r for r in as_records(slice_records or []) if r.usable]
    slice_frontiers = engine_frontiers(slice_points) if slice_points else {}
    slice_name = slice_name or "slice"
    flat_qps = reference_qps(points)
    figure, axes = plt.subplots(figsize=(8, 5.5))
    try:
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        engines = [e for e in dict.fromkeys(r.engine for r in points) if e != REFERENCE_ENGINE]
        for position, engine in enumerate(engines):
            colour = colours[position % len(colours)]
            runs = [r for r in points if r.engine == engine]
            recall, qps = zip(*map(point, runs), strict=True)
            axes.scatter(recall, qps, s=14,
                         color=colour, alpha=0.25, linewidths=0)
            front = frontiers[engine]
            recall, qps = zip(*map(point, front), strict=True)
            axes.plot(recall, qps, marker="o", markersize=4, linewidth=1.6, color=colour,
                      label=engine)
            if slice_frontiers.get(engine):
                front = slice_frontiers[engine]
                recall, qps = zip(*map(point, front), strict=True)
                axes.plot(recall, qps, marker="o", markersize=5, markerfacecolor="none",
                          linestyle="--", linewidth=1.3,
                          color=colour, label=f"{engine} ({slice_name})")
        if flat_qps is not None:
            axes.axhline(flat_qps, color="0.35", linestyle="--", linewidth=1,
                         label=f"{REFERENCE_ENGINE} (exact): {flat_qps:,.0f} QPS")
            flat_recall = max(point(r)[0] for r in points if r.engine == REFERENCE_ENGINE)
            axes.scatter([flat_recall], [flat_qps], marker="*", s=90, color="0.2", zorder=3)
        axes.set_yscale("log")
        axes.set_xlabel(f"recall@{k}")
        axes.set_ylabel("queries per second (log scale)")
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.25)
        axes.legend(loc="lower left", fontsize=9)
        figure.tight_layout()
        file_format = target.suffix.lstrip(".").lower() or "png"
        with atomic_write(target, make_parents=True) as tmp:
            figure.savefig(tmp, format=file_format, dpi=dpi)
    finally:
        plt.close(figure)
    return target
