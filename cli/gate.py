"""Rendering the regression gate's comparison (rich table, markdown, JSON) and its exit,
shared by ``annkit compare`` and ``annkit bench --baseline``."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annkit.bench.compare import (
    BASELINE_FAILED,
    IMPROVED,
    NEW,
    OK,
    WORK_CHECKED,
    Comparison,
    SettingChange,
)
from annkit.cli.console import stdout_console, to_json
from annkit.errors import GateFailure

_STYLES = {OK: "green", IMPROVED: "cyan", NEW: "blue", BASELINE_FAILED: "dim"}


def _recall_cell(old: float | None, new: float | None, change: float | None) -> str:
    """``0.9518`` when unchanged, else ``0.9518 → 0.9385 (-0.0133)``."""
    if old is None and new is None:
        return "-"
    if change is not None and abs(change) < 5e-5:
        return _fmt(new, ".4f")
    text = f"{_fmt(old, '.4f')} → {_fmt(new, '.4f')}"
    return text + (f" ({change:+.4f})" if change is not None else "")


def _qps_cell(row: SettingChange, basis: str) -> str:
    """``1.62x → 1.30x (-20%)`` (raw QPS without flat runs)."""
    old, new = row.baseline_relative_qps, row.current_relative_qps
    if old is None and new is None:
        return "-"

    def shown(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}x" if basis != "raw" else f"{value:,.0f}"

    change = row.qps_change
    return f"{shown(old)} → {shown(new)}" + (f" ({change:+.0%})" if change is not None else "")


def _work_cell(row: SettingChange) -> str:
    """``560 → 1,680 (+200%)``; ``560`` when unchanged; ``work not counted`` and the like
    when a side did not count (never shown as checked)."""
    old, new = row.baseline_work, row.current_work
    if row.work_status is None and old is None and new is None:
        return "-"
    if row.work_status not in (None, WORK_CHECKED):
        shown = new if new is not None else old
        return row.work_status + (f" ({shown:,.0f})" if shown is not None else "")
    change = row.work_change
    if change is not None and change == 0:
        return _fmt(new, ",.0f")
    text = f"{_fmt(old, ',.0f')} → {_fmt(new, ',.0f')}"
    if change is not None:
        text += f" ({change:+.1%})" if abs(change) < 0.1 else f" ({change:+.0%})"
    return text


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict_cell(row: SettingChange) -> str:
    return row.verdict + (": " + "; ".join(row.problems) if row.problems else "")


#: how many of a setting's fallen queries the table output lists (--json has them all)
SHOWN_QUERIES = 10


def skipped_lines(comparison: Comparison) -> list[str]:
    """One line per check that was not made (no tail band, work not counted, QPS off)."""
    return [f"skipped: {line}" for _, line in comparison.skipped]


def per_query_lines(comparison: Comparison) -> list[str]:
    """``faiss efSearch=64: recall fell on 3 queries: #12 1.00→0.80, ...`` per setting whose
    per-query recall was compared (``--per-query``)."""
    lines = []
    for row in comparison.rows:
        if row.queries_fell is None:
            continue
        if not row.queries_fell:
            lines.append(f"{row.setting}: no query's recall fell")
            continue
        shown = ", ".join(
            f"#{query} {old:.2f}→{new:.2f}" for query, old, new in row.queries_fell[:SHOWN_QUERIES]
        )
        more = len(row.queries_fell) - SHOWN_QUERIES
        lines.append(
            f"{row.setting}: recall fell on {len(row.queries_fell)} queries: {shown}"
            + (f" (+{more} more; --json lists all)" if more > 0 else "")
        )
    return lines


def _headers(comparison: Comparison) -> list[str]:
    k = comparison.current.k or comparison.baseline.k
    qps = f"QPS x {comparison.qps_basis}" if comparison.qps_basis != "raw" else "QPS (raw)"
    on = f" on {comparison.slice_name}" if comparison.slice_name else ""
    work = f"dist/query{on}"
    return ["setting", f"recall@{k}{on}", f"tail recall@{k}", qps, work, "verdict"]


def _cells(comparison: Comparison, row: SettingChange) -> list[str]:
    return [
        row.setting,
        _recall_cell(row.baseline_recall, row.current_recall, row.recall_change),
        _recall_cell(row.baseline_tail_recall, row.current_tail_recall, row.tail_recall_change),
        _qps_cell(row, comparison.qps_basis),
        _work_cell(row),
        _verdict_cell(row),
    ]


def render_comparison(console: Console, comparison: Comparison) -> None:
    """The table of settings (baseline → current), the notes and the one-line verdict."""
    facts = comparison.current
    title = (
        f"regression gate: {facts.path or 'current'} against baseline "
        f"{comparison.baseline.path or '?'} ({facts.dataset or comparison.baseline.dataset}, "
        f"{facts.mode or comparison.baseline.mode})"
    )
    table = Table(title=title, title_justify="left")
    for position, header in enumerate(_headers(comparison)):
        table.add_column(header, justify="left" if position in (0, 5) else "right")
    for row in comparison.rows:
        cells = _cells(comparison, row)
        style = "bold red" if row.gate_failed else _STYLES.get(row.verdict, "")
        table.add_row(*cells[:5], Text(cells[5], style=style))
    console.print(table)
    for note in comparison.notes:
        console.print(Text(note, style="dim"))
    for line in skipped_lines(comparison):
        console.print(Text(line, style="yellow"))
    for line in per_query_lines(comparison):
        console.print(Text(line))
    style = "bold green" if comparison.passed else "bold red"
    console.print(Text(comparison.verdict(), style=style))


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def comparison_markdown(comparison: Comparison) -> str:
    """GitHub-flavoured markdown (for a CI job summary): heading, table, notes, verdict."""
    mark = "✅ passed" if comparison.passed else "❌ failed"
    base, now = comparison.baseline, comparison.current
    lines = [
        f"### annkit regression gate: {mark}",
        "",
        f"Baseline `{base.path}`, current `{now.path}`: {now.dataset or base.dataset}, "
        f"recall@{now.k or base.k}, {now.mode or base.mode} mode.",
        "",
        "| " + " | ".join(_headers(comparison)) + " |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in comparison.rows:
        cells = [_markdown_cell(cell) for cell in _cells(comparison, row)]
        if row.gate_failed:
            cells[5] = f"**{cells[5]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"> {_markdown_cell(note)}" for note in comparison.notes]
    lines += [f"> {_markdown_cell(line)}" for line in skipped_lines(comparison)]
    extra = per_query_lines(comparison)
    if extra:
        lines += ["", *(f"- {_markdown_cell(line)}" for line in extra)]
    lines += ["", f"**{comparison.verdict()}**"]
    return "\n".join(lines) + "\n"


def emit_comparison(
    comparison: Comparison, as_json: bool = False, as_markdown: bool = False
) -> None:
    """Print the comparison (table, JSON or markdown), then fail the gate if it failed."""
    if as_json:
        click.echo(to_json(comparison.to_dict()))
    elif as_markdown:
        click.echo(comparison_markdown(comparison), nl=False)
    else:
        render_comparison(stdout_console(), comparison)
    raise_if_failed(comparison)


def raise_if_failed(comparison: Comparison) -> None:
    """GateFailure (exit 1, one line on stderr) when the gate failed."""
    if not comparison.passed:
        raise GateFailure(f"regression gate failed: {comparison.summary()}")
