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
@click.option(
    "--slice",
    "slice_name",
    metavar="NAME",
    default=None,
    help="Gate one slice of the queries (its recall and work, from the records' slices), "
    "e.g. hard-lid, tail, sel1-10%.",
)
@click.option(
    "--per-query",
    is_flag=True,
    help="List the queries whose recall fell, per setting (from both sweeps' perquery.h5).",
)
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
    max_qps_drop: float | None,
    max_work_increase: float,
    slice_name: str | None,
    per_query: bool,
    as_json: bool,
    as_markdown: bool,
) -> None:
    """Compare the sweep CURRENT with the sweep BASELINE (each a results folder or its
    runs.jsonl) setting by setting; exit 1 when one regressed.

    A setting (engine, build params, query params) regresses when its recall@k, overall or
    on the tail slice, drops by more than --max-recall-drop; when its (distance
    computations per query, recall) point falls below the baseline's recall-vs-work
    frontier of that index by more than that; or when its work rose by more than
    --max-work-increase and its point is not above that frontier (more work that only
    moves along the same curve, e.g. an effort bug). Engines that cannot count are shown
    as "work not counted".

    QPS is off by default: it is checked only where the sweeps measured their own spread
    (settings timed >= 2 times), and then a drop counts only beyond it (the current best
    run more than 15% below the baseline's slowest run, as speed-up over the flat run of
    the same sweep); not at all when the flat run's own QPS varied by more than that over
    its timed runs (a busy machine). On a shared machine QPS moves by 15-50% with nothing
    changed, so an explicit --max-qps-drop (checked anyway; best against best where there
    is no spread) belongs on a dedicated runner. Checks that were skipped (no tail band,
    work not counted, QPS off) are named in the output.

    A baseline setting missing from CURRENT or failed there fails the gate too. Both
    sweeps must use the same dataset (base vectors and queries), metric, k and mode.
    """
    if as_json and as_markdown:
        raise InputError("choose one of --json and --markdown")
    comparison = compare_results(
        baseline,
        current,
        GateThresholds(max_recall_drop, max_qps_drop, max_work_increase),
        slice_name=slice_name,
        per_query=per_query,
    )
    emit_comparison(comparison, as_json, as_markdown)


COMMANDS = [compare]
