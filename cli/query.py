"""``annkit query``: search an index bundle and write the neighbours."""

from __future__ import annotations

import click

from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import (
    filter_strategy_option,
    json_option,
    max_queries_option,
    param_option,
    parse_params,
)
from annkit.cli.render import format_params, key_value_table
from annkit.query import query_to_file


@click.command()
@click.argument("index", type=click.Path())
@click.argument("queries")
@click.option(
    "-k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours per query."
)
@param_option("Query parameter, e.g. -p ef=64 (repeatable).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output: .hdf5 (neighbors + distances) or .npy (ids).",
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False),
    default=None,
    help="Per-query effort policy from annkit adapt.",
)
@max_queries_option
@click.option(
    "--query-labels",
    "query_labels",
    type=click.Path(dir_okay=False),
    default=None,
    help="The queries' labels (.spmat, or an HDF5 file's test_labels group; a queries HDF5 "
    "file's own group is used when present): each query searches with its filter over the "
    "labels the index keeps.",
)
@filter_strategy_option
@click.option(
    "--base",
    "base",
    default=None,
    metavar="DATA",
    help="The indexed base vectors (a dataset or vector file): the subset strategy, and "
    "auto's use of it, search them.",
)
@json_option
def query(
    index: str,
    queries: str,
    k: int,
    params: tuple[str, ...],
    output: str,
    policy: str | None,
    max_queries: int | None,
    query_labels: str | None,
    filter_strategy: str,
    base: str | None,
    as_json: bool,
) -> None:
    """Search INDEX with QUERIES (a vector file, or an HDF5 file whose test set is used;
    train is optional)."""
    run = query_to_file(
        index,
        queries,
        k,
        output,
        parse_params(params),
        policy,
        max_queries,
        query_labels=query_labels,
        filter_strategy=filter_strategy,
        base=base,
    )
    if as_json:
        click.echo(to_json(run.to_dict()))
        return
    stdout_console().print(
        key_value_table(
            "query",
            [
                ("output", run.output),
                ("queries", f"{run.queries:,}"),
                ("k", run.k),
                ("engine", run.engine),
                ("query params", format_params(run.query_params)),
            ],
        )
    )


COMMANDS = [query]
