"""Streams as one self-contained HTML page (the sweep report's page, see
:mod:`annkit.bench.html_report`): each stream's live index and its fresh builds as series,
one point per search step; the x axis switches between the runbook step, QPS and work, the
query slice between all queries and the frequency bands the steps recorded; hovering a point
shows the step, recall, p5, QPS with its spread over the timed runs and distance
computations. The steps' figures are the stream's records as stored: nothing is scored
again here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annkit.bench.html_report import COLOURS, html_table, page_data, write_page
from annkit.errors import InputError
from annkit.stream.plot import stream_label
from annkit.stream.records import SearchMeasure, StreamReport


def _measure_point(run_id: str, measure: SearchMeasure, slice_name: str) -> list[Any] | None:
    """A step's point on a slice (POINT_FIELDS), or None when the step has no such slice."""
    recall: float | None
    p5: float | None
    if slice_name == "all":
        recall, p5, work = measure.recall, measure.p5_recall, measure.distance_computations
    else:
        entry = measure.slices.get(slice_name)
        if entry is None:
            return None
        recall, p5 = entry.recall, entry.p5_recall
        work = entry.work.mean if entry.work is not None else None
    return [run_id, recall, p5, work, False, False]


def stream_page_data(reports: Sequence[StreamReport]) -> dict[str, Any]:
    """The page's data for one or more streams."""
    if not reports:
        raise InputError("no stream to report")
    series: list[dict[str, Any]] = []
    settings: dict[str, dict[str, Any]] = {}
    measures: list[tuple[str, SearchMeasure]] = []
    slice_names: dict[str, None] = {}
    tables = []
    for number, report in enumerate(reports):
        label = stream_label(report)
        if len(reports) > 1:
            label = f"{number + 1}: {label}"
        colour = COLOURS[number % len(COLOURS)]
        names = {"live": label, "fresh": f"{label} (fresh build)"}
        rows = []
        for step in report.searches():
            for kind, measure in (
                ("live", step.search),
                ("fresh", step.fresh.measure if step.fresh is not None else None),
            ):
                if measure is None:
                    continue
                run_id = f"{number}-{kind}-{step.step}"
                runs = [value for value in measure.qps_runs if value]
                settings[run_id] = {
                    "series": names[kind],
                    "setting": f"step {step.step} ({kind}), {step.live:,} live",
                    "reference": False,
                    "qps": measure.qps,
                    "qps_min": min(runs) if runs else None,
                    "qps_median": None,
                    "qps_max": max(runs) if runs else None,
                    "runs": len(runs) or None,
                    "work_unit": None,
                    "step": step.step,
                }
                measures.append((run_id, measure))
                slice_names.update(dict.fromkeys(measure.slices))
            if step.search is not None:
                search = step.search
                rows.append(
                    [
                        step.step,
                        f"{step.live:,}",
                        f"{search.recall:.4f}",
                        f"{search.p5_recall:.2f}",
                        "-"
                        if search.distance_computations is None
                        else f"{search.distance_computations:,.0f}",
                        f"{search.qps:,.0f}",
                        "-" if step.fresh is None else f"{step.fresh.measure.recall:.4f}",
                    ]
                )
        for kind in ("live", "fresh"):
            if any(facts["series"] == names[kind] for facts in settings.values()):
                series.append(
                    {
                        "name": names[kind],
                        "colour": colour,
                        "policy": "fresh" if kind == "fresh" else None,
                    }
                )
        summary = report.summary()
        tables.append(
            f"<p>{label} on {report.dataset}: {report.runbook} [{report.entry}]; mean recall@"
            f"{report.k} {summary['mean_recall'] or 0:.4f} over {summary['search_steps']} "
            "search steps</p>"
            + html_table(
                f"search steps: {label}",
                ["step", "live", f"recall@{reports[0].k}", "p5", "dist/query", "QPS", "fresh"],
                rows,
            )
        )
    slices = []
    for slice_name in ["all", *slice_names]:
        points = [
            point
            for run_id, measure in measures
            if (point := _measure_point(run_id, measure, slice_name)) is not None
        ]
        slices.append({"name": slice_name, "queries": None, "points": points, "tables": ""})
    slices[0]["tables"] = "".join(tables)
    first = reports[0]
    return page_data(
        title=f"{first.dataset}: recall@{first.k} over a stream ({first.runbook})",
        k=first.k,
        axes=("step", "qps", "work"),
        series=series,
        settings=settings,
        slices=slices,
        note="a stream keeps no per-query results in its folder (see --ids-out)",
    )


def write_stream_html(reports: Sequence[StreamReport], target: str | Path) -> Path:
    """Write the page of ``reports`` to ``target`` atomically."""
    return write_page(stream_page_data(reports), target)
