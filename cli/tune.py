"""``annkit tune``: per build setting, the smallest query effort meeting a recall target on a
slice (bisection over the effort grid), and the fastest setting overall."""

from __future__ import annotations

import os

import click
from rich.markup import escape
from rich.table import Table

from annkit.cli.console import stderr_console, stdout_console, to_json
from annkit.cli.options import (
    dataset_options,
    echo_notices,
    json_option,
    memory_check_option,
    param_option,
    parse_build_grid,
    parse_cuts,
    parse_grid,
    parse_params,
    quiet_option,
    recall_option,
    threads_option,
    timing_options,
)
from annkit.cli.render import (
    format_bytes,
    format_params,
    format_qps,
    key_value_table,
    new_table,
    print_table,
    qps_summary,
)
from annkit.errors import TargetNotMet
from annkit.evaluate import ground_truth_notice
from annkit.sources import open_dataset
from annkit.tune import ALL, TuneResult, TuneSetting, slice_recall, tune


@click.command("tune")
@dataset_options
@click.option(
    "-e",
    "--engine",
    "engine_name",
    required=True,
    help="Engine with an effort parameter (see `annkit engines`).",
)
@click.option(
    "--target",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    help="Recall@k the slice must reach.",
)
@click.option(
    "--slice",
    "slice_name",
    default=ALL,
    show_default=True,
    help="Slice the target applies to: all, head, torso, tail, hard-lid, lid-q4, ...",
)
@click.option(
    "--build-grid",
    "build_grid",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Build values to try, e.g. --build-grid M=8,16,32 (repeatable; the product "
    "is tried). Default: a small grid per engine.",
)
@click.option(
    "--effort-grid",
    "effort_grid",
    default=None,
    metavar="V1,V2,...",
    help="Effort values (ef, search_k, nprobe) to bisect over. Default: a doubling "
    "grid per engine.",
)
@param_option("Other query parameter, held fixed, e.g. -p rerank=10 (repeatable).")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Recall depth.")
@click.option(
    "--mode",
    type=click.Choice(["batch", "single"]),
    default="batch",
    show_default=True,
    help="batch: one call; single: one query per call.",
)
@timing_options
@click.option(
    "--resolution",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Refine the effort between the last failing and the first passing grid "
    "value until they are this far apart (1 = exact).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep built indexes here and reuse them (default: a temporary folder).",
)
@threads_option
@click.option(
    "--bands",
    default="0.2,0.6",
    show_default=True,
    help="Frequency band cut points (shares of queries, most frequent first).",
)
@click.option("--all-slices", is_flag=True, help="Show every hardness quartile too.")
@recall_option()
@memory_check_option
@json_option
@quiet_option
def tune_command(
    data: str | None,
    queries_file: str | None,
    groundtruth_file: str | None,
    weights_file: str | None,
    metric: str | None,
    max_queries: int | None,
    dataset_name: str | None,
    engine_name: str,
    target: float,
    slice_name: str,
    build_grid: tuple[str, ...],
    effort_grid: str | None,
    params: tuple[str, ...],
    k: int,
    mode: str,
    runs: int,
    qps_tolerance: float,
    resolution: int,
    cache_dir: str | None,
    threads: int | None,
    bands: str,
    all_slices: bool,
    recall_rule: str,
    skip_memory_check: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """For each build setting of --engine on DATA (default words-10k), find the smallest
    query effort whose recall@k on --slice meets --target (bisection over the effort grid,
    assuming recall grows with effort, then refined between the last failing and the first
    passing grid value), then report the fastest setting and its recall on every slice.
    Settings whose QPS ranges (min-max over the runs) overlap are tied; the cheaper build
    (smaller index, then shorter build) is chosen. Exit 1 when no setting reaches --target."""
    dataset = open_dataset(
        data,
        queries=queries_file,
        groundtruth=groundtruth_file,
        weights=weights_file,
        metric=metric,
        max_queries=max_queries,
        name=dataset_name,
    )
    echo_notices(ground_truth_notice(dataset, k))
    console = stderr_console()

    def progress(message: str) -> None:
        if not (quiet or as_json):
            console.print(f"[dim]{escape(message)}[/dim]", highlight=False)

    result = tune(
        dataset,
        engine_name,
        target,
        slice_name,
        parse_build_grid(build_grid),
        parse_grid(effort_grid, "--effort-grid"),
        k,
        mode,
        runs,
        cache_dir,
        threads or os.cpu_count() or 1,
        progress,
        query_params=parse_params(params),
        cuts=parse_cuts(bands),
        memory_check=not skip_memory_check,
        qps_tolerance=qps_tolerance,
        resolution=resolution,
        recall_rule=recall_rule,
    )
    if as_json:
        click.echo(to_json(result.to_dict()))
    else:
        render_tune(result, full=all_slices)
    if result.best is None:
        raise TargetNotMet(not_reached_reason(result))


def not_reached_reason(result: TuneResult) -> str:
    """One line: the target no setting reached and the best slice recall measured."""
    text = (
        f"no build setting reaches recall@{result.k} >= {result.target:g} on "
        f"{result.slice_name} within the effort grid"
    )
    closest = result.best_reached()
    if closest is not None:
        setting, effort, recall = closest
        text += (
            f"; best reached {recall:.4f} at {format_params(setting.build_params)} "
            f"{result.param}={effort}"
        )
    return text


def render_tune(result: TuneResult, full: bool = False) -> None:
    """The settings table, the answer with how fine it is, the tie notice, the chosen
    setting's table and the evaluate count, on stdout."""
    out = stdout_console()
    print_table(out, settings_table(result, full=full))
    best = result.best
    if best is not None:
        for line in answer_lines(result, best):
            out.print(line, highlight=False, markup=False, soft_wrap=False)
        print_table(out, best_table(result, best, full=full))
    grid_runs = sum(len(set(setting.trace) & set(setting.grid)) for setting in result.settings)
    out.print(
        f"evaluate runs: {result.evaluations} ({grid_runs} bisecting the grid of "
        f"{result.exhaustive}, {result.evaluations - grid_runs} refining)",
        highlight=False,
        markup=False,
    )


def answer_lines(result: TuneResult, best: TuneSetting) -> list[str]:
    """The chosen effort with its precision, then the tie notice when there is one."""
    tuned = slice_recall(best.evaluation, result.slice_name)
    lines = [
        f"answer: {format_params(best.build_params)} {result.param}={best.chosen:,} "
        f"({best.precision()}): recall@{result.k} on {result.slice_name} {tuned:.4f}"
    ]
    tied = result.tied
    if len(tied) > 1:
        fastest = result.fastest
        assert fastest is not None
        others = [setting for setting in tied if setting is not best]
        lines.append(
            f"tied: QPS ranges overlap for {len(tied)} settings ("
            + "; ".join(
                f"{format_params(setting.build_params)} {result.param}="
                f"{setting.chosen:,}: {_qps(setting)}"
                for setting in tied
            )
            + f"); chose {format_params(best.build_params)}, the cheaper build "
            f"({format_bytes(best.index_bytes)}, {best.build_seconds:.1f} s build vs "
            + ", ".join(
                f"{format_bytes(setting.index_bytes)}, {setting.build_seconds:.1f} s"
                for setting in others
            )
            + ")"
        )
    return lines


def _qps(setting: TuneSetting) -> str:
    evaluation = setting.evaluation
    return format_qps(evaluation.qps, evaluation.qps_min, evaluation.qps_max)


def _shown_slices(setting: TuneSetting, full: bool, tuned: str | None = None) -> list[str]:
    """The slices shown: all with ``full``, else all but the hardness quartiles, and always
    the ``tuned`` slice."""
    names = list(setting.recall_by_slice())
    return [name for name in names if full or "-q" not in name or name == tuned]


def settings_table(result: TuneResult, full: bool = False) -> Table:
    """One row per build setting: chosen effort, QPS and recall on each slice."""
    table = new_table(
        f"{result.engine}: smallest {result.param} with recall@{result.k} >= "
        f"{result.target:g} on {result.slice_name}"
    )
    slices = _shown_slices(result.settings[0], full, result.slice_name) if result.settings else []
    for column in ["build params", result.param, "QPS (min-max)", *slices, "evals"]:
        table.add_column(column, justify="left" if column == "build params" else "right")
    for setting in result.settings:
        recall = setting.recall_by_slice()
        effort = (
            f"{setting.chosen:,}" if setting.reached else f"not reached (>{setting.grid[-1]:,})"
        )
        table.add_row(
            format_params(setting.build_params),
            effort,
            _qps(setting),
            *(f"{recall[name]:.4f}" if name in recall else "-" for name in slices),
            str(len(setting.trace)),
        )
    return table


def best_table(result: TuneResult, best: TuneSetting, full: bool = False) -> Table:
    """The chosen setting meeting the target (the fastest, or the cheaper build tied with
    it), with its recall on every slice (bands and hard-*; the hardness quartiles too when
    ``full``)."""
    rows = [
        ("build params", format_params(best.build_params)),
        ("query params", format_params(best.evaluation.query_params)),
        ("QPS (min-max)", qps_summary(best.evaluation)),
    ]
    recall = best.recall_by_slice()
    rows += [
        (f"recall@{result.k} {name}", f"{recall[name]:.4f}")
        for name in _shown_slices(best, full, result.slice_name)
    ]
    weighted = best.evaluation.weighted_recall
    if weighted is not None:
        rows.append(("traffic-weighted recall", f"{weighted:.4f}"))
    return key_value_table(f"chosen setting meeting the target on {result.slice_name}", rows)


COMMANDS = [tune_command]
