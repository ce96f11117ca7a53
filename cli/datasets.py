"""``annkit datasets``: the bundled datasets, and a long-tail benchmark from a query log."""

from __future__ import annotations

import click
from rich.markup import escape

from annkit.cli.console import stderr_console, stdout_console, to_json
from annkit.cli.options import json_option, quiet_option, threads_option
from annkit.cli.render import key_value_table
from annkit.fromtext import (
    dataset_from_text,
    read_documents,
    read_query_log,
    sentence_transformer_encoder,
)
from annkit.types import METRIC_ALIASES


@click.group()
def datasets() -> None:
    """Make datasets annkit can benchmark on."""


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
