"""Plots of a sweep: recall@k (or p5 per-query recall, or the tail band's recall) against
QPS, or against distance computations per query; policy runs as their own series beside
their index's uniform frontier; and the frontiers of an ``annkit adapt --json`` report
(uniform, learned, threshold, oracle). matplotlib, Agg backend, written atomically."""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

from annkit.bench.pareto import pareto_front
from annkit.bench.policies import policy_kind
from annkit.bench.report import (
    Records,
    as_records,
    concurrency_rows,
    engine_frontiers,
    p5_recall,
    point,
    reference_qps,
    series_names,
    tail_band_recall,
)
from annkit.engines.base import is_reference, reference_engine
from annkit.errors import InputError
from annkit.files import atomic_write
from annkit.types import RunRecord

#: what the x axis of a plot can show besides recall
AXES = ("qps", "work", "threads", "clients")
#: the recall measure drawn: mean recall@k, the 5th percentile of per-query recall@k, or the
#: mean recall@k of the tail frequency band
MEASURES = ("recall", "p5", "tail")
#: line style of a policy series by kind (uniform series: solid lines with dots)
POLICY_STYLES: dict[str, dict[str, Any]] = {
    "learned": {"marker": "D", "linestyle": (0, (5, 2))},
    "threshold": {"marker": "s", "linestyle": ":"},
}
#: the adapt report's frontiers, in drawing order, with colour, marker and line style
ADAPT_FRONTIERS = (
    ("uniform", "C0", "o", "-"),
    ("learned", "C1", "D", "-"),
    ("threshold", "C2", "s", "-"),
    ("oracle", "0.35", "*", "--"),
)


#: characters per title line: a title wider than the axes is wrapped, never cut
TITLE_WIDTH = 80


def wrapped(title: str, width: int = TITLE_WIDTH) -> str:
    """``title`` with each of its lines wrapped at ``width`` characters, so that a long
    dataset or slice name stays inside the figure."""
    return "\n".join(
        "\n".join(textwrap.wrap(line, width, break_long_words=True) or [""])
        for line in title.split("\n")
    )


def measure_label(measure: str, k: int | str | None) -> str:
    """The axis label of a recall ``measure`` (see MEASURES)."""
    depth = f"@{k}" if k is not None else ""
    return {
        "recall": f"recall{depth}",
        "p5": f"p5 per-query recall{depth}",
        "tail": f"tail-band recall{depth}",
    }[measure]


def check_measure(measure: str) -> None:
    if measure not in MEASURES:
        raise InputError(f"unknown recall measure {measure!r}: use one of {', '.join(MEASURES)}")


def on_measure(records: list[RunRecord], measure: str) -> list[RunRecord]:
    """``records`` with ``recall`` replaced by ``measure`` (p5: the 5th percentile of the
    per-query recall; tail: the tail band's mean recall); runs that did not record it are
    left out; InputError when none did."""
    check_measure(measure)
    if measure == "recall":
        return records
    read = p5_recall if measure == "p5" else tail_band_recall
    out = [
        replace(record, recall=read(record))
        for record in records
        if record.status == "ok" and read(record) is not None
    ]
    if records and not out:
        what = "p5 recall" if measure == "p5" else "a tail band (the dataset has no weights?)"
        raise InputError(f"nothing to plot: no run recorded {what}")
    return out


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
    """Per series (an index's uniform settings, or its policies of one kind; see
    report.series_names), the counted records no other of its records beats on recall and
    work."""
    names = series_names(records)
    by_series: dict[str, list[RunRecord]] = {}
    for record in records:
        if counted(record):
            by_series.setdefault(names[record.run_id], []).append(record)
    return {
        series: [runs[i] for i in pareto_front([work_point(r) for r in runs])]
        for series, runs in by_series.items()
    }


