"""Recall over a stream's steps: mean recall@k (solid) and the 5th percentile of per-query
recall (dashed) of the live index at each search step, one colour per stream; a fresh
build's at the steps measured with ``--rebuild-every`` (hollow markers); and, where the
engine counts, distance computations per query in a second panel. matplotlib (Agg),
written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from annkit.bench.plot import wrapped
from annkit.errors import InputError
from annkit.files import atomic_write
from annkit.stream.records import StreamReport

REPORT_FILE = "report.json"


def read_report(path: str | Path) -> StreamReport:
    """The report of a stream's output folder (or of its ``report.json``)."""
    target = Path(path)
    if target.is_dir():
        target = target / REPORT_FILE
    if not target.is_file():
        raise InputError(
            f"{path}: no stream report (report.json); a stream writes it when it finishes: "
            "run the same command again to resume it"
        )
    try:
        return StreamReport.from_dict(json.loads(target.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{target}: not a stream report ({type(exc).__name__})") from None


def stream_label(report: StreamReport) -> str:
    """``engine param=value ...`` for a legend."""
    params = {**report.build_params, **report.query_params}
    shown = " ".join(f"{name}={value}" for name, value in params.items() if value is not None)
    return f"{report.engine} {shown}".strip()


def plot_streams(
    reports: list[StreamReport], target: str | Path, *, title: str | None = None, dpi: int = 120
) -> Path:
    """Draw ``reports`` (see the module docstring) into ``target`` (format from its suffix,
    PNG by default); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not reports:
        raise InputError("no stream to plot")
    counted = any(
        step.search is not None and step.search.distance_computations is not None
        for report in reports
        for step in report.steps
    )
    panels = 2 if counted else 1
    figure, axes_list = plt.subplots(panels, 1, figsize=(8, 4.2 * panels), squeeze=False)
    recall_axes = axes_list[0][0]
    for index, report in enumerate(reports):
        colour = f"C{index % 10}"
        label = stream_label(report)
        searches = [step for step in report.steps if step.search is not None]
        x = [step.step for step in searches]
        recall_axes.plot(
            x,
            [s.search.recall for s in searches if s.search],
            "-o",
            color=colour,
            markersize=3,
            label=f"{label}: mean",
        )
        recall_axes.plot(
            x,
            [s.search.p5_recall for s in searches if s.search],
            "--",
            color=colour,
            label=f"{label}: p5",
        )
        fresh = [step for step in searches if step.fresh is not None]
        if fresh:
            recall_axes.plot(
                [step.step for step in fresh],
                [step.fresh.measure.recall for step in fresh if step.fresh],
                "o",
                markerfacecolor="none",
                color=colour,
                label=f"{label}: fresh build",
            )
        if counted:
            work_axes = axes_list[1][0]
            points = [
                (s.step, s.search.distance_computations)
                for s in searches
                if s.search and s.search.distance_computations is not None
            ]
            if points:
                work_axes.plot(
                    *zip(*points, strict=True), "-o", color=colour, markersize=3, label=label
                )
            fresh_points = [
                (s.step, s.fresh.measure.distance_computations)
                for s in fresh
                if s.fresh and s.fresh.measure.distance_computations is not None
            ]
            if fresh_points:
                work_axes.plot(
                    *zip(*fresh_points, strict=True), "o", markerfacecolor="none", color=colour
                )
    first = reports[0]
    recall_axes.set_xlabel("runbook step")
    recall_axes.set_ylabel(f"recall@{first.k}")
    recall_axes.grid(alpha=0.3)
    recall_axes.legend(fontsize=7, loc="lower left")
    heading = title or f"{first.dataset}: {Path(first.runbook).name} [{first.entry}]"
    recall_axes.set_title(wrapped(heading), fontsize=10)
    if counted:
        work_axes = axes_list[1][0]
        work_axes.set_xlabel("runbook step")
        work_axes.set_ylabel("distance computations / query")
        work_axes.grid(alpha=0.3)
    figure.tight_layout()
    out = Path(target)
    file_format = out.suffix.lstrip(".").lower() or "png"
    with atomic_write(out, make_parents=True) as tmp:
        figure.savefig(tmp, format=file_format, dpi=dpi)
    plt.close(figure)
    return out
