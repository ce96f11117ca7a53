"""``annkit bench`` (parameter sweeps), ``annkit report`` and ``annkit plot``."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from annkit.bench.compare import (
    GateThresholds,
    SweepFacts,
    check_comparable,
    compare_records,
    load_baseline,
)
from annkit.bench.report import build_report, load_results, on_slice
from annkit.bench.runner import run_sweep
from annkit.bench.spec import DEFAULT_SWEEP, load_sweep
from annkit.bench.store import PLOT_FILE
from annkit.cli.console import stdout_console, to_json
from annkit.cli.gate import raise_if_failed, render_comparison
from annkit.cli.options import (
    LOCAL_RAY,
    gate_options,
    html_option,
    json_option,
    memory_check_option,
    quiet_option,
    ray_option,
    recall_option,
    threads_option,
)
from annkit.cli.sweep_render import (
    SweepProgress,
    plain_progress_line,
    render_report,
    setting_rows,
    settings_csv,
    settings_markdown,
    slice_label,
    slice_queries,
)
from annkit.errors import InputError
from annkit.types import work_axis_label

__all__ = ["COMMANDS", "plain_progress_line", "slice_label", "slice_queries"]


def parse_counts(text: str | None, option: str) -> list[int] | None:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (each >= 1); None stays None; else a usage error."""
    if text is None:
        return None
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise click.BadParameter(
            f"expected counts >= 1 like 1,2,4, got {text!r}", param_hint=option
        )
    return counts


def _results_dir(output: str | None, results_root: Path) -> Path | None:
    """-o NAME puts results in <root>/NAME; anything that looks like a path is used as is."""
    if output is None:
        return None
    if os.sep in output or "/" in output or output.startswith(".") or Path(output).is_absolute():
        return Path(output)
    return results_root / output


