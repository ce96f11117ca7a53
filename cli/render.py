"""Rich tables built from annkit's dataclasses and dicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from annkit.memory import format_size
from annkit.types import Evaluation, RunRecord, SliceRecall, WorkSummary, work_marker


def format_params(params: dict) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items()) or "-"


def format_bytes(count: int | float | None) -> str:
    """A byte count for a table (``15.8 MiB``); ``-`` when unknown."""
    return "-" if count is None else format_size(count)


def format_count(value: float | None) -> str:
    """A count such as distance computations per query (``1,234``); ``-`` when unknown."""
    return "-" if value is None else f"{value:,.0f}"


def format_work_count(value: float | None, unit: str | None) -> str:
    """A work count with its unit's marker when it is not plain distance computations:
    ``29,102 (codes)``; ``-`` when unknown."""
    marker = work_marker(unit)
    return format_count(value) + (f" ({marker})" if marker and value is not None else "")


def format_load(cpu_per_wall: float | None, load: float | None) -> str:
    """``CPU 0.98 / wall, load 3.37`` (the timed passes' CPU over wall time, the 1-minute
    load average when they began); ``-`` when not measured."""
    parts = []
    if cpu_per_wall is not None:
        parts.append(f"CPU {cpu_per_wall:.2f} / wall")
    if load is not None:
        parts.append(f"load {load:.2f}")
    return ", ".join(parts) or "-"


def format_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_fraction(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``; ``-`` when unknown."""
    return "-" if value is None else format(value, spec)


def format_qps(qps: float | None, low: float | None = None, high: float | None = None) -> str:
    """QPS with its spread over the timed runs: ``4,554 (3,245-4,610)`` (min-max), just
    ``4,554`` when there is no spread to show; ``-`` when unknown."""
    if qps is None:
        return "-"
    if low is None or high is None or low == high:
        return f"{qps:,.0f}"
    return f"{qps:,.0f} ({low:,.0f}-{high:,.0f})"


def qps_bounds(
    measured: Evaluation | RunRecord, low: float | None = None, high: float | None = None
) -> tuple[float | None, float | None]:
    """What a QPS cell shows beside the QPS: the 95% confidence interval of a sampled
    single-query pass when ``measured`` has one, else ``low`` / ``high`` (the min-max over
    the timed runs)."""
    if measured.qps_low is not None and measured.qps_high is not None:
        return measured.qps_low, measured.qps_high
    return low, high


def new_table(title: str, *, show_header: bool = True) -> Table:
    """A left-titled table; consoles from annkit.cli.console print it without eliding."""
    return Table(title=title, show_header=show_header, title_justify="left")


