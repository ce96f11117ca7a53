"""``annkit compare``: the regression gate between a baseline sweep and a current one."""

from __future__ import annotations

import click

from annkit.bench.compare import GateThresholds, compare_results
from annkit.cli.gate import emit_comparison
from annkit.cli.options import gate_options, json_option
from annkit.errors import InputError


@click.command()
@click.argument("baseline", type=click.Path())
@click.argument("current", type=click.Path())
@gate_options
@json_option
@click.option(
    "--markdown",
    "as_markdown",
    is_flag=True,
    help="Print a GitHub-flavoured markdown table and verdict (for a CI summary).",
)
def compare(
    baseline: str,
    current: str,
    max_recall_drop: float,
    max_qps_drop: float,
    max_work_increase: float,
    as_json: bool,
    as_markdown: bool,
) -> None:
    """Compare the sweep CURRENT with the sweep BASELINE (each a results folder or its
    runs.jsonl) setting by setting; exit 1 when one regressed.

    A setting (engine, build params, query params) regresses when its recall@k, overall or
    on the tail slice, drops by more than --max-recall-drop, or its QPS drops by more than
    --max-qps-drop, or its mean distance computations per query rise by more than
    --max-work-increase at the same or lower recall (engines that count them; the others
    are shown as "work not counted"). QPS is compared as the speed-up over the flat run of
    the same sweep, so a faster or slower machine cancels out (raw QPS when a sweep has no
    flat run). A baseline setting missing from CURRENT or failed there fails the gate too.
    Both sweeps must use the same dataset, metric, k and mode.
    """
    if as_json and as_markdown:
        raise InputError("choose one of --json and --markdown")
    comparison = compare_results(
        baseline, current, GateThresholds(max_recall_drop, max_qps_drop, max_work_increase)
    )
    emit_comparison(comparison, as_json, as_markdown)


COMMANDS = [compare]
