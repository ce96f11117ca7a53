"""``annkit build``: build an index bundle from a vector file or dataset."""

from __future__ import annotations

from typing import Any

import click

from annkit.bundle import build_bundle
from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import (
    echo_notices,
    json_option,
    memory_check_option,
    metric_option,
    param_option,
    parse_params,
    threads_option,
)
from annkit.cli.render import format_bytes, format_params, key_value_table
from annkit.engines import engine_names, get_engine
from annkit.engines.base import plugin_errors, unavailable_engines
from annkit.sources import default_data_notice


@click.command()
@click.argument("data", required=False)
@click.option(
    "-e",
    "--engine",
    "engine_name",
    required=True,
    help="Engine name (every registered engine: see `annkit engines`).",
)
@param_option("Build parameter, e.g. -p M=16 -p ef_construction=200 (repeatable).")
@metric_option
@threads_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Index directory to write.",
)
@click.option("--force", is_flag=True, help="Replace an existing index directory.")
@memory_check_option
@json_option
def build(
    data: str | None,
    engine_name: str,
    params: tuple[str, ...],
    metric: str | None,
    threads: int | None,
    output: str,
    force: bool,
    skip_memory_check: bool,
    as_json: bool,
) -> None:
    """Build an index over DATA (a vector file, a dataset HDF5's train set, or a bundled
    dataset name; default words-10k) and write it as a bundle directory."""
    echo_notices(default_data_notice(data))
    built = build_bundle(
        data,
        engine_name,
        output,
        params=parse_params(params),
        metric=metric,
        threads=threads,
        overwrite=force,
        memory_check=not skip_memory_check,
    )
    if as_json:
        click.echo(to_json(built.to_dict()))
        return
    stdout_console().print(
        key_value_table(
            "index built",
            [
                ("index", built.index),
                ("engine", built.engine),
                ("build params", format_params(built.build_params)),
                ("vectors", f"{built.count:,} x {built.dim} ({built.metric})"),
                ("build seconds", f"{built.build_seconds:.2f} ({built.threads} threads)"),
                ("index size", format_bytes(built.index_bytes)),
            ],
        )
    )


@click.command()
@json_option
def engines(as_json: bool) -> None:
    """List the engines with their build and query parameters."""
    listing: dict[str, dict[str, Any]] = {}
    for name in engine_names():
        engine_class = get_engine(name)
        defaults = {p: s.default for p, s in engine_class.build_specs.items()}
        listing[name] = {
            "description": engine_class.description,
            "effort_param": engine_class.effort_param_for(defaults),
            "counts_distances": engine_class.counts_distances,
            "build_params": {
                p: {"type": s.type.__name__, "default": s.default, "help": s.help}
                for p, s in engine_class.build_specs.items()
            },
            "query_params": {
                p: {"type": s.type.__name__, "default": s.default, "help": s.help}
                for p, s in engine_class.query_specs(defaults).items()
            },
        }
    for plugin, reason in plugin_errors().items():
        click.echo(f"plugin {plugin} left out: {reason}", err=True)
    missing = unavailable_engines()
    for name, reason in missing.items():
        click.echo(f"engine {name} not available: {reason}", err=True)
    if as_json:
        click.echo(to_json(listing))
        return
    from rich.table import Table

    table = Table(title="engines", title_justify="left")
    for column in ("engine", "kind", "parameter", "default", "meaning"):
        table.add_column(column)
    for name, entry in listing.items():
        table.add_row(name, entry["description"], "", "", "")
        for kind in ("build_params", "query_params"):
            for param, spec in entry[kind].items():
                default = "auto" if spec["default"] is None else spec["default"]
                table.add_row("", kind.split("_")[0], param, str(default), spec["help"])
    for name, reason in missing.items():
        table.add_row(name, f"not available: {reason}", "", "", "")
    stdout_console().print(table)


COMMANDS = [build, engines]