@click.command()
@click.argument("sweep_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    metavar="NAME_OR_DIR",
    default=None,
    help="Results folder: a name under --results-root, or a path. "
    "Default: <dataset>-<YYYYmmdd-HHMMSS>.",
)
@click.option(
    "--results-root",
    type=click.Path(file_okay=False),
    default="results",
    show_default=True,
    help="Folder holding results and the index cache (.cache).",
)
@click.option(
    "--dataset",
    default=None,
    help="Run the sweep's grid on this dataset instead (bundled name or path).",
)
@click.option("--rebuild", is_flag=True, help="Build every index again, ignoring the cache.")
@click.option(
    "--force",
    is_flag=True,
    help="Start the results folder over: redo every setting (also needed to reuse "
    "a folder for a different sweep).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Time limit per build and per query setting (overrides the sweep file's).",
)
@threads_option
@click.option(
    "--search-threads",
    "search_threads",
    default=None,
    metavar="N[,N...]",
    help="Measure every query setting with the engine's batch search on N threads "
    "(a list: each count is its own run, e.g. 1,2; see plot --x threads).",
)
@click.option(
    "--clients",
    default=None,
    metavar="C[,C...]",
    help="Measure every query setting with C concurrent single-query clients "
    "(single-mode sweeps; a list: each count is its own run, e.g. 1,2,4).",
)
@quiet_option
@json_option
@click.option(
    "--baseline",
    type=click.Path(),
    default=None,
    metavar="RESULTS",
    help="Then compare the sweep with this baseline (a results folder or its "
    "runs.jsonl) and exit 1 on a regression, as 'annkit compare' does.",
)
@gate_options
@click.option(
    "--policy",
    "policy_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="POLICY.json",
    help="Also measure this trained policy file (annkit adapt) on the sweep's build "
    "it was trained for, as its own series (repeatable; e.g. annkit bench "
    "sweep.toml --policy hnsw16.policy.json). In a sweep file: policy = [...] "
    "or adapt = { target = [0.95] } in an [[engine]] entry.",
)
@click.option("--print-default", is_flag=True, help="Print the built-in default sweep and exit.")
@html_option(
    "Also write the sweep's report (interactive frontier, slices, Pareto table, worst queries)"
)
@recall_option(None)
@memory_check_option
@ray_option(
    "Run builds and query settings as Ray tasks: a new local Ray instance, or the "
    "cluster at --ray=HOST:PORT (extra annkit[ray]). Each query setting runs on the "
    "node holding its index, next to an exact reference measured there."
)
def bench(
    sweep_file: str | None,
    output: str | None,
    results_root: str,
    dataset: str | None,
    rebuild: bool,
    force: bool,
    timeout: float | None,
    threads: int | None,
    search_threads: str | None,
    clients: str | None,
    quiet: bool,
    as_json: bool,
    baseline: str | None,
    max_recall_drop: float,
    max_qps_drop: float,
    max_work_increase: float,
    policy_files: tuple[str, ...],
    print_default: bool,
    html_file: str | None,
    recall_rule: str | None,
    skip_memory_check: bool,
    ray_address: str | None,
) -> None:
    """Sweep engines x build params x query params and report recall@k against QPS.

    SWEEP_FILE is a TOML sweep (see --print-default); without it the built-in default sweep
    runs on the bundled words-10k dataset. Each index is built once (cached under
    <results-root>/.cache and reused by later sweeps), every query setting is measured on
    it, and each finished setting is stored at once in the results folder (runs.jsonl,
    perquery.h5, meta.json, plot.png). Run the same command again to resume a stopped
    sweep: finished settings are kept, failed ones retried. A results folder only takes
    the sweep that made it (use another -o, or --force to start it over).

    Per-query effort policies run beside the uniform settings, each index's policies of one
    kind as their own series: trained policy files (--policy, or policy = [...] in an
    [[engine]] entry), and policies the sweep trains on its own index, cross-fitted (adapt =
    { target = [0.95, 0.99] } in an entry; optional kinds, folds, grid, seed, centroids).

    With --baseline the sweep is then checked against a baseline sweep (the regression
    gate, see 'annkit compare --help'): exit 1 when a setting regressed.
    """
    if print_default:
        click.echo(DEFAULT_SWEEP, nl=False)
        return
    thread_counts = parse_counts(search_threads, "--search-threads")
    client_counts = parse_counts(clients, "--clients")
    spec = load_sweep(sweep_file)
    if dataset is not None:
        spec = spec.with_dataset(dataset)
    if recall_rule is not None:
        spec = spec.with_recall_rule(recall_rule)
    if policy_files:
        spec = spec.with_policies(list(policy_files))
    root = Path(results_root)
    thresholds = GateThresholds(max_recall_drop, max_qps_drop, max_work_increase)
    reference = None
    if baseline is not None:  # read and check it first: a bad baseline costs no sweep
        reference = load_baseline(baseline)
        check_comparable(
            reference.facts(), SweepFacts(k=spec.k, mode=spec.mode, recall_rule=spec.recall_rule)
        )
    sweep: Any = run_sweep
    if ray_address is not None:  # Ray is imported only when asked for
        from functools import partial

        from annkit.distributed.ray_bench import run_sweep_on_ray

        sweep = partial(run_sweep_on_ray, address=None if ray_address == LOCAL_RAY else ray_address)
    with SweepProgress(quiet or as_json) as progress:
        outcome = sweep(
            spec,
            _results_dir(output, root),
            results_root=root,
            rebuild=rebuild,
            force=force,
            timeout=timeout,
            threads=threads,
            on_event=progress,
            memory_check=not skip_memory_check,
            search_threads=thread_counts,
            clients=client_counts,
        )
    records = outcome.records
    reported = time.perf_counter()
    report = build_report(records, outcome.meta, outcome.results_dir)
    plot_path: Path | None = None
    if any(record.usable for record in records):
        plot_path = outcome.results_dir / PLOT_FILE
        if outcome.ran or not plot_path.is_file():  # a finished folder keeps its plot
            from annkit.bench.plot import plot_sweep

            plot_sweep(records, plot_path)
    html_path: Path | None = None
    if html_file is not None:
        from annkit.bench.html_report import write_html_report

        html_path = write_html_report(outcome.results_dir, html_file)
    phases = {**outcome.phases, "report_and_plot": round(time.perf_counter() - reported, 3)}
    summary = {
        "ran": outcome.ran,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "builds": outcome.builds,
        "cached_builds": outcome.cached_builds,
        "seconds": outcome.seconds,
        "phases": phases,
    }
    comparison = (
        None
        if reference is None
        else compare_records(
            reference.records,
            records,
            thresholds,
            baseline_meta=reference.meta,
            current_meta=outcome.meta,
            baseline_path=reference.path,
            current_path=outcome.results_dir,
        )
    )
    if as_json:
        gate = {} if comparison is None else {"compare": comparison.to_dict()}
        click.echo(
            to_json(
                {
                    **report.to_dict(),
                    "plot": str(plot_path) if plot_path else None,
                    "html": str(html_path) if html_path else None,
                    "sweep": summary,
                    **gate,
                }
            )
        )
        if comparison is not None:
            raise_if_failed(comparison)
        return
    console = stdout_console()
    render_report(console, report, records)
    console.print(
        f"{outcome.ran} settings measured ({outcome.failed} failed), {outcome.skipped} already "
        f"done; {outcome.builds - outcome.cached_builds} indexes built, "
        f"{outcome.cached_builds} from cache; {outcome.seconds:.1f}s"
    )
    console.print(
        "where the time went: "
        + ", ".join(f"{name.replace('_', ' ')} {seconds:.1f}s" for name, seconds in phases.items()),
        highlight=False,
    )
    where = f"results: {outcome.results_dir}"
    where += f"  plot: {plot_path}" if plot_path else ""
    console.print(where + (f"  html: {html_path}" if html_path else ""))
    if comparison is not None:
        console.print()
        render_comparison(console, comparison)
        raise_if_failed(comparison)


