"""``annkit stream``: a streaming runbook (inserts, deletes, replaces, searches) against one
engine, with recall at every search step; ``make-runbook`` and ``plot``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from annkit.cli.console import stderr_console, stdout_console, to_json
from annkit.cli.options import (
    html_option,
    json_option,
    max_queries_option,
    metric_option,
    parse_params,
    quiet_option,
    recall_option,
    search_threads_option,
    timing_options,
)
from annkit.cli.render import (
    format_bytes,
    format_count,
    format_fraction,
    format_qps,
    key_value_table,
    new_table,
    print_table,
)
from annkit.engines import get_engine
from annkit.errors import ParamError
from annkit.measure import Measure
from annkit.sources import open_dataset
from annkit.stream import (
    SHAPES,
    StreamEvent,
    StreamReport,
    StreamSettings,
    make_runbook,
    run_stream,
)
from annkit.stream.plot import plot_streams, read_report


class StreamGroup(click.Group):
    """``annkit stream RUNBOOK DATA ...`` runs a stream (the ``run`` subcommand) unless the
    first word names another subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=StreamGroup)
def stream() -> None:
    """A corpus that changes: run a big-ann-benchmarks streaming runbook (inserts, deletes,
    replaces and searches) against one engine, with recall at every search step.

    \b
    annkit stream RUNBOOK.yaml DATA -e ENGINE [-p NAME=VALUE ...] -o OUT
    annkit stream make-runbook SHAPE DATA -o RUNBOOK.yaml
    annkit stream plot OUT [OUT ...] -o recall.png
    """


