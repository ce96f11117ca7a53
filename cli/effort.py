"""``annkit effort``: per query, the smallest effort (ef, search_k, nprobe) reaching a target
recall, and how that effort is distributed over frequency and hardness slices."""

from __future__ import annotations

import math

import click
import numpy as np
from rich.table import Table

from annkit.cli.console import progress_bar, stdout_console, to_json
from annkit.cli.options import (
    dataset_options,
    echo_notices,
    filter_strategy_option,
    json_option,
    param_option,
    parse_cuts,
    parse_grid,
    parse_params,
    quiet_option,
    recall_option,
)
from annkit.cli.render import format_params, key_value_table
from annkit.effort_study import study_effort
from annkit.types import QueryProfile

HEAVIEST_SHOWN = 10


def format_effort(value: float | None, grid: list[int]) -> str:
    """A grid value, or ``>MAX`` when the target was not reached within the grid."""
    if value is None or not math.isfinite(value):
        return f">{grid[-1]}"
    return f"{value:,.0f}"


@click.command()
@click.argument("index", type=click.Path())
@dataset_options
@filter_strategy_option
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Recall depth.")
@click.option(
    "--target",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Recall@k each query must reach.",
)
@click.option(
    "--grid",
    "grid_text",
    default=None,
    metavar="V1,V2,...",
    help="Effort values to search over (default: a doubling grid for the engine, "
    "e.g. ef 10..2560).",
)
@param_option("Other query parameter, held fixed, e.g. -p rerank=10 (repeatable).")
@click.option(
    "--bands",
    default="0.2,0.6",
    show_default=True,
    help="Frequency band cut points (shares of queries, most frequent first).",
)
@click.option(
    "--all-slices",
    is_flag=True,
    help="Show every slice (all hardness quartiles too), not just bands and hard-*.",
)
@click.option(
    "--slice-report",
    is_flag=True,
    hidden=True,
    help="Old name of --all-slices (kept so existing scripts run).",
)
@recall_option()
@click.option(
    "-o",
    "--output",
    "per_query_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write per-query minimum effort, weight, band and hardness to this .csv.",
)
@json_option
@quiet_option
def effort(
    index: str,
    data: str | None,
    queries_file: str | None,
    groundtruth_file: str | None,
    weights_file: str | None,
    metric: str | None,
    max_queries: int | None,
    dataset_name: str | None,
    k: int,
    target: float,
    grid_text: str | None,
    params: tuple[str, ...],
    bands: str,
    all_slices: bool,
    slice_report: bool,
    recall_rule: str,
    filter_strategy: str,
    base_labels_file: str | None,
    query_labels_file: str | None,
    per_query_file: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """For each query of DATA (default words-10k), the smallest effort of INDEX (its
    engine's effort parameter: see `annkit engines`) at which its recall@k reaches
    --target, found by per-query bisection over the effort grid; reported per frequency
    band and hardness slice."""
    with progress_bar("bisecting effort", quiet or as_json) as progress:
        study = study_effort(
            index,
            data,
            queries=queries_file,
            groundtruth=groundtruth_file,
            weights=weights_file,
            metric=metric,
            max_queries=max_queries,
            name=dataset_name,
            k=k,
            target=target,
            grid=parse_grid(grid_text, "--grid"),
            query_params=parse_params(params),
            cuts=parse_cuts(bands),
            per_query_file=per_query_file,
            progress=progress,
            recall_rule=recall_rule,
            filter_strategy=filter_strategy,
            base_labels=base_labels_file,
            query_labels=query_labels_file,
        )
    echo_notices(*study.notices)
    report = study.report
    if as_json:
        click.echo(to_json(report))
        return
    console = stdout_console()
    console.print(summary_table(report))
    console.print(distribution_table(report, full=all_slices or slice_report))
    if report["spearman"]:
        console.print(correlation_table(report))
    if report["heavy"]["count"]:
        console.print(
            heaviest_table(report, study.result.min_effort, study.profile, study.query_text)
        )
        shown = min(report["heavy"]["count"], HEAVIEST_SHOWN)
        if shown < report["heavy"]["count"]:
            console.print(
                f"showing {shown} of {report['heavy']['count']:,} heavy queries "
                "(--json or --per-query FILE.csv lists them all)",
                highlight=False,
            )
    unreached = int(np.count_nonzero(~np.isfinite(study.result.min_effort)))
    if unreached:
        console.print(
            f"{unreached:,} queries do not reach the target within {report['param']} <= "
            f"{report['grid'][-1]}: try a wider grid, e.g. --grid "
            f"{','.join(str(v) for v in wider_grid(report['grid']))}",
            highlight=False,
            markup=False,
        )


def wider_grid(grid: list[int]) -> list[int]:
    """The grid continued by doubling its last value three times (a suggestion to try)."""
    last = grid[-1]
    return [*grid, last * 2, last * 4, last * 8]


def summary_table(report: dict) -> Table:
    overall = report["distribution"]["all"]
    heavy = report["heavy"]
    return key_value_table(
        "minimum effort per query",
        [
            (
                "index",
                f"{report['index']} ({report['engine']} {format_params(report['build_params'])})",
            ),
            ("dataset", f"{report['dataset']} ({report['queries']:,} queries)"),
            ("target", f"recall@{report['k']} >= {report['target']:g} per query"),
            (f"{report['param']} grid", ", ".join(str(value) for value in report["grid"])),
            ("other query params", format_params(report["query_params"])),
            (
                "searches",
                f"{report['searches']:,} query-settings of {report['full_scan']:,} "
                f"for a full scan ({report['saved_share']:.0%} saved, "
                f"{report['search_calls']} batched calls)",
            ),
            ("not reached", f"{overall['not_reached']:,} ({overall['share_not_reached']:.1%})"),
            (
                f">= {heavy['factor']:g}x median",
                f"{heavy['count']:,} ({heavy['share']:.1%}, "
                f"{report['param']} >= {format_effort(heavy['threshold'], report['grid'])})",
            ),
        ],
    )


def distribution_table(report: dict, full: bool = False) -> Table:
    """Median / p90 / p99 effort per slice (bands and hard-*; every quartile when full)."""
    grid = report["grid"]
    table = Table(title=f"minimum {report['param']} by slice", title_justify="left")
    for column in (
        "slice",
        "queries",
        "median",
        "p90",
        "p99",
        "not reached",
        f">= {report['heavy']['factor']:g}x median",
    ):
        table.add_column(column, justify="left" if column == "slice" else "right")
    for name, entry in report["distribution"].items():
        if not full and "-q" in name:
            continue
        table.add_row(
            name,
            f"{entry['queries']:,}",
            format_effort(entry["median"], grid),
            format_effort(entry["p90"], grid),
            format_effort(entry["p99"], grid),
            f"{entry['share_not_reached']:.1%}",
            f"{entry['share_heavy']:.1%}",
        )
    return table


def correlation_table(report: dict) -> Table:
    table = Table(
        title=f"Spearman correlation of minimum {report['param']} with", title_justify="left"
    )
    for column in ("measure", "spearman", "harder when"):
        table.add_column(column, justify="right" if column == "spearman" else "left")
    for name, entry in report["spearman"].items():
        direction = entry["harder_is_higher"]
        reading = "-" if direction is None else "higher" if direction else "lower"
        value = entry["spearman"]
        table.add_row(
            "weight (frequency)" if name == "weight" else name,
            "-" if value is None or math.isnan(value) else f"{value:+.3f}",
            reading,
        )
    return table


def heaviest_table(
    report: dict, min_effort: np.ndarray, profile: QueryProfile, text: list[str] | None
) -> Table:
    """The queries needing the most effort (not reached first), at most HEAVIEST_SHOWN."""
    indices = sorted(report["heavy"]["indices"], key=lambda row: (-min_effort[row], row))
    table = Table(
        title=f"heaviest queries ({len(indices):,} need >= "
        f"{report['heavy']['factor']:g}x the median {report['param']})",
        title_justify="left",
    )
    columns = ["query"] + (["text"] if text else []) + [report["param"], "band", "weight"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("text", "band") else "right")
    for row in indices[:HEAVIEST_SHOWN]:
        cells = [str(row)] + ([text[row]] if text else [])
        cells.append(format_effort(float(min_effort[row]), report["grid"]))
        cells.append(str(profile.bands[row]) if profile.bands is not None else "-")
        cells.append(f"{profile.weights[row]:.3g}" if profile.weights is not None else "-")
        table.add_row(*cells)
    return table


COMMANDS = [effort]
