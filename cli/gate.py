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


def _headers(comparison: Comparison) -> list[str]:
    k = comparison.current.k or comparison.baseline.k
    qps = f"QPS x {comparison.qps_basis}" if comparison.qps_basis != "raw" else "QPS (raw)"
    return ["setting", f"recall@{k}", f"tail recall@{k}", qps, "dist/query", "verdict"]


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
