"""``annkit query``: search an index bundle and write the neighbours."""

from __future__ import annotations

import click

from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import json_option, max_queries_option, param_option, parse_params
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
@json_option
def query(
    index: str,
    queries: str,
    k: int,
    params: tuple[str, ...],
    output: str,
    policy: str | None,
    max_queries: int | None,
    as_json: bool,
) -> None:
    """Search INDEX with QUERIES (a vector file, or an HDF5 file whose test set is used;
    train is optional)."""
    run = query_to_file(index, queries, k, output, parse_params(params), policy, max_queries)
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