def split_params(engine: str, params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(build params, query params) of ``-p NAME=VALUE`` for ``engine``: each name goes
    where the engine knows it (the query knobs may depend on the build params)."""
    cls = get_engine(engine)
    build = {name: value for name, value in params.items() if name in cls.build_specs}
    query_names = cls.query_specs(build)
    query = {name: value for name, value in params.items() if name in query_names}
    unknown = sorted(set(params) - set(build) - set(query))
    if unknown:
        known = ", ".join(sorted(set(cls.build_specs) | set(query_names))) or "none"
        raise ParamError(f"engine {engine} has no parameter {unknown[0]!r} (known: {known})")
    return build, query


def step_line(event: StreamEvent) -> str | None:
    """One finished step as a line (``step 3/11 search: live 4,000, recall ...``), or None
    for an event that is not one."""
    step = event.step
    if event.kind == "replayed":
        return f"step {step.number}/{event.total} {step.operation}: replayed"
    record = event.record
    if record is None:
        return None
    text = f"step {step.number}/{event.total} {step.operation}: live {record.live:,}"
    if record.search is not None:
        text += f", recall {record.search.recall:.4f}, p5 {record.search.p5_recall:.2f}"
        if record.fresh is not None:
            text += f" (fresh build {record.fresh.measure.recall:.4f})"
    return text


@contextmanager
def stream_progress(quiet: bool) -> Iterator[Callable[[StreamEvent], None]]:
    """A progress callback for :func:`run_stream` on stderr: one line per finished step
    (plain when stderr is not a terminal), above a bar with the ETA on a terminal; nothing
    when quiet."""
    console = stderr_console()
    if quiet:
        yield lambda event: None
        return
    if not console.is_terminal:

        def plain(event: StreamEvent) -> None:
            line = step_line(event)
            if line is not None:
                console.print(line, highlight=False, markup=False, soft_wrap=True)

        yield plain
        return
    bar = Progress(
        TextColumn("stream"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("stream", total=None)

        def show(event: StreamEvent) -> None:
            line = step_line(event)
            if line is not None:
                bar.console.print(line, highlight=False, markup=False)
            bar.update(task, completed=event.step.number, total=event.total)

        yield show


def render_report(report: StreamReport) -> None:
    """The search steps (and the changes between them) and the summary, as tables."""
    console = stdout_console()
    k = report.k
    fresh = any(step.fresh is not None for step in report.steps)
    table = new_table(
        f"stream {report.engine} on {report.dataset}: {report.runbook} [{report.entry}]"
    )
    for name in ("step", "changes", "live", f"recall@{k}", "p5", "short", "work", "QPS", "memory"):
        table.add_column(name, justify="left" if name == "changes" else "right")
    if fresh:
        table.add_column("fresh recall", justify="right")
        table.add_column("fresh work", justify="right")
    added = removed = replaced = 0
    for step in report.steps:
        if step.operation == "insert":
            added += step.changed
        elif step.operation == "delete":
            removed += step.changed
        elif step.operation == "replace":
            replaced += step.changed
        if step.operation != "search":
            continue
        changes = " ".join(
            text
            for text, count in (("+", added), ("-", removed), ("~", replaced))
            if count
            for text in [f"{text}{count:,}"]
        )
        added = removed = replaced = 0
        measured = step.search
        row = [str(step.step), changes or "-", f"{step.live:,}"]
        if measured is None:
            row += ["-"] * 6
        else:
            row += [
                f"{measured.recall:.4f}",
                f"{measured.p5_recall:.2f}",
                f"{measured.short_results:,}",
                format_count(measured.distance_computations),
                format_qps(measured.qps),
                format_bytes(measured.index_bytes),
            ]
        if fresh:
            built = step.fresh.measure if step.fresh is not None else None
            row += [
                "-" if built is None else f"{built.recall:.4f}",
                "-" if built is None else format_count(built.distance_computations),
            ]
        table.add_row(*row)
    print_table(console, table)
    summary = report.summary()
    drift = summary["drift"]
    if drift["compared_steps"] == 0:
        drift_text = "not measured (use --rebuild-every N)"
    elif drift["step"] is None:
        drift_text = f"never, over {drift['compared_steps']} compared steps"
    else:
        drift_text = (
            f"step {drift['step']} ({drift['reason']}: live recall "
            f"{drift['live_recall']:.4f} vs fresh {drift['fresh_recall']:.4f}, work "
            f"{format_count(drift['live_work'])} vs {format_count(drift['fresh_work'])})"
        )
    rows: list[tuple[str, Any]] = [
        ("search steps", summary["search_steps"]),
        (f"mean recall@{k} (big-ann score)", format_fraction(summary["mean_recall"], ".4f")),
        ("mean p5 recall", format_fraction(summary["mean_p5_recall"], ".4f")),
        ("lowest recall", format_fraction(summary["min_recall"], ".4f")),
        ("mean distance computations", format_count(summary["mean_distance_computations"])),
        ("short results", f"{summary['short_results']:,}"),
        ("ids returned that were not live", f"{summary['dead_ids']:,}"),
        ("rebuild pays off from", drift_text),
    ]
    if report.resumed_from:
        rows.append(("resumed after step", report.resumed_from))
    print_table(console, key_value_table("summary", rows))


@stream.command("run")
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.argument("data")
@click.option("-e", "--engine", required=True, help="Engine name (see `annkit engines`).")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A build or query parameter of the engine (repeatable).",
)
@click.option(
    "-o", "--output", required=True, help="Folder for the records (resumed if it exists)."
)
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours.")
@click.option("--entry", default=None, help="Runbook entry (default: DATA's name, else the only).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads of builds and inserts; 1 keeps a stream deterministic (resume gives the "
    "same records).",
)
@click.option(
    "--rebuild-every",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Every N-th search step, also measure a fresh build over the live set.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the exact truth of each step is cached (default OUT/truth).",
)
@click.option(
    "--ids-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="HDF5 file: each search step's returned ids as dataset step_<n>.",
)
@click.option("--plot", "plot_file", default=None, help="Also draw recall over the steps (PNG).")
@html_option(
    "Also write the steps (hover a step; switch the x axis between step, QPS and work, "
    "and the query slice)"
)
@click.option("--force", is_flag=True, help="Start OUT over instead of resuming it.")
@metric_option
@max_queries_option
@recall_option()
@search_threads_option
@timing_options
@json_option
@quiet_option
def run(
    runbook: str,
    data: str,
    engine: str,
    params: tuple[str, ...],
    output: str,
    k: int,
    entry: str | None,
    threads: int,
    rebuild_every: int | None,
    cache_dir: str | None,
    ids_out: str | None,
    plot_file: str | None,
    html_file: str | None,
    force: bool,
    metric: str | None,
    max_queries: int | None,
    recall_rule: str,
    search_threads: int,
    runs: int,
    qps_tolerance: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run RUNBOOK (big-ann-benchmarks' YAML) over the rows of DATA with one engine.

    Ids are DATA's row numbers. Each finished step is appended to OUT/steps.jsonl at once;
    run the same command again to resume an interrupted stream.
    """
    build, query = split_params(engine, parse_params(params))
    settings = StreamSettings(
        engine=engine,
        build_params=build,
        query_params=query,
        measure=Measure(
            k=k,
            runs=runs,
            qps_tolerance=qps_tolerance,
            recall_rule=recall_rule,
            search_threads=search_threads,
        ),
        threads=threads,
        rebuild_every=rebuild_every,
    )
    with stream_progress(quiet or as_json) as progress:
        report = run_stream(
            runbook,
            data,
            settings,
            output,
            entry=entry,
            metric=metric,
            max_queries=max_queries,
            cache_dir=cache_dir,
            force=force,
            ids_out=ids_out,
            progress=progress,
        )
    if plot_file is not None:
        plot_streams([report], plot_file)
    if html_file is not None:
        from annkit.stream.html_report import write_stream_html

        write_stream_html([report], html_file)
    if as_json:
        click.echo(to_json(report.to_dict()))
        return
    render_report(report)


@stream.command("make-runbook")
@click.argument("shape", type=click.Choice(SHAPES))
@click.argument("data")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="YAML.")
@click.option(
    "--searches", type=click.IntRange(min=2), default=10, show_default=True, help="Search steps."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random choices.")
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=None,
    help="sliding-window: live rows (default half); clustered: delete the oldest clusters "
    "past this many live rows (default: never).",
)
@click.option(
    "--clusters", type=click.IntRange(min=2), default=10, show_default=True, help="clustered."
)
@click.option(
    "--delete-share",
    type=float,
    default=0.5,
    show_default=True,
    help="random-deletes: share of the rows deleted by the end.",
)
@click.option(
    "--block", type=click.IntRange(min=1), default=None, help="random-deletes: ids per delete."
)
@click.option(
    "--data-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="clustered: the HDF5 copy of DATA with its rows grouped by cluster.",
)
@click.option("--entry", default=None, help="Entry name (default: the dataset's name).")
@metric_option
@json_option
def make_runbook_command(
    shape: str,
    data: str,
    output: str,
    searches: int,
    seed: int,
    window: int | None,
    clusters: int,
    delete_share: float,
    block: int | None,
    data_out: str | None,
    entry: str | None,
    metric: str | None,
    as_json: bool,
) -> None:
    """Write a runbook of SHAPE over the rows of DATA: sliding-window (insert the newest,
    delete the oldest), clustered (k-means clusters arrive one by one; writes --data-out)
    or random-deletes. Seeded."""
    made = make_runbook(
        shape,
        open_dataset(data, metric=metric),
        output,
        searches=searches,
        seed=seed,
        window=window,
        clusters=clusters,
        delete_share=delete_share,
        block=block,
        data_output=data_out,
        entry=entry,
    )
    if as_json:
        click.echo(to_json(made.to_dict()))
        return
    rows: list[tuple[str, Any]] = [
        ("runbook", made.output),
        ("entry", made.entry),
        ("shape", made.shape),
        ("steps", f"{made.steps:,} ({made.search_steps} searches)"),
        ("max_pts", f"{made.max_pts:,}"),
        ("seed", made.seed),
    ]
    if made.data_output:
        rows.append(("data", made.data_output))
    print_table(stdout_console(), key_value_table("runbook", rows))


@stream.command("plot")
@click.argument("streams", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Image file (.png, .svg, .pdf), or an .html file: one self-contained interactive "
    "page (hover a step; x axis step, QPS or work; query slices; opens offline).",
)
@click.option("--title", default=None, help="Plot title.")
def plot(streams: tuple[str, ...], output: str, title: str | None) -> None:
    """Draw recall (mean and p5) over the steps of one or more finished streams (their
    output folders), with fresh builds and distance computations where measured; with
    -o OUT.html, write them as an interactive HTML page instead."""
    reports = [read_report(path) for path in streams]
    if Path(output).suffix.lower() in (".html", ".htm"):
        from annkit.stream.html_report import write_stream_html

        click.echo(str(write_stream_html(reports, output)))
        return
    written = plot_streams(reports, output, title=title)
    click.echo(str(written))


COMMANDS = [stream]
