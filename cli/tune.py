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
    filter_strategy_option,
    json_option,
    memory_check_option,
    param_option,
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
from annkit.errors import InputError, TargetNotMet
from annkit.evaluate import ground_truth_notice
from annkit.sources import open_dataset
from annkit.tune import (
    ALL,
    TuneResult,
    TuneSetting,
    grid_from_items,
    slice_recall,
    slice_work,
    tune,
)


@click.command("tune")
@dataset_options
@filter_strategy_option
@click.option(
    "-e",
    "--engine",
    "engine_names",
    required=True,
    multiple=True,
    help="Engine with an effort parameter (see `annkit engines`); repeat it with --any-engine.",
)
@click.option(
    "--any-engine",
    is_flag=True,
    help="Tune every -e engine (each over its own build grid) and answer with the "
    "cheapest index of any: by QPS, and by distance computations where counted.",
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
    "is tried). A free-text value (an index factory string) is kept whole: "
    "--build-grid factory=HNSW32,Flat; repeat the option for several, or quote each "
    """value: 'factory="HNSW32,Flat","IVF64,Flat"'. With --any-engine a name goes to the """
    "engines that have it. Default: a small grid per engine.",
)
@click.option(
    "--query-grid",
    "query_grid",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Other query knobs to tune together with the effort, e.g. --query-grid "
    "k_factor=1,4,16 (repeatable; the effort is bisected for each combination, and "
    "the fastest reaching the target is kept).",
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
    engine_names: tuple[str, ...],
    any_engine: bool,
    target: float,
    slice_name: str,
    build_grid: tuple[str, ...],
    query_grid: tuple[str, ...],
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
    filter_strategy: str,
    base_labels_file: str | None,
    query_labels_file: str | None,
    skip_memory_check: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """For each build setting of --engine on DATA (default words-10k), find the smallest
    query effort whose recall@k on --slice meets --target (bisection over the effort grid,
    assuming recall grows with effort, then refined between the last failing and the first
    passing grid value), then report the fastest setting and its recall on every slice.
    Settings whose QPS ranges (min-max over the runs) overlap are tied; the cheaper build
    (smaller index, then shorter build) is chosen. Exit 1 when no setting reaches --target.

    --query-grid tunes more knobs together (nprobe x k_factor); --any-engine tunes every
    -e engine and names the cheapest index of any (by QPS, and by work where counted)."""
    engines = list(dict.fromkeys(engine_names))
    if len(engines) > 1 and not any_engine:
        raise InputError(
            f"{len(engines)} engines given ({', '.join(engines)}): add --any-engine to tune "
            "them all and pick the cheapest, or give one -e"
        )
    builds = grid_from_items(_grid_items(build_grid, "--build-grid"), engines, "build")
    knobs = grid_from_items(_grid_items(query_grid, "--query-grid"), engines, "query")
    dataset = open_dataset(
        data,
        queries=queries_file,
        groundtruth=groundtruth_file,
        weights=weights_file,
        metric=metric,
        max_queries=max_queries,
        name=dataset_name,
        base_labels=base_labels_file,
        query_labels=query_labels_file,
    )
    echo_notices(ground_truth_notice(dataset, k))
    console = stderr_console()

    def progress(message: str) -> None:
        if not (quiet or as_json):
            console.print(f"[dim]{escape(message)}[/dim]", highlight=False)

    result = tune(
        dataset,
        engines[0] if len(engines) == 1 else engines,
        target,
        slice_name,
        builds,
        parse_grid(effort_grid, "--effort-grid"),
        k,
        mode,
        runs,
        cache_dir,
        threads or os.cpu_count() or 1,
        progress,
        query_params=parse_params(params),
        query_grid=knobs,
        cuts=parse_cuts(bands),
        memory_check=not skip_memory_check,
        qps_tolerance=qps_tolerance,
        resolution=resolution,
        recall_rule=recall_rule,
        filter_strategy=filter_strategy,
    )
    if as_json:
        click.echo(to_json(result.to_dict()))
    else:
        render_tune(result, full=all_slices)
    if result.best is None:
        raise TargetNotMet(not_reached_reason(result))


def _grid_items(items: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    """``NAME=VALUES`` items as (name, values text); a usage error for anything else."""
    out = []
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise click.BadParameter(f"expected NAME=V1,V2,..., got {item!r}", param_hint=option)
        out.append((name.strip(), values))
    return out


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
            f"; best reached {recall:.4f} at {_index_prefix(result, setting)}"
            f"{format_params(setting.build_params)} {_knobs(setting)}{_param(result, setting)}"
            f"={effort}"
        )
    return text


def render_tune(result: TuneResult, full: bool = False) -> None:
    """The settings table, the answer with how fine it is, the tie notice, the cheapest
    index by QPS and by work (several indexes), the chosen setting's table and the
    evaluate count, on stdout."""
    out = stdout_console()
    print_table(out, settings_table(result, full=full))
    best = result.best
    if best is not None:
        for line in answer_lines(result, best):
            out.print(line, highlight=False, markup=False, soft_wrap=False)
        print_table(out, best_table(result, best, full=full))
    grid_runs = sum(
        setting.grid_probes
        if setting.grid_probes is not None
        else len(set(setting.trace) & set(setting.grid))
        for setting in result.settings
    )
    out.print(
        f"evaluate runs: {result.evaluations} ({grid_runs} bisecting the grid of "
        f"{result.exhaustive}, {result.evaluations - grid_runs} refining)",
        highlight=False,
        markup=False,
    )


def _several(result: TuneResult) -> bool:
    """True when the settings span more than one engine (``--any-engine``)."""
    return len({setting.engine for setting in result.settings}) > 1


def _index_prefix(result: TuneResult, setting: TuneSetting) -> str:
    """``faiss HNSW16,Flat: `` before a setting's params when several engines are tuned."""
    return f"{setting.label}: " if _several(result) and setting.label else ""


def _param(result: TuneResult, setting: TuneSetting) -> str:
    return setting.param or result.param


def _knobs(setting: TuneSetting) -> str:
    """``k_factor=4 `` (the other query knobs of the reported run), empty without."""
    return "".join(f"{name}={value} " for name, value in setting.knobs.items())


def _effort(result: TuneResult, setting: TuneSetting) -> str:
    """The chosen effort, ``param=value`` when the builds are tuned by different params,
    then the other knobs; ``not reached (>max)``."""
    if not setting.reached:
        return f"not reached (>{setting.grid[-1]:,})"
    assert setting.chosen is not None
    mixed = len({_param(result, s) for s in result.settings}) > 1
    value = f"{_param(result, setting)}={setting.chosen:,}" if mixed else f"{setting.chosen:,}"
    return " ".join([value, *(f"{name}={v}" for name, v in setting.knobs.items())])


def answer_lines(result: TuneResult, best: TuneSetting) -> list[str]:
    """The chosen effort with its precision, then the tie notice when there is one; with
    several engines, the cheapest index by QPS (with its spread) and by work."""
    tuned = slice_recall(best.evaluation, result.slice_name)
    lines = [
        f"answer: {_index_prefix(result, best)}{format_params(best.build_params)} "
        f"{_knobs(best)}{_param(result, best)}={best.chosen:,} "
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
                f"{_index_prefix(result, setting)}{format_params(setting.build_params)} "
                f"{_knobs(setting)}{_param(result, setting)}="
                f"{setting.chosen:,}: {_qps(setting)}"
                for setting in tied
            )
            + f"); chose {_index_prefix(result, best)}{format_params(best.build_params)}, "
            f"the cheaper build ({format_bytes(best.index_bytes)}, {best.build_seconds:.1f} s "
            "build vs "
            + ", ".join(
                f"{format_bytes(setting.index_bytes)}, {setting.build_seconds:.1f} s"
                for setting in others
            )
            + ")"
        )
    if _several(result):
        lines.append(
            f"cheapest by QPS: {best.label} ({format_params(best.evaluation.query_params)}): "
            f"{_qps(best)} QPS"
        )
        least = result.least_work
        if least is None:
            lines.append("cheapest by work: not counted by any of these indexes")
        else:
            work = slice_work(least.evaluation, result.slice_name)
            assert work is not None
            uncounted = [
                s.label
                for s in result.reached
                if slice_work(s.evaluation, result.slice_name) is None
            ]
            lines.append(
                f"cheapest by work: {least.label} "
                f"({format_params(least.evaluation.query_params)}): {work:,.0f} distance "
                f"computations per query on {result.slice_name}"
                + (f" (not counted: {', '.join(uncounted)})" if uncounted else "")
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
    params = list(dict.fromkeys(_param(result, setting) for setting in result.settings))
    param = params[0] if len(params) == 1 else "effort"
    table = new_table(
        f"{result.engine}: smallest {param} with recall@{result.k} >= "
        f"{result.target:g} on {result.slice_name}"
    )
    slices = _shown_slices(result.settings[0], full, result.slice_name) if result.settings else []
    for column in ["index", param, "QPS (min-max)", *slices, "evals"]:
        table.add_column(column, justify="left" if column == "index" else "right")
    for setting in result.settings:
        recall = setting.recall_by_slice()
        table.add_row(
            setting.label or format_params(setting.build_params),
            _effort(result, setting),
            _qps(setting),
            *(f"{recall[name]:.4f}" if name in recall else "-" for name in slices),
            str(setting.evaluations),
        )
    return table


def best_table(result: TuneResult, best: TuneSetting, full: bool = False) -> Table:
    """The chosen setting meeting the target (the fastest, or the cheaper build tied with
    it), with its recall on every slice (bands and hard-*; the hardness quartiles too when
    ``full``)."""
    rows = [
        ("index", best.label),
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
