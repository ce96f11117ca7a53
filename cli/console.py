"""Consoles and progress bars, created per invocation (never at import).

The table rule, one for every table annkit prints on stdout (the consoles made here apply
it in ``print``): a cell is never elided. Columns wrap at spaces (``overflow="fold"``,
``no_wrap=False``), and a table that cannot fit the console's width even with every column
at its longest word (80 columns when stdout is not a terminal: a file, a pipe, a CI log) is
printed stacked instead: one ``header: value; ...`` entry per row, wrapped at spaces.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from annkit.files import json_ready


def _plain(cell: Any) -> str:
    """A table cell or header as plain text (markup removed)."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except Exception:  # noqa: BLE001 - not valid markup: the text itself
            return cell
    return str(cell)


def stacked_lines(table: Table, width: int = 80) -> list[str]:
    """``table`` as lines at most ``width`` wide (a word longer than that stays whole): its
    title, then one ``header: value; header: value`` entry per row (empty cells left out),
    starting with ``- `` when the row's first cell is filled and indented under the previous
    entry when it is empty (a continuation row)."""
    columns = [
        (
            _plain(column.header) if table.show_header else "",
            [_plain(cell) for cell in column.cells],
        )
        for column in table.columns
    ]
    lines = [_plain(table.title)] if table.title is not None else []
    rows = max((len(cells) for _, cells in columns), default=0)
    for row in range(rows):
        values = [(header, cells[row] if row < len(cells) else "") for header, cells in columns]
        parts = [
            f"{header}: {value}" if header else value for header, value in values if value.strip()
        ]
        if not parts:
            continue
        lead = "- " if values[0][1].strip() else "    "
        if not table.show_header and values[0][1].strip() and len(parts) > 1:
            parts = [f"{parts[0]}: {parts[1]}", *parts[2:]]  # a field: value table
        lines += textwrap.wrap(
            "; ".join(parts),
            width=width,
            initial_indent=lead,
            subsequent_indent=" " * (len(lead) + 2),
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


class TableConsole(Console):
    """A rich Console applying the table rule (module doc) to every Table it prints."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if not any(isinstance(item, Table) for item in objects):
            super().print(*objects, **kwargs)
            return
        for item in objects:
            if isinstance(item, Table):
                self.print_table(item)
            else:
                super().print(item, **kwargs)

    def print_table(self, table: Table) -> None:
        """Print ``table`` wrapped at spaces when its columns' longest words fit the width,
        else stacked (never an elided cell)."""
        for column in table.columns:
            column.overflow = "fold"
            column.no_wrap = False
        unbounded = self.options.update_width(1_000_000)  # measure() clamps to the width
        if Measurement.get(self, unbounded, table).minimum <= self.width:
            super().print(table)
            return
        for line in stacked_lines(table, self.width):
            super().print(line, markup=False, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return TableConsole(soft_wrap=True)


def stderr_console() -> Console:
    return TableConsole(stderr=True)


#: on a console that is not a terminal, a step line at most once per this fraction (tenths)
TENTHS = 10


def eta_text(done: int, total: int, elapsed: float) -> str:
    """``3.1s, ~6s left`` (the time left from the mean pace so far; none until a step is
    done, or once all are)."""
    text = f"{elapsed:.1f}s"
    if 0 < done < total:
        text += f", ~{elapsed / done * (total - done):.0f}s left"
    return text


class PlainSteps:
    """A ``progress(done, total)`` callback writing one plain line per step on stderr
    (for a CI log or a pipe, where a bar would only leave a blank line): ``description:
    done/total (pct), elapsed, ~ETA left``, at the first step, at each tenth of the total,
    and at the last."""

    def __init__(self, description: str, console: Console) -> None:
        self.description = description
        self.console = console
        self.started = time.perf_counter()
        self.shown = -1  # the tenth of the total last shown (-1: nothing shown yet)

    def __call__(self, done: int, total: int) -> None:
        tenth = TENTHS if done >= total else done * TENTHS // max(total, 1)
        if tenth <= self.shown:
            return
        self.shown = tenth
        share = done / total if total > 0 else 0.0
        elapsed = time.perf_counter() - self.started
        self.console.print(
            f"{self.description}: {done:,}/{total:,} ({share:.0%}), "
            f"{eta_text(done, total, elapsed)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback on stderr: a rich bar with its ETA on a
    terminal, one plain line per step otherwise (:class:`PlainSteps`), nothing when
    quiet."""
    console = stderr_console()
    if quiet:
        yield lambda done, total: None
        return
    if not console.is_terminal:
        yield PlainSteps(description, console)
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


class Steps:
    """What a command whose library reports named steps and their count (adapt's folds and
    policy kinds) calls: ``say(message)`` and ``advance(done, total)``."""

    def __init__(
        self, say: Callable[[str], None], advance: Callable[[int, int], None] | None = None
    ) -> None:
        self.say = say
        self.advance = advance or (lambda done, total: None)


@contextmanager
def step_messages(quiet: bool = False) -> Iterator[Steps]:
    """Steps for a command whose library reports named, counted steps: on a terminal each
    step's line above a bar with the time spent and an ETA from the pace so far; otherwise
    one plain line per step; nothing when quiet."""
    console = stderr_console()
    if quiet:
        yield Steps(lambda message: None)
        return
    if not console.is_terminal:
        yield Steps(
            lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True)
        )
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("", total=None)

        def say(message: str) -> None:
            progress.console.print(f"[dim]{escape(message)}[/dim]")
            progress.update(task, description=message)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield Steps(say, advance)


def to_json(value: Any) -> str:
    """JSON text with numpy values converted and non-finite floats as null."""
    return json.dumps(json_ready(value), indent=2, allow_nan=False)
