"""``annkit datasets``: the ann-benchmarks catalogue (``list``, ``get``), and a long-tail
benchmark from a query log (``from-text``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from annkit.catalogue import DATA_DIR_ENV, MIRROR_ENV, OFFLINE_ENV
from annkit.cli.console import stderr_console, stdout_console, to_json
from annkit.cli.options import json_option, quiet_option, threads_option
from annkit.cli.render import format_bytes, key_value_table, new_table
from annkit.download import (
    DEFAULT_TIMEOUT,
    DownloadedDataset,
    DownloadProgress,
    get_dataset,
    list_catalogue,
)
from annkit.fromtext import (
    dataset_from_text,
    read_documents,
    read_query_log,
    sentence_transformer_encoder,
)
from annkit.types import METRIC_ALIASES


@click.group()
def datasets() -> None:
    """Download the ann-benchmarks datasets, or make a dataset from a query log."""


dir_option = click.option(
    "--dir",
    "directory",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Download directory (default ${DATA_DIR_ENV}, else ~/.cache/annkit/datasets).",
)


@datasets.command("list", short_help="Show the ann-benchmarks catalogue.")
@dir_option
@json_option
def list_command(directory: str | None, as_json: bool) -> None:
    """The ann-benchmarks catalogue: each dataset's dimension, metric, base and query
    counts and approximate size, and whether it is in the download directory. Every name
    works with 'annkit datasets get NAME'; once downloaded, wherever a dataset is accepted.
    """
    rows = list_catalogue(directory)
    if as_json:
        click.echo(to_json([row.to_dict() for row in rows]))
        return
    table = new_table("ann-benchmarks datasets")
    for header in ("name", "dim", "metric", "base", "queries", "size", "status"):
        justify = "left" if header in ("name", "metric", "status") else "right"
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        entry = row.entry
        if row.path is not None:
            status = "downloaded"
        elif not entry.readable:
            status = "unusable"  # sparse sets or bit vectors: annkit cannot read them
        else:
            status = ""
        table.add_row(
            entry.name,
            _count(entry.dim),
            entry.metric,
            _count(entry.train),
            _count(entry.test),
            "-" if entry.approx_size_mb is None else f"{entry.approx_size_mb:,.0f} MB",
            status,
        )
    stdout_console().print(table)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


#: the bar's description for each step of a download
_STEP_LABELS = {"download": "downloading", "sha256": "SHA-256", "structure": "checking"}


@contextmanager
def download_progress(quiet: bool) -> Iterator[Callable[[DownloadProgress], None]]:
    """A callback for :func:`annkit.download.get_dataset` on stderr: on a terminal a bar
    with bytes, speed and ETA (each step's line printed above it); otherwise one plain line
    per step; nothing when ``quiet``."""
    console = stderr_console()
    if quiet:
        yield lambda report: None
        return
    if not console.is_terminal:

        def plain(report: DownloadProgress) -> None:
            if report.message:
                console.print(report.message, markup=False, highlight=False, soft_wrap=True)

        yield plain
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("", total=None)

        def bar(report: DownloadProgress) -> None:
            if report.message:
                progress.console.print(report.message, markup=False, highlight=False)
                label = _STEP_LABELS.get(report.step, report.step)
                progress.reset(task, description=label, total=report.total)
            progress.update(task, completed=report.done, total=report.total)

        yield bar


@datasets.command("get", short_help="Download and verify a dataset by name or URL.")
@click.argument("spec", metavar="NAME|URL")
@dir_option
@click.option(
    "--sha256", metavar="HEX", default=None, help="SHA-256 (64 hex digits) the file must have."
)
@click.option(
    "--max-vectors",
    metavar="N",
    type=click.IntRange(min=1),
    default=None,
    help="Keep the first N vectors of a .fbin/.u8bin/.i8bin file (only those bytes are read).",
)
@click.option(
    "--mirror",
    metavar="URL|DIR",
    default=None,
    help=f"URL or folder serving the catalogue's files (default ${MIRROR_ENV}).",
)
@click.option(
    "--offline",
    is_flag=True,
    default=False,
    help=f"Use only the download directory, never the network (also {OFFLINE_ENV}=1).",
)
@click.option(
    "--timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the server.",
)
@json_option
@quiet_option
def get_command(
    spec: str,
    directory: str | None,
    sha256: str | None,
    max_vectors: int | None,
    mirror: str | None,
    offline: bool,
    timeout: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Download an ann-benchmarks dataset by NAME (see 'annkit datasets list') or any
    .hdf5 / .fbin / .u8bin / .i8bin / .ibin file by URL into the download directory. An
    interrupted download resumes where it stopped the next time. The file appears only
    after its size, structure and SHA-256 check out; the first download of a name records
    its SHA-256 (in DIR/annkit-datasets.json) and later ones must match it. Afterwards
    NAME works wherever a dataset is accepted, e.g. 'annkit evaluate IDX NAME'.
    """
    with download_progress(quiet or as_json) as progress:
        got = get_dataset(
            spec,
            directory=directory,
            sha256=sha256,
            max_vectors=max_vectors,
            mirror=mirror,
            offline=True if offline else None,
            timeout=timeout,
            progress=progress,
        )
    if as_json:
        click.echo(to_json(got.to_dict()))
        return
    stdout_console().print(key_value_table(f"dataset {got.name}", _get_rows(got)))


_CHECKS = {
    "--sha256": "matches --sha256",
    "catalogue": "matches the catalogue",
    "registry": "matches the one recorded at the first download",
    "recorded": "recorded now (none was known)",
}


def _get_rows(got: DownloadedDataset) -> list[tuple[str, object]]:
    if not got.transferred:
        transfer = "already in the directory (checked, not downloaded)"
    elif got.resumed_from:
        transfer = f"resumed at {format_bytes(got.resumed_from)}"
    else:
        transfer = "downloaded"
    return [
        ("file", str(got.path)),
        ("source", got.url),
        ("size", f"{format_bytes(got.size)} ({got.size:,} bytes)"),
        ("sha256", got.sha256),
        ("checksum", _CHECKS[got.sha256_check]),
        ("contents", got.structure),
        ("transfer", transfer),
    ]


@datasets.command("from-text")
@click.option(
    "--docs",
    "docs_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Documents, one per line (UTF-8): the base vectors.",
)
@click.option(
    "--queries",
    "queries_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Query log, one 'query<TAB>count' per line: the queries and their weights.",
)
@click.option(
    "--model",
    required=True,
    type=click.Path(file_okay=False),
    help="Local folder of a saved sentence-transformers model (never downloaded).",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="HDF5 dataset to write."
)
@click.option(
    "--metric",
    type=click.Choice(sorted(METRIC_ALIASES), case_sensitive=False),
    default="angular",
    show_default=True,
    help="Distance for the ground truth.",
)
@click.option(
    "-k", type=click.IntRange(min=1), default=100, show_default=True, help="Ground-truth depth."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Texts per model call.",
)
@threads_option
@json_option
@quiet_option
def from_text(
    docs_path: str,
    queries_path: str,
    model: str,
    output: str,
    metric: str,
    k: int,
    batch_size: int,
    threads: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Embed DOCS and the distinct queries of a query log with a local model, compute the
    exact ground truth and store the counts as query weights, so the head / torso / tail
    bands of every annkit command follow your own traffic. Needs: pip install 'annkit[embed]'.
    """
    documents = read_documents(docs_path)
    queries, counts = read_query_log(queries_path)
    encode = sentence_transformer_encoder(model, batch_size)
    console = stderr_console()

    def progress(message: str) -> None:
        if not (quiet or as_json):
            console.print(f"[dim]{escape(message)}[/dim]", highlight=False)

    made = dataset_from_text(
        documents,
        queries,
        counts,
        encode,
        output,
        metric=metric,
        k=k,
        threads=threads,
        progress=progress,
    )
    summary = {
        "output": str(made.path),
        "documents": made.documents,
        "queries": made.queries,
        "dim": made.dim,
        "k": made.k,
        "metric": made.metric,
        "total_count": made.total_count,
    }
    if as_json:
        click.echo(to_json(summary))
        return
    stdout_console().print(
        key_value_table(
            "dataset from text",
            [
                ("output", str(made.path)),
                ("documents", f"{made.documents:,}"),
                ("queries", f"{made.queries:,} distinct, {made.total_count:,.0f} in the log"),
                ("dimension", made.dim),
                ("ground truth", f"top-{made.k}, {made.metric}"),
            ],
        )
    )


COMMANDS = [datasets]