def qps_error_bars(axes: Any, runs: list[RunRecord], colour: str) -> None:
    """Vertical bars from each run's slowest to fastest timed QPS (records that kept their
    spread; the point itself is the fastest)."""
    spread = [
        r
        for r in runs
        if r.qps_min is not None
        and r.qps_max is not None
        and r.recall is not None
        and r.qps is not None
    ]
    if not spread:
        return
    axes.errorbar(
        [r.recall for r in spread],
        [r.qps for r in spread],
        yerr=[
            [max(0.0, r.qps - r.qps_min) for r in spread],  # type: ignore[operator]
            [max(0.0, r.qps_max - r.qps) for r in spread],  # type: ignore[operator]
        ],
        fmt="none",
        ecolor=colour,
        elinewidth=0.9,
        capsize=2,
        alpha=0.7,
    )


def _index_key(record: RunRecord) -> str:
    return json.dumps([record.engine, record.build_params], sort_keys=True, default=str)


def colours_by_series(
    records: list[RunRecord], names: dict[str, str], colours: list[str]
) -> dict[str, str]:
    """One colour per index (the exact reference aside), by series name: each index's
    uniform series (report.series_names: one per label) takes the next colour, and its
    policy series share it."""
    index_colour: dict[str, str] = {}
    out: dict[str, str] = {}
    uniform = [r for r in records if policy_kind(r) is None and not is_reference(r.engine)]
    for record in [*uniform, *(r for r in records if policy_kind(r) is not None)]:
        series = names[record.run_id]
        if series in out:
            continue
        key = _index_key(record)
        if key not in index_colour:
            index_colour[key] = colours[len(index_colour) % len(colours)]
        out[series] = index_colour[key]
    return out


def _line_style(record: RunRecord) -> dict[str, Any]:
    """Marker and line style of a series: solid with dots for uniform settings, the kind's
    style (POLICY_STYLES) for a policy."""
    kind = policy_kind(record)
    if kind is None:
        return {"marker": "o", "linestyle": "-"}
    return dict(POLICY_STYLES.get(kind, {"marker": "^", "linestyle": "-."}))


def _save(figure: Any, target: Path, dpi: int) -> None:
    file_format = target.suffix.lstrip(".").lower() or "png"
    with atomic_write(target, make_parents=True) as tmp:
        figure.savefig(tmp, format=file_format, dpi=dpi)


def plot_sweep(
    records: Records,
    target: str | Path,
    *,
    title: str | None = None,
    slice_records: Records | None = None,
    slice_name: str | None = None,
    x: str = "qps",
    y: str = "recall",
    dpi: int = 120,
) -> Path:
    """Draw a sweep's frontiers and write the image to ``target`` (format from its suffix:
    png, svg, pdf...; default png).

    ``x="qps"``: recall@k (x) against QPS (log y), one line per series' Pareto frontier
    (each index's uniform settings, named by its label and in a colour of its own; each
    index's policies of one kind as their own dashed or dotted line in the index's colour,
    diamonds for learned, squares for threshold), other runs as faint points, the exact
    ``flat`` QPS as a dashed reference line; error bars from the slowest to the fastest
    timed run where the records kept them. ``x="work"``: mean distance computations per
    query (log x) against recall@k (y), as ann-benchmarks draws it; series that do not
    count are left out and named in the title.

    ``y`` picks the recall measure (MEASURES): mean recall@k, ``p5`` (5th percentile of the
    per-query recall) or ``tail`` (the tail band's recall). With ``slice_records`` (the same
    runs seen on the query slice ``slice_name``, see ``report.on_slice``), each series'
    slice frontier is drawn beside its overall one, in the same colour, dashed, with hollow
    markers."""
    if x not in AXES:
        raise InputError(f"unknown plot axis {x!r}: use one of {', '.join(AXES)}")
    check_measure(y)
    if y == "tail" and slice_records is not None:
        raise InputError("--y tail is the tail band's recall already; drop --slice")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(target)
    points = [r for r in on_measure(as_records(records), y) if r.usable]
    if not points:
        raise InputError("nothing to plot: no successful runs")
    first = points[0]
    slice_points = [r for r in on_measure(as_records(slice_records or []), y) if r.usable]
    slice_name = slice_name or "slice"
    label = measure_label(y, first.k)
    figure, axes = plt.subplots(figsize=(8, 5.5))
    try:
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        if x == "work":
            _draw_work(axes, points, slice_points, slice_name, colours, title, label)
        elif x in ("threads", "clients"):
            _draw_concurrency(axes, points, x, colours, title)
        else:
            _draw_qps(
                axes,
                points,
                slice_points,
                slice_name,
                colours,
                title or f"{first.dataset or 'dataset'}: {label} vs QPS ({first.mode})",
                label,
            )
        axes.grid(True, which="both", alpha=0.25)
        figure.tight_layout()
        _save(figure, target, dpi)
    finally:
        plt.close(figure)
    return target