@click.command()
@click.argument("results", type=click.Path(exists=True))
@click.option(
    "--slice",
    "slice_name",
    default="all",
    show_default=True,
    help="Report recall on a query slice: tail, head, torso, hard-lid, lid-q4, ...",
)
@json_option
@click.option(
    "--markdown",
    "as_markdown",
    is_flag=True,
    help="Print one Markdown table row per setting (for a file, a pull request or a CI "
    "summary) instead of the report.",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="Print one CSV row per setting (engine, setting, params, recall, p5, tail, QPS "
    "and spread, distance computations, ...) instead of the report.",
)
@html_option(
    "Write the report instead, and print its path (interactive frontier with every slice, "
    "Pareto table, worst queries of each setting)"
)
def report(
    results: str,
    slice_name: str,
    as_json: bool,
    as_markdown: bool,
    as_csv: bool,
    html_file: str | None,
) -> None:
    """Report a sweep from RESULTS (a results folder or its runs.jsonl): Pareto-optimal runs
    per engine, best QPS at recall@k >= 0.90 / 0.95 / 0.99 and speed-ups over flat; or every
    setting as one row of a Markdown (--markdown) or CSV (--csv) table; or all of it as an
    HTML page (--html OUT.html)."""
    if as_json + as_markdown + as_csv > 1:
        raise click.UsageError("use one of --json, --markdown and --csv")
    if html_file is not None and as_json + as_markdown + as_csv:
        raise click.UsageError("--html writes a page: drop --json, --markdown and --csv")
    if html_file is not None:
        if slice_name != "all":
            raise click.UsageError("--html holds every slice (a switch on the page); drop --slice")
        from annkit.bench.html_report import write_html_report

        click.echo(str(write_html_report(results, html_file)))
        return
    folder, records, meta = load_results(results)
    sliced = on_slice(records, slice_name)
    if as_csv or as_markdown:
        rows = setting_rows(sliced)
        first_k = next((record.k for record in sliced if record.k is not None), None)
        click.echo(settings_csv(rows) if as_csv else settings_markdown(rows, first_k), nl=False)
        return
    summary = replace(
        build_report(sliced, meta, folder),
        slice=slice_name,
        slice_queries=None if slice_name == "all" else slice_queries(sliced),
    )
    if as_json:
        click.echo(to_json(summary.to_dict()))
        return
    render_report(stdout_console(), summary, sliced)


def default_plot_path(results: Path, folder: Path | None, x_axis: str, measure: str) -> Path:
    """Where ``annkit plot`` writes without -o: RESULTS/plot[-<x>][-<y>].png for a results
    folder, ADAPT[-<x>][-<y>].png beside an adapt report (qps and recall add nothing)."""
    suffix = ("" if x_axis == "qps" else f"-{x_axis}") + (
        "" if measure == "recall" else f"-{measure}"
    )
    if folder is None:
        return results.with_name(f"{results.stem}{suffix}.png")
    return folder / (PLOT_FILE if not suffix else Path(PLOT_FILE).stem + f"{suffix}.png")