def key_value_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = new_table(title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def evaluation_table(evaluation: Evaluation) -> Table:
    latency = evaluation.latency_ms
    rows = [
        ("engine", evaluation.engine),
        ("build params", format_params(evaluation.build_params)),
        ("query params", format_params(evaluation.query_params)),
        ("dataset", f"{evaluation.dataset} ({evaluation.metric})"),
        ("queries", evaluation.queries),
        (
            f"recall@{evaluation.k}" + (" (strict)" if evaluation.recall_rule == "strict" else ""),
            f"{evaluation.recall:.4f}",
        ),
        (
            "QPS (95% interval)" if evaluation.qps_low is not None else "QPS (min-max)",
            qps_summary(evaluation),
        ),
        (
            "concurrency",
            f"{evaluation.clients} clients, one query per call"
            if evaluation.clients is not None
            else f"{evaluation.search_threads} search thread(s)",
        ),
        (
            "latency ms p50/p95/p99",
            " / ".join(format_ms(latency.get(p)) for p in ("p50", "p95", "p99"))
            if latency.get("p50") is not None
            else "- (use --mode single)",
        ),
        ("timing", format_load(evaluation.cpu_per_wall, evaluation.load_average)),
        (
            "dist/query",
            format_work_count(evaluation.distance_computations, evaluation.work_unit)
            + (
                f" (p50/p95/p99 {format_work(evaluation.tail.work)})"
                if evaluation.tail is not None and evaluation.tail.work is not None
                else ""
            ),
        ),
        ("build seconds", f"{evaluation.build_seconds:.2f}"),
        ("index size", format_bytes(evaluation.index_bytes)),
    ]
    depths = [
        (f"recall {depth}", f"{value:.4f}") for depth, value in (evaluation.recall_at or {}).items()
    ]
    flag = [("timing flag", f"{evaluation.starved}: QPS may be low")] if evaluation.starved else []
    # recall at other depths after recall@k, the timing flag after the timing row
    rows = rows[:6] + depths + rows[6:10] + flag + rows[10:]
    if evaluation.relative_distance_error is not None:
        rows.append(("relative distance error", f"{evaluation.relative_distance_error:.4f}"))
    tail = evaluation.tail
    if tail is not None:
        percentiles = " / ".join(
            format_fraction(value, ".2f") for value in (tail.p1, tail.p5, tail.p10)
        )
        rows.append(("recall p1/p5/p10", percentiles))
        rows.append(
            (
                "queries < 0.5 / = 0",
                f"{format_fraction(tail.share_below_0_5, '.1%')} / "
                f"{format_fraction(tail.share_zero, '.1%')}",
            )
        )
    if evaluation.weighted_recall is not None:
        rows.append(("traffic-weighted recall", f"{evaluation.weighted_recall:.4f}"))
    if evaluation.duplicate_ids:
        rows.append(("duplicate ids", f"{evaluation.duplicate_ids} (engine error; counted once)"))
    return key_value_table("evaluation", rows)


def qps_summary(evaluation: Evaluation) -> str:
    """``4,554 (3,245-4,610) (batch, fastest of 3 runs)``, or for a sampled single-query
    pass ``4,554 (4,401-4,718) (single, 95% interval, 400 of 5,000 queries timed)``."""
    runs = evaluation.runs
    how = [evaluation.mode, f"fastest of {runs} run{'s' if runs != 1 else ''}"]
    if evaluation.qps_low is not None:
        how[1] = "95% interval"
    elif evaluation.max_runs is not None and evaluation.max_runs > runs:
        how.append(f"stable within {evaluation.qps_tolerance:.0%}")
    timed = evaluation.timed_queries
    if timed is not None and timed < evaluation.queries:
        how.append(f"{timed:,} of {evaluation.queries:,} queries timed")
    low, high = qps_bounds(evaluation, evaluation.qps_min, evaluation.qps_max)
    return f"{format_qps(evaluation.qps, low, high)} ({', '.join(how)})"


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` by the table rule of annkit.cli.console (never elided)."""
    console.print(table)


def format_work(work: WorkSummary | None) -> str:
    """The cost tail ``557 / 690 / 754`` (p50 / p95 / p99 distance computations per query);
    ``-`` when not counted."""
    if work is None:
        return "-"
    return " / ".join(format_count(value) for value in (work.p50, work.p95, work.p99))


def slice_table(slices: dict[str, SliceRecall], k: int, full: bool = False) -> Table:
    """Recall per slice: frequency bands and the hardest 10% per hardness measure
    (all quartiles too when ``full``), with each slice's cost tail (distance computations per
    query, p50 / p95 / p99) when the engine counts them."""
    table = new_table(f"recall@{k} by slice")
    counted = any(entry.work is not None for entry in slices.values())
    columns = ["slice", "queries", f"recall@{k}", "p5 recall"]
    if counted:
        columns.append("dist/query p50/p95/p99")
    for column in columns:
        table.add_column(column, justify="left" if column == "slice" else "right")
    for name, entry in slices.items():
        if not full and "-q" in name:
            continue
        cells = [
            name,
            format_count(entry.queries),
            format_fraction(entry.recall, ".4f"),
            format_fraction(entry.p5_recall, ".2f"),
        ]
        if counted:
            cells.append(format_work(entry.work))
        table.add_row(*cells)
    return table