def _draw_qps(
    axes: Any,
    points: list[RunRecord],
    slice_points: list[RunRecord],
    slice_name: str,
    colours: list[str],
    title: str,
    label: str,
) -> None:
    frontiers = engine_frontiers(points)
    slice_frontiers = engine_frontiers(slice_points) if slice_points else {}
    names = series_names(points)
    colour_of = colours_by_series(points, names, colours)
    flat_qps = reference_qps(points)
    for series, front in frontiers.items():
        runs = [r for r in points if names[r.run_id] == series]
        if is_reference(runs[0].engine) and policy_kind(runs[0]) is None:
            continue
        colour, style = colour_of[series], _line_style(runs[0])
        recall, qps = zip(*map(point, runs), strict=True)
        axes.scatter(recall, qps, s=14, color=colour, alpha=0.25, linewidths=0)
        qps_error_bars(axes, runs, colour)
        recall, qps = zip(*map(point, front), strict=True)
        axes.plot(recall, qps, markersize=4, linewidth=1.6, color=colour, label=series, **style)
        if slice_frontiers.get(series):
            recall, qps = zip(*map(point, slice_frontiers[series]), strict=True)
            axes.plot(
                recall,
                qps,
                marker=style["marker"],
                markersize=5,
                markerfacecolor="none",
                linestyle="--",
                linewidth=1.3,
                color=colour,
                label=f"{series} ({slice_name})",
            )
    if flat_qps is not None:
        axes.axhline(
            flat_qps,
            color="0.35",
            linestyle="--",
            linewidth=1,
            label=f"{reference_engine()} (exact): {flat_qps:,.0f} QPS",
        )
        flat_recall = max(point(r)[0] for r in points if is_reference(r.engine))
        axes.scatter([flat_recall], [flat_qps], marker="*", s=90, color="0.2", zorder=3)
        qps_error_bars(axes, [r for r in points if is_reference(r.engine)], "0.2")
    axes.set_yscale("log")
    axes.set_xlabel(label)
    axes.set_ylabel("queries per second (log scale)")
    axes.set_title(wrapped(title), fontsize=10)
    axes.legend(loc="lower left", fontsize=8)


def _draw_work(
    axes: Any,
    points: list[RunRecord],
    slice_points: list[RunRecord],
    slice_name: str,
    colours: list[str],
    title: str | None,
    label: str,
) -> None:
    first = points[0]
    names = series_names(points)
    uncounted = [
        s
        for s in dict.fromkeys(names[r.run_id] for r in points)
        if not any(counted(r) for r in points if names[r.run_id] == s)
    ]
    drawn = [r for r in points if counted(r)]
    if not drawn:
        raise InputError(
            "nothing to plot against work: no run counted its distance "
            f"computations (not counted: {', '.join(uncounted)})"
        )
    frontiers = work_frontiers(drawn)
    slice_frontiers = work_frontiers(slice_points)
    colour_of = colours_by_series(points, names, colours)
    for series, front in frontiers.items():
        runs = [r for r in drawn if names[r.run_id] == series]
        exact = is_reference(runs[0].engine) and policy_kind(runs[0]) is None
        colour = "0.2" if exact else colour_of[series]
        style = {"marker": "*", "linestyle": "-"} if exact else _line_style(runs[0])
        axes.scatter(
            [r.distance_computations for r in runs],
            [r.recall for r in runs],
            s=14,
            color=colour,
            alpha=0.25,
            linewidths=0,
        )
        axes.plot(
            [r.distance_computations for r in front],
            [r.recall for r in front],
            markersize=9 if exact else 4,
            linewidth=1.6,
            color=colour,
            label=f"{series} (exact)" if exact else series,
            **style,
        )
        if slice_frontiers.get(series) and not exact:
            front = slice_frontiers[series]
            axes.plot(
                [r.distance_computations for r in front],
                [r.recall for r in front],
                marker=style["marker"],
                markersize=5,
                markerfacecolor="none",
                linestyle="--",
                linewidth=1.3,
                color=colour,
                label=f"{series} ({slice_name})",
            )
    if uncounted:
        axes.plot([], [], linestyle="none", label=f"not counted (left out): {', '.join(uncounted)}")
    axes.set_xscale("log")
    axes.set_xlabel("distance computations per query (mean, log scale)")
    axes.set_ylabel(label)
    if title is None:
        title = f"{first.dataset or 'dataset'}: {label} vs distance computations ({first.mode})"
        if uncounted:
            title += f"\nleft out, not counted: {', '.join(uncounted)}"
    axes.set_title(wrapped(title), fontsize=10)
    axes.legend(loc="lower right", fontsize=8)


