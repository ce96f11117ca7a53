"""``annkit bench`` (parameter sweeps), ``annkit report`` and ``annkit plot``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from annkit.bench.compare import (
    GateThresholds,
    SweepFacts,
    check_comparable,
    compare_records,
    load_baseline,
)
from annkit.bench.report import build_report, load_results, on_slice
from annkit.bench.runner import SweepEvent, run_sweep
from annkit.bench.spec import DEFAULT_SWEEP, load_sweep
from annkit.bench.store import PLOT_FILE
from annkit.cli.console import stderr_console, stdout_console, to_json
from annkit.cli.gate import raise_if_failed, render_comparison
from annkit.cli.options import (
    LOCAL_RAY,
    gate_options,
    json_option,
    memory_check_option,
    quiet_option,
    ray_option,
    recall_option,
    threads_option,
)
from annkit.cli.render import format_bytes, format_qps
from annkit.engines.base import reference_engine
from annkit.errors import InputError
from annkit.types import RunRecord


class _StepProgress(Progress):
    """A progress bar with one more line below it: the current build or query step."""

    step = ""

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        if self.step:
            yield Text(self.step, style="dim", overflow="ellipsis", no_wrap=True)


class SweepProgress:
    """Renders :class:`annkit.bench.runner.SweepEvent` s on stderr (nothing when quiet): a
    live bar on a terminal, else (a CI log, a file) one plain line per finished setting."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: _StepProgress | None = None
        self.task: Any = None
        self.plain = False

    def __enter__(self) -> SweepProgress:
        console = stderr_console()
        # not on a terminal (a CI log, a pipe) a transient bar only leaves a blank line
        if not self.quiet and console.is_terminal:
            self.progress = _StepProgress(
                TextColumn("[bold]sweep[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("sweep", total=None)
        self.plain = not self.quiet and self.progress is None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, event: SweepEvent) -> None:
        if event.kind == "notice" and not self.quiet:
            if self.progress is not None:
                self.progress.console.print(event.message, highlight=False, markup=False)
            else:
                click.echo(event.message, err=True)
            return
        if self.plain and event.kind == "record" and event.record is not None:
            click.echo(plain_progress_line(event), err=True)
        progress = self.progress
        if progress is None:
            return
        progress.update(self.task, completed=event.done, total=event.total)
        if event.kind == "groundtruth":
            progress.step = f"ground truth: {event.message}"
        elif event.kind == "start":
            progress.step = event.message
        elif event.kind in ("build", "query"):
            progress.step = event.message if event.kind == "build" else f"measuring {event.message}"
        elif event.kind == "record" and event.record and event.record.status != "ok":
            progress.console.print(
                f"[red]{event.record.status}[/red] {event.message}: {event.record.error}"
            )
        elif event.kind == "finish":
            progress.step = ""
        progress.refresh()


def plain_progress_line(event: SweepEvent) -> str:
    """``[3/14] hnsw M=16 | ef=40: recall@10 0.9512, 8,123 QPS`` (or the failure)."""
    record = event.record
    head = f"[{event.done}/{event.total}] {event.message}"
    if record is None or record.status != "ok":
        status, error = (None, None) if record is None else (record.status, record.error)
        return f"{head}: {status}: {error}"
    recall = record.recall or 0.0
    return (
        f"{head}: recall@{record.k} {recall:.4f}, {record.qps:,.0f} QPS"
        if record.qps
        else f"{head}: recall@{record.k} {recall:.4f}"
    )


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


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _speedup(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2g}x" if value < 1 else f"{value:.1f}x"


def _setting(run: dict) -> str:
    """A report run's setting name (annkit.bench.report.setting_labels); ``(defaults)``."""
    return run.get("setting") or "(defaults)"


def _short_count(value: float | None) -> str:
    """``754``, ``7674``, ``12.3k``, ``1.25M``: a count in at most 5 characters."""
    if value is None:
        return "-"
    if value >= 999_500:
        return f"{value / 1e6:.3g}M"
    return f"{value / 1e3:.3g}k" if value >= 9_999.5 else f"{value:.0f}"


def _work(run: dict) -> str:
    """``557/690/754``: p50 / p95 / p99 distance computations per query; ``-``."""
    work = run.get("work")
    if not work:
        return "-"
    return "/".join(_short_count(work.get(name)) for name in ("p50", "p95", "p99"))


def slice_label(slice_name: str | None, queries: int | None) -> str:
    """`` on slice 'tail' (400 queries)`` for a slice report, empty for all queries."""
    if not slice_name or slice_name == "all":
        return ""
    count = "" if queries is None else f" ({queries:,} queries)"
    return f" on slice '{slice_name}'{count}"


def slice_queries(records: list[RunRecord]) -> int | None:
    """How many queries the slice holds (from the first ok record seen on it, see
    ``on_slice``), None when no record says."""
    for record in records:
        if record.status == "ok" and record.tail is not None and record.tail.queries:
            return record.tail.queries
    return None


def _measures(run: dict) -> str:
    """``0.9512 / 0.70 / 0.9401``: recall@k, p5 per-query recall, tail-band recall."""
    p5 = "-" if run.get("p5_recall") is None else f"{run['p5_recall']:.2f}"
    tail = "-" if run.get("tail_recall") is None else f"{run['tail_recall']:.4f}"
    return f"{run['recall']:.4f} / {p5} / {tail}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def policy_table(report: dict) -> Table:
    """Each policy run beside the cheapest uniform setting of its index reaching its recall
    (see annkit.bench.report.policy_rows)."""
    k = report["k"]
    where = slice_label(report.get("slice"), report.get("slice_queries"))
    table = Table(
        title=f"per-query effort policies{where} beside the cheapest uniform "
        "setting of their index reaching their recall",
        title_justify="left",
    )
    for column, justify in (
        ("series", "left"),
        ("policy", "left"),
        (f"recall@{k} / p5 / tail", "right"),
        ("dist/query", "right"),
        ("QPS", "right"),
        ("uniform", "left"),
        ("its recall / p5 / tail", "right"),
        ("its dist/query", "right"),
        ("its QPS", "right"),
        ("x work", "right"),
        ("x QPS", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in report["policies"]:
        uniform = row["uniform"]
        policy = row["setting"].rpartition(" | ")[2] or _setting(row)
        cells = [
            row["series"],
            policy,
            _measures(row),
            _number(row["distance_computations"]),
            _number(row["qps"]),
        ]
        if uniform is None:
            cells += [Text("none reaches its recall", style="dim"), "-", "-", "-", "-", "-"]
        else:
            cells += [
                _setting(uniform).rpartition(" | ")[2],
                _measures(uniform),
                _number(uniform["distance_computations"]),
                _number(uniform["qps"]),
                _ratio(row["work_ratio"]),
                _ratio(row["qps_ratio"]),
            ]
        table.add_row(*cells)
    return table


def render_report(console: Console, report: dict) -> None:
    """Pareto table, headline table and failures of a report (see build_report). On a
    slice (``report["slice"]``), recall, dist/query and its p50/p95/p99 are the slice's."""
    k = report["k"]
    where = slice_label(report.get("slice"), report.get("slice_queries"))
    pareto = Table(
        title=f"Pareto-optimal runs{where}: recall@{k} vs QPS "
        f"({report['dataset']}, {report['mode']})",
        title_justify="left",
    )
    counted = any(
        run.get("work") for entry in report["engines"].values() for run in entry["pareto"]
    )
    columns = [
        ("engine", "left"),
        ("setting (build | query)", "left"),
        (f"recall@{k}", "right"),
        ("QPS (min-max)", "right"),
        (f"x {reference_engine()}", "right"),
        ("dist/query", "right"),
    ]
    if counted:
        columns.append(("dist p50/p95/p99", "right"))
    columns += [("build s", "right"), ("index", "right")]
    for column, justify in columns:
        pareto.add_column(column, justify=justify)  # type: ignore[arg-type]
    for engine, entry in report["engines"].items():
        for position, run in enumerate(entry["pareto"]):
            cells = [
                engine if position == 0 else "",
                _setting(run),
                f"{run['recall']:.4f}",
                format_qps(run["qps"], run.get("qps_min"), run.get("qps_max")),
                _speedup(run["speedup_vs_flat"]),
                _number(run.get("distance_computations")),
            ]
            if counted:
                cells.append(_work(run))
            cells += [_number(run["build_seconds"], 2), format_bytes(run["index_bytes"])]
            pareto.add_row(*cells)
        if entry["pareto"]:
            pareto.add_section()
    console.print(pareto)
    headline = Table(title=f"best QPS at recall@{k} >= threshold{where}", title_justify="left")
    for column, justify in (
        ("recall@k >=", "right"),
        ("engine", "left"),
        ("setting", "left"),
        (f"recall@{k}", "right"),
        ("QPS", "right"),
        (f"x {reference_engine()}", "right"),
        ("dist/query", "right"),
    ):
        headline.add_column(column, justify=justify)  # type: ignore[arg-type]
    for entry in report["headlines"]:
        threshold = f"{entry['threshold']:.2f}"
        for position, (engine, run) in enumerate(entry["engines"].items()):
            label = threshold if position == 0 else ""
            if run is None:
                why = "not reached" if report["engines"][engine]["ok"] else "no successful run"
                headline.add_row(label, engine, Text(why, style="dim"), "-", "-", "-", "-")
            else:
                headline.add_row(
                    label,
                    engine,
                    _setting(run),
                    f"{run['recall']:.4f}",
                    _number(run["qps"]),
                    _speedup(run["speedup_vs_flat"]),
                    _number(run.get("distance_computations")),
                )
        headline.add_section()
    console.print(headline)
    for entry in report["headlines"]:
        best = entry["best"]
        lead = f"best QPS at recall@{k} >= {entry['threshold']:.2f}: "
        if best is None:
            console.print(lead + "not reached by any run")
        else:
            speed = (
                f" ({_speedup(best['speedup_vs_flat'])} {reference_engine()})"
                if best["speedup_vs_flat"] is not None
                else ""
            )
            console.print(
                f"{lead}[bold]{best['engine']}[/bold] {_setting(best)}: "
                f"{best['qps']:,.0f} QPS{speed}, recall {best['recall']:.4f}"
            )
    if report.get("policies"):
        console.print(policy_table(report))
    if report.get("concurrency"):
        scaling = Table(
            title="QPS under concurrency (each setting at each level)", title_justify="left"
        )
        for column, justify in (
            ("engine", "left"),
            ("setting", "left"),
            ("by", "left"),
            ("level: QPS (p99 ms)", "left"),
            ("scaling", "right"),
        ):
            scaling.add_column(column, justify=justify)  # type: ignore[arg-type]
        for row in report["concurrency"]:
            levels = ", ".join(
                f"{entry['level']}: {entry['qps']:,.0f}"
                + (
                    f" ({entry['latency_ms']['p99']:.2f})"
                    if entry["latency_ms"].get("p99") is not None
                    else ""
                )
                for entry in row["levels"]
            )
            scaling.add_row(
                row["engine"], _setting(row), row["by"], levels, f"{row['scaling']:.2f}x"
            )
        console.print(scaling)
    if report["flat_qps"] is None:
        console.print(
            Text(
                f"no {reference_engine()} run in this sweep: no speed-ups "
                f'(add [[engine]] name = "{reference_engine()}")'
            )
        )
    if report["failed"]:
        failed = Table(title="failed runs", title_justify="left")
        for column in ("engine", "setting", "status", "error"):
            failed.add_column(column)
        for run in report["failed"]:
            failed.add_row(run["engine"], _setting(run), run["status"], run["error"] or "-")
        console.print(failed)


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
    report = {
        **build_report(records, outcome.meta, outcome.results_dir),
        "slice": "all",
        "slice_queries": None,
    }
    plot_path: Path | None = None
    if any(record.usable for record in records):
        plot_path = outcome.results_dir / PLOT_FILE
        if outcome.ran or not plot_path.is_file():  # a finished folder keeps its plot
            from annkit.bench.plot import plot_sweep

            plot_sweep(records, plot_path)
    summary = {
        "ran": outcome.ran,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "builds": outcome.builds,
        "cached_builds": outcome.cached_builds,
        "seconds": outcome.seconds,
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
                {**report, "plot": str(plot_path) if plot_path else None, "sweep": summary, **gate}
            )
        )
        if comparison is not None:
            raise_if_failed(comparison)
        return
    console = stdout_console()
    render_report(console, report)
    console.print(
        f"{outcome.ran} settings measured ({outcome.failed} failed), {outcome.skipped} already "
        f"done; {outcome.builds - outcome.cached_builds} indexes built, "
        f"{outcome.cached_builds} from cache; {outcome.seconds:.1f}s"
    )
    where = f"results: {outcome.results_dir}"
    console.print(where + (f"  plot: {plot_path}" if plot_path else ""))
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
def report(results: str, slice_name: str, as_json: bool) -> None:
    """Report a sweep from RESULTS (a results folder or its runs.jsonl): Pareto-optimal runs
    per engine, best QPS at recall@k >= 0.90 / 0.95 / 0.99 and speed-ups over flat."""
    folder, records, meta = load_results(results)
    sliced = on_slice(records, slice_name)
    summary = build_report(sliced, meta, folder)
    summary["slice"] = slice_name
    summary["slice_queries"] = None if slice_name == "all" else slice_queries(sliced)
    if as_json:
        click.echo(to_json(summary))
        return
    render_report(stdout_console(), summary)


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
    versus = "QPS" if x_axis == "qps" else "distance computations"
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