@click.command()
@click.argument("results", type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Image to write (.png, .svg, .pdf). Default: RESULTS/plot.png (plot-<x>-<y>"
    ".png for other axes); beside ADAPT.json for an adapt report.",
)
@click.option("--title", default=None, help="Plot title (default: dataset, k and mode).")
@click.option(
    "--slice",
    "slice_name",
    default="all",
    show_default=True,
    help="Also draw each engine's frontier on a query slice (tail, hard-lid, ...), "
    "dashed, beside the overall one.",
)
@click.option(
    "--slice-only",
    is_flag=True,
    help="With --slice: draw only the slice's frontiers, not the overall ones.",
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["qps", "work", "threads", "clients"]),
    default="qps",
    show_default=True,
    help="qps: recall@k against QPS (log); work: recall@k against mean distance "
    "computations per query (log x; engines that do not count left out); "
    "threads / clients: QPS against search threads / concurrent clients "
    "(sweeps run with bench --search-threads 1,2 / --clients 1,2,4).",
)
@click.option(
    "--y",
    "measure",
    type=click.Choice(["recall", "p5", "tail"]),
    default="recall",
    show_default=True,
    help="The recall drawn against QPS or work: mean recall@k, p5 (5th percentile "
    "of the per-query recall) or tail (the tail frequency band's recall), "
    "e.g. annkit plot adapt.json --x work --y p5.",
)
def plot(
    results: str,
    output: str | None,
    title: str | None,
    slice_name: str,
    slice_only: bool,
    x_axis: str,
    measure: str,
) -> None:
    """Plot recall@k against QPS (log), or with --x work against distance computations per
    query (log), from RESULTS (a results folder or its runs.jsonl): one line per engine's
    Pareto frontier, other runs faint, flat as the reference; each index's per-query effort
    policies (bench policy / adapt runs) as their own line in the engine's colour.

    RESULTS may also be the JSON of 'annkit adapt --json > ADAPT.json': its uniform,
    learned, threshold and oracle frontiers are drawn (--x qps or work, --y as above)."""
    from annkit.bench.plot import (
        load_adapt_report,
        measure_label,
        plot_adaptive,
        plot_sweep,
    )

    source = Path(results)
    if source.is_file() and source.suffix != ".jsonl":  # annkit adapt --json's report
        if slice_name != "all" or slice_only:
            raise InputError(
                "--slice applies to bench results; for an adapt report choose "
                "--y recall, p5 or tail"
            )
        adapt_report = load_adapt_report(source)
        target = Path(output) if output else default_plot_path(source, None, x_axis, measure)
        click.echo(str(plot_adaptive(adapt_report, target, x=x_axis, y=measure, title=title)))
        return
    if measure == "tail" and slice_name != "all":
        raise InputError("--y tail is the tail band's recall already; drop --slice")
    folder, records, _ = load_results(results)
    target = Path(output) if output else default_plot_path(source, folder, x_axis, measure)
    first = records[0] if records else None
    name = (first.dataset if first else None) or folder.name
    k = first.k if first and first.k is not None else "k"
    label = measure_label(measure, k)
    # the work axis names every unit the runs count in (PQ code distances beside plain ones)
    versus = (
        "QPS"
        if x_axis == "qps"
        else work_axis_label([record.work_unit for record in records if record.usable])
    )
    if slice_name == "all":
        path = plot_sweep(records, target, title=title, x=x_axis, y=measure)
    elif slice_only:
        sliced = on_slice(records, slice_name)
        where = slice_label(slice_name, slice_queries(sliced))
        path = plot_sweep(
            sliced,
            target,
            x=x_axis,
            y=measure,
            title=title or f"{name}: {label}{where} vs {versus}",
        )
    else:
        sliced = on_slice(records, slice_name)
        where = slice_label(slice_name, slice_queries(sliced))
        path = plot_sweep(
            records,
            target,
            slice_records=sliced,
            y=measure,
            slice_name=slice_name,
            x=x_axis,
            title=title or f"{name}: {label} (all queries, and{where}) vs {versus}",
        )
    click.echo(str(path))


COMMANDS = [bench, report, plot]
