"""Rendering for ``annkit bench``, ``annkit report`` and ``annkit plot``: the sweep's progress
on stderr, and the typed report (:class:`annkit.bench.report_types.SweepReport`) as tables."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from annkit.bench.report import p5_recall, setting_labels, tail_band_recall
from annkit.bench.report_types import ConcurrencyRow, FailedRun, RunBrief, RunSummary, SweepReport
from annkit.bench.runner import SweepEvent
from annkit.cli.console import stderr_console
from annkit.cli.render import (
    format_bytes,
    format_params,
    format_qps,
    format_work_count,
    qps_bounds,
)
from annkit.engines.base import reference_engine
from annkit.types import RunRecord, work_marker


class _StepProgress(Progress):
    """A progress bar with one more line below it: the current build or query step."""

    step = ""

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        if self.step:
            yield Text(self.step, style="dim", overflow="ellipsis", no_wrap=True)


class SweepProgress:
    """Renders :class:`annkit.bench.runner.SweepEvent` s on stderr (nothing when quiet): a
    live bar on a terminal, else (a CI log, a file) one plain line per finished setting."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: _StepProgress | None = None
        self.task: Any = None
        self.plain = False

    def __enter__(self) -> SweepProgress:
        console = stderr_console()
        # not on a terminal (a CI log, a pipe) a transient bar only leaves a blank line
        if not self.quiet and console.is_terminal:
            self.progress = _StepProgress(
                TextColumn("[bold]sweep[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("sweep", total=None)
        self.plain = not self.quiet and self.progress is None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, event: SweepEvent) -> None:
        if event.kind == "notice" and not self.quiet:
            if self.progress is not None:
                self.progress.console.print(event.message, highlight=False, markup=False)
            else:
                click.echo(event.message, err=True)
            return
        if self.plain and event.kind == "record" and event.record is not None:
            click.echo(plain_progress_line(event), err=True)
        progress = self.progress
        if progress is None:
            return
        progress.update(self.task, completed=event.done, total=event.total)
        if event.kind == "groundtruth":
            progress.step = f"ground truth: {event.message}"
        elif event.kind == "start":
            progress.step = event.message
        elif event.kind in ("build", "query"):
            progress.step = event.message if event.kind == "build" else f"measuring {event.message}"
        elif event.kind == "record" and event.record and event.record.status != "ok":
            progress.console.print(
                f"[red]{event.record.status}[/red] {event.message}: {event.record.error}"
            )
        elif event.kind == "finish":
            progress.step = ""
        progress.refresh()


def plain_progress_line(event: SweepEvent) -> str:
    """``[3/14] hnsw M=16 | ef=40: recall@10 0.9512, 8,123 QPS`` (or the failure)."""
    record = event.record
    head = f"[{event.done}/{event.total}] {event.message}"
    if record is None or record.status != "ok":
        status, error = (None, None) if record is None else (record.status, record.error)
        return f"{head}: {status}: {error}"
    recall = record.recall or 0.0
    flag = f" ({record.starved})" if record.starved else ""
    return (
        f"{head}: recall@{record.k} {recall:.4f}, {record.qps:,.0f} QPS{flag}"
        if record.qps
        else f"{head}: recall@{record.k} {recall:.4f}{flag}"
    )


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _speedup(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2g}x" if value < 1 else f"{value:.1f}x"


def _setting(run: RunSummary | RunBrief | ConcurrencyRow | FailedRun) -> str:
    """A report run's setting name (annkit.bench.report.setting_labels); ``(defaults)``."""
    return run.setting or "(defaults)"


def _short_count(value: float | None) -> str:
    """``754``, ``7674``, ``12.3k``, ``1.25M``: a count in at most 5 characters."""
    if value is None:
        return "-"
    if value >= 999_500:
        return f"{value / 1e6:.3g}M"
    return f"{value / 1e3:.3g}k" if value >= 9_999.5 else f"{value:.0f}"


def _work(run: RunSummary) -> str:
    """``557/690/754``: p50 / p95 / p99 distance computations per query; ``-``."""
    work = run.work
    if work is None:
        return "-"
    return "/".join(_short_count(value) for value in (work.p50, work.p95, work.p99))


def slice_label(slice_name: str | None, queries: int | None) -> str:
    """`` on slice 'tail' (400 queries)`` for a slice report, empty for all queries."""
    if not slice_name or slice_name == "all":
        return ""
    count = "" if queries is None else f" ({queries:,} queries)"
    return f" on slice '{slice_name}'{count}"


def slice_queries(records: list[RunRecord]) -> int | None:
    """How many queries the slice holds (from the first ok record seen on it, see
    ``on_slice``), None when no record says."""
    for record in records:
        if record.status == "ok" and record.tail is not None and record.tail.queries:
            return record.tail.queries
    return None


def _measures(run: RunBrief) -> str:
    """``0.9512 / 0.70 / 0.9401``: recall@k, p5 per-query recall, tail-band recall."""
    p5 = "-" if run.p5_recall is None else f"{run.p5_recall:.2f}"
    tail = "-" if run.tail_recall is None else f"{run.tail_recall:.4f}"
    return f"{run.recall or 0.0:.4f} / {p5} / {tail}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def policy_table(report: SweepReport) -> Table:
    """Each policy run beside the cheapest uniform setting of its index reaching its recall
    (see annkit.bench.report.policy_rows)."""
    k = report.k
    where = slice_label(report.slice, report.slice_queries)
    table = Table(
        title=f"per-query effort policies{where} beside the cheapest uniform "
        "setting of their index reaching their recall",
        title_justify="left",
    )
    for column, justify in (
        ("series", "left"),
        ("policy", "left"),
        (f"recall@{k} / p5 / tail", "right"),
        ("dist/query", "right"),
        ("QPS", "right"),
        ("uniform", "left"),
        ("its recall / p5 / tail", "right"),
        ("its dist/query", "right"),
        ("its QPS", "right"),
        ("x work", "right"),
        ("x QPS", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in report.policies:
        uniform, run = row.uniform, row.run
        policy = run.setting.rpartition(" | ")[2] or _setting(run)
        cells: list[str | Text] = [
            row.series,
            policy,
            _measures(run),
            _number(run.distance_computations),
            _number(run.qps),
        ]
        if uniform is None:
            cells += [Text("none reaches its recall", style="dim"), "-", "-", "-", "-", "-"]
        else:
            cells += [
                _setting(uniform).rpartition(" | ")[2],
                _measures(uniform),
                _number(uniform.distance_computations),
                _number(uniform.qps),
                _ratio(row.work_ratio),
                _ratio(row.qps_ratio),
            ]
        table.add_row(*cells)
    return table


def _work_cell(run: RunSummary | RunBrief, by_id: Mapping[str, RunRecord]) -> str:
    """A run's distance computations per query, marked with its unit when that is not
    plain distance computations (``29,102 (codes)``)."""
    record = by_id.get(run.run_id)
    return format_work_count(run.distance_computations, record.work_unit if record else None)


def _qps_cell(text: str, run: RunSummary, by_id: Mapping[str, RunRecord]) -> str:
    """A QPS cell, with ``(!)`` when the run's timing was flagged (see timing_notes)."""
    record = by_id.get(run.run_id)
    return text + (" (!)" if record is not None and record.starved else "")


def _run_qps(run: RunSummary, by_id: Mapping[str, RunRecord]) -> str:
    """A run's QPS with its 95% interval (sampled single-query pass) or min-max spread."""
    record = by_id.get(run.run_id)
    if record is None:
        return format_qps(run.qps, run.qps_min, run.qps_max)
    return format_qps(run.qps, *qps_bounds(record, run.qps_min, run.qps_max))


def render_report(console: Console, report: SweepReport, records: Sequence[RunRecord] = ()) -> None:
    """Pareto table, headline table and failures of a report (see build_report). On a
    slice (``report.slice``), recall, dist/query and its p50/p95/p99 are the slice's.
    ``records`` (the report's runs) add what the report does not hold: each count's unit
    (``(codes)``) and the runs whose timing was flagged (``(!)``, listed below)."""
    by_id = {record.run_id: record for record in records}
    k = report.k
    where = slice_label(report.slice, report.slice_queries)
    pareto = Table(
        title=f"Pareto-optimal runs{where}: recall@{k} vs QPS ({report.dataset}, {report.mode})",
        title_justify="left",
    )
    counted = any(run.work is not None for entry in report.engines.values() for run in entry.pareto)
    columns = [
        ("engine", "left"),
        ("setting (build | query)", "left"),
        (f"recall@{k}", "right"),
        (
            "QPS (95% interval)"
            if any(record.qps_low is not None for record in records)
            else "QPS (min-max)",
            "right",
        ),
        (f"x {reference_engine()}", "right"),
        ("dist/query", "right"),
    ]
    if counted:
        columns.append(("dist p50/p95/p99", "right"))
    columns += [("build s", "right"), ("index", "right")]
    for column, justify in columns:
        pareto.add_column(column, justify=justify)  # type: ignore[arg-type]
    for engine, entry in report.engines.items():
        for position, run in enumerate(entry.pareto):
            cells = [
                engine if position == 0 else "",
                _setting(run),
                f"{run.recall or 0.0:.4f}",
                _qps_cell(_run_qps(run, by_id), run, by_id),
                _speedup(run.speedup_vs_flat),
                _work_cell(run, by_id),
            ]
            if counted:
                cells.append(_work(run))
            cells += [_number(run.build_seconds, 2), format_bytes(run.index_bytes)]
            pareto.add_row(*cells)
        if entry.pareto:
            pareto.add_section()
    console.print(pareto)
    units = {work_marker(record.work_unit) for record in records if record.usable}
    if len(units) > 1 or units - {""}:
        console.print(
            "dist/query (codes): compressed-code comparisons (e.g. PQ fast-scan), far "
            "cheaper each than full distance computations",
            highlight=False,
        )
    for note in timing_notes(records):
        console.print(f"(!) timing flagged: {note}", highlight=False, markup=False)
    headline = Table(title=f"best QPS at recall@{k} >= threshold{where}", title_justify="left")
    for column, justify in (
        ("recall@k >=", "right"),
        ("engine", "left"),
        ("setting", "left"),
        (f"recall@{k}", "right"),
        ("QPS", "right"),
        (f"x {reference_engine()}", "right"),
        ("dist/query", "right"),
    ):
        headline.add_column(column, justify=justify)  # type: ignore[arg-type]
    for line in report.headlines:
        threshold = f"{line.threshold:.2f}"
        for position, (engine, best_run) in enumerate(line.engines.items()):
            label = threshold if position == 0 else ""
            if best_run is None:
                why = "not reached" if report.engines[engine].ok else "no successful run"
                headline.add_row(label, engine, Text(why, style="dim"), "-", "-", "-", "-")
            else:
                headline.add_row(
                    label,
                    engine,
                    _setting(best_run),
                    f"{best_run.recall or 0.0:.4f}",
                    _number(best_run.qps),
                    _speedup(best_run.speedup_vs_flat),
                    _work_cell(best_run, by_id),
                )
        headline.add_section()
    console.print(headline)
    for line in report.headlines:
        best = line.best
        lead = f"best QPS at recall@{k} >= {line.threshold:.2f}: "
        if best is None:
            console.print(lead + "not reached by any run")
        else:
            speed = (
                f" ({_speedup(best.speedup_vs_flat)} {reference_engine()})"
                if best.speedup_vs_flat is not None
                else ""
            )
            console.print(
                f"{lead}[bold]{best.engine}[/bold] {_setting(best)}: "
                f"{best.qps or 0.0:,.0f} QPS{speed}, recall {best.recall or 0.0:.4f}"
            )
    if report.policies:
        console.print(policy_table(report))
    if report.concurrency:
        scaling = Table(
            title="QPS under concurrency (each setting at each level)", title_justify="left"
        )
        for column, justify in (
            ("engine", "left"),
            ("setting", "left"),
            ("by", "left"),
            ("level: QPS (p99 ms)", "left"),
            ("scaling", "right"),
        ):
            scaling.add_column(column, justify=justify)  # type: ignore[arg-type]
        for row in report.concurrency:
            levels = ", ".join(
                f"{level.level}: {level.qps or 0.0:,.0f}"
                + (" (!)" if (flagged := by_id.get(level.run_id)) and flagged.starved else "")
                + (f" ({p99:.2f})" if (p99 := level.latency_ms.get("p99")) is not None else "")
                for level in row.levels
            )
            scaling.add_row(row.engine, _setting(row), row.by, levels, f"{row.scaling:.2f}x")
        console.print(scaling)
    if report.flat_qps is None:
        console.print(
            Text(
                f"no {reference_engine()} run in this sweep: no speed-ups "
                f'(add [[engine]] name = "{reference_engine()}")'
            )
        )
    if report.filter_choices:
        choices = Table(
            title="fastest filter strategy per selectivity band (share passing), at "
            "band recall >= 0.95",
            title_justify="left",
        )
        for column in ("band", "index", "strategy", "setting", "band recall", "work/query"):
            choices.add_column(column)
        for choice in report.filter_choices:
            choices.add_row(
                choice.band,
                choice.series,
                choice.strategy or "none reaches 0.95",
                choice.setting or "-",
                "-" if choice.recall is None else f"{choice.recall:.4f}",
                "-" if choice.work is None else f"{choice.work:,.0f}",
            )
        console.print(choices)
    if report.failed:
        failed = Table(title="failed runs", title_justify="left")
        for column in ("engine", "setting", "status", "error"):
            failed.add_column(column)
        for failure in report.failed:
            failed.add_row(failure.engine, _setting(failure), failure.status, failure.error or "-")
        console.print(failed)


# ---------------------------------------------------------------- files and CI logs

#: the columns of ``annkit report --csv`` / ``--markdown`` always present, in order (then
#: ``recall_<A@B>`` per recall depth, and the filter fields when a record has a filter)
SETTING_COLUMNS = (
    "engine",
    "setting",
    "build_params",
    "query_params",
    "status",
    "recall",
    "p5_recall",
    "tail_recall",
    "qps",
    "qps_min",
    "qps_max",
    "qps_low",
    "qps_high",
    "distance_computations",
    "work_unit",
    "relative_distance_error",
    "cpu_per_wall",
    "load_average",
    "starved",
)
FILTER_COLUMNS = ("filter_strategy", "short_results", "filter_plan")


def setting_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per record (every setting, failed ones too, in file order) for a file or a CI
    log: its engine, label (a record's ``label`` when it has one) or setting text, build
    and query params, recall (mean, p5 per query, tail band), QPS and its min / max over the
    timed runs, distance computations and their unit, relative distance error, the timing's
    load fields, recall at other depths and, when any record is filtered, the filter
    fields. Values as recorded (None = not measured)."""
    labels = setting_labels(list(records))
    depths = sorted({depth for record in records for depth in (record.recall_at or {})})
    filtered = any(record.filter_strategy is not None for record in records)
    rows = []
    for record in records:
        label = getattr(record, "label", None)  # a sweep entry's own name, where it has one
        row: dict[str, Any] = {
            "engine": record.engine,
            "setting": label or labels.get(record.run_id) or "(defaults)",
            "build_params": format_params(record.build_params),
            "query_params": format_params(record.query_params),
            "status": record.status,
            "recall": record.recall,
            "p5_recall": p5_recall(record),
            "tail_recall": tail_band_recall(record),
            "qps": record.qps,
            "qps_min": record.qps_min,
            "qps_max": record.qps_max,
            "qps_low": record.qps_low,
            "qps_high": record.qps_high,
            "distance_computations": record.distance_computations,
            "work_unit": record.work_unit,
            "relative_distance_error": record.relative_distance_error,
            "cpu_per_wall": record.cpu_per_wall,
            "load_average": record.load_average,
            "starved": record.starved,
        }
        for depth in depths:
            row[f"recall_{depth}"] = (record.recall_at or {}).get(depth)
        if filtered:
            row["filter_strategy"] = record.filter_strategy
            row["short_results"] = record.short_results
            row["filter_plan"] = (
                None if record.filter_plan is None else json.dumps(record.filter_plan)
            )
        rows.append(row)
    return rows


def settings_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` (see :func:`setting_rows`) as CSV with a header line; numbers as recorded
    (full precision), empty cells for None."""
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else list(SETTING_COLUMNS)
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if value is None else value for name, value in row.items()})
    return buffer.getvalue()


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped (settings read ``M=8 | ef=40``), one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def _optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def settings_markdown(rows: Sequence[Mapping[str, Any]], k: int | None) -> str:
    """``rows`` (see :func:`setting_rows`) as a GitHub Markdown table: recall@k, p5 and
    tail-band recall, QPS with its spread, distance computations marked with their unit
    (``29,102 (codes)``), relative distance error, recall at other depths, the filter
    fields when present, and the timing flag of a run that did not get its cores."""
    depth_columns = [name for name in (rows[0] if rows else {}) if name.startswith("recall_")]
    filtered = bool(rows) and "filter_strategy" in rows[0]
    header = ["engine", "setting", "build params", "query params", f"recall@{k or 'k'}"]
    header += [name.replace("recall_", "recall ") for name in depth_columns]
    header += ["p5", "tail", "QPS (min-max)", "dist/query", "rel. dist. error"]
    if filtered:
        header += ["filter", "short results"]
    header += ["status / timing"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 4 else "---:" for i in range(len(header) - 1)) + "|---|",
    ]
    for row in rows:
        cells = [
            str(row["engine"]),
            str(row["setting"]),
            str(row["build_params"]),
            str(row["query_params"]),
            _optional(row["recall"], ".4f"),
        ]
        cells += [_optional(row[name], ".4f") for name in depth_columns]
        cells += [
            _optional(row["p5_recall"], ".2f"),
            _optional(row["tail_recall"], ".4f"),
            format_qps(
                row["qps"],
                *(
                    (row["qps_low"], row["qps_high"])
                    if row["qps_low"] is not None
                    else (row["qps_min"], row["qps_max"])
                ),
            ),
            format_work_count(row["distance_computations"], row["work_unit"]),
            _optional(row["relative_distance_error"], ".4f"),
        ]
        if filtered:
            cells += [str(row["filter_strategy"] or "-"), _optional(row["short_results"], "d")]
        status = row["status"] if row["status"] != "ok" else ""
        cells.append("; ".join(part for part in (status, row["starved"] or "") if part) or "ok")
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def timing_notes(records: Sequence[RunRecord]) -> list[str]:
    """One line per record whose timing was flagged (starved, busy machine), naming its
    setting: shown under the report's tables."""
    labels = setting_labels(list(records))
    return [
        f"{record.engine} {labels.get(record.run_id) or '(defaults)'}: {record.starved}"
        for record in records
        if record.status == "ok" and record.starved
    ]