def _draw_concurrency(
    axes: Any, points: list[RunRecord], by: str, colours: list[str], title: str | None
) -> None:
    """QPS (y) against search threads or concurrent clients (x), one line per setting
    measured at more than one level (see ``report.concurrency_rows``)."""
    rows = [row for row in concurrency_rows(points) if row["by"] == by]
    if not rows:
        option = "--search-threads 1,2" if by == "threads" else "--clients 1,2,4"
        raise InputError(
            f"nothing to plot against {by}: no setting was measured at more than "
            f"one level (run annkit bench ... {option})"
        )
    first = points[0]
    for position, row in enumerate(rows):
        levels = [entry["level"] for entry in row["levels"]]
        qps = [entry["qps"] for entry in row["levels"]]
        axes.plot(
            levels,
            qps,
            marker="o",
            markersize=4,
            linewidth=1.4,
            color=colours[position % len(colours)],
            label=f"{row['engine']} {row['setting']}".strip()[:60],
        )
    axes.set_xscale("log", base=2)
    ticks = sorted({entry["level"] for row in rows for entry in row["levels"]})
    axes.set_xticks(ticks, [str(tick) for tick in ticks])
    axes.set_yscale("log")
    axes.set_xlabel("search threads" if by == "threads" else "concurrent clients")
    axes.set_ylabel("queries per second (log scale)")
    axes.set_title(
        wrapped(title or f"{first.dataset or 'dataset'}: QPS against {by} (k={first.k})"),
        fontsize=10,
    )
    axes.legend(loc="upper left", fontsize=8)


def load_adapt_report(path: str | Path) -> dict[str, Any]:
    """The JSON that ``annkit adapt --json`` printed, read from ``path`` and checked: a
    ``frontiers`` object with a ``uniform`` list of points (recall, qps), and lists of such
    points for the learned, threshold and oracle frontiers it has (other keys are left
    alone). InputError (one line) for anything else."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(
            f"{path}: not JSON; expected a bench results folder, its runs.jsonl, "
            "or the output of annkit adapt --json"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    frontiers = document.get("frontiers") if isinstance(document, dict) else None
    known = [name for name, *_ in ADAPT_FRONTIERS]
    if (
        not isinstance(frontiers, dict)
        or not isinstance(frontiers.get("uniform"), list)
        or not all(
            isinstance(points, list)
            and all(
                isinstance(p, dict)
                and isinstance(p.get("recall"), int | float)
                and (p.get("qps") is None or isinstance(p.get("qps"), int | float))
                for p in points
            )
            for name, points in frontiers.items()
            if name in known
        )
    ):
        raise InputError(
            f'{path}: not the output of annkit adapt --json (no "frontiers" '
            "with uniform, learned, threshold and oracle points)"
        )
    return document


def _adapt_measure(point: dict, measure: str) -> float | None:
    if measure == "recall":
        value = point.get("recall")
    elif measure == "p5":
        value = point.get("p5_recall")
    else:
        entry = (point.get("slices") or {}).get("tail")
        value = entry.get("recall") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def adapt_series(report: dict[str, Any], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    """The points :func:`plot_adaptive` draws, per frontier (uniform, learned, threshold,
    oracle; empty ones left out), sorted along the x axis: (measure ``y``, QPS) for
    ``x="qps"``, (distance computations per query, measure ``y``) for ``x="work"``; points
    without the measure or a positive, finite x value are left out."""
    out: dict[str, list[tuple[float, float]]] = {}
    for name, *_ in ADAPT_FRONTIERS:
        pairs = []
        for item in report["frontiers"].get(name) or []:
            value = _adapt_measure(item, y)
            across = item.get("distance_computations" if x == "work" else "qps")
            if (
                value is None
                or not isinstance(across, int | float)
                or not (math.isfinite(across) and across > 0)
            ):
                continue
            pairs.append((float(across), value) if x == "work" else (value, float(across)))
        if pairs:
            out[name] = sorted(pairs)
    return out


def plot_adaptive(
    report: dict[str, Any],
    target: str | Path,
    *,
    x: str = "qps",
    y: str = "recall",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Draw the frontiers of an ``annkit adapt --json`` report (see load_adapt_report):
    uniform effort, the learned and threshold policies (scored on queries they never trained
    on) and the oracle (each query at its own least effort: a bound, it uses the ground
    truth), and write the image to ``target`` atomically.

    ``x="qps"``: the recall measure ``y`` (x) against QPS (log y); ``x="work"``: mean
    distance computations per query (log x) against ``y``, refused (InputError) when the
    engine did not count them. ``y``: recall, p5 or tail, as in :func:`plot_sweep`."""
    if x not in ("qps", "work"):
        raise InputError(f"an adapt report is plotted against qps or work, not {x!r}")
    check_measure(y)
    frontiers = report["frontiers"]
    engine = report.get("engine") or "index"
    if x == "work" and not any(
        isinstance(p.get("distance_computations"), int | float)
        for points in frontiers.values()
        for p in points
    ):
        raise InputError(
            f"nothing to plot against work: {engine} did not count its distance "
            "computations (distance_computations are null in this adapt report); "
            "use --x qps"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(target)
    k = report.get("k")
    label = measure_label(y, k)
    param = report.get("param") or "effort"
    series = adapt_series(report, x, y)
    if not series:
        raise InputError(f"nothing to plot: no point of this adapt report has {label}")
    figure, axes = plt.subplots(figsize=(8, 5.5))
    try:
        for name, colour, marker, linestyle in ADAPT_FRONTIERS:
            pairs = series.get(name)
            if not pairs:
                continue
            legend = {
                "uniform": f"uniform {param}",
                "learned": "learned policy",
                "threshold": "threshold policy",
                "oracle": "oracle (uses the ground truth: a bound)",
            }[name]
            axes.plot(
                [a for a, _ in pairs],
                [b for _, b in pairs],
                marker=marker,
                markersize=9 if marker == "*" else 4,
                linestyle=linestyle,
                linewidth=1.4,
                color=colour,
                label=legend,
            )
        if x == "work":
            axes.set_xscale("log")
            axes.set_xlabel(
                "distance computations per query (mean, policy's own work included; log scale)"
            )
            axes.set_ylabel(label)
        else:
            axes.set_yscale("log")
            axes.set_xlabel(label)
            axes.set_ylabel("queries per second (log scale)")
        versus = "distance computations" if x == "work" else "QPS"
        folds = report.get("folds")
        scored = (
            f"cross-fitted over {folds} folds"
            if isinstance(folds, int) and folds > 1
            else "scored on held-out queries"
        )
        axes.set_title(
            wrapped(
                title
                or f"{report.get('dataset') or 'dataset'}: {engine}, adaptive vs "
                f"uniform {param} ({scored})\n{label} vs {versus}"
            ),
            fontsize=10,
        )
        axes.grid(True, which="both", alpha=0.25)
        axes.legend(loc="lower right" if x == "work" else "lower left", fontsize=8)
        figure.tight_layout()
        _save(figure, target, dpi)
    finally:
        plt.close(figure)
    return target
