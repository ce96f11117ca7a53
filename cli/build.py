"""``annkit build``: build an index bundle from a vector file or dataset."""

from __future__ import annotations

import os
from pathlib import Path

import click

from annkit.bundle import build_index, fingerprint_vectors, save_bundle
from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import (
    json_option,
    memory_check_option,
    metric_option,
    param_option,
    parse_params,
    threads_option,
)
from annkit.cli.render import format_bytes, format_params, key_value_table
from annkit.engines import engine_names, get_engine
from annkit.errors import InputError
from annkit.sources import open_base


@click.command()
@click.argument("data", required=False)
@click.option("-e", "--engine", "engine_name", required=True,
              help="Engine: hnsw, annoy, ivfpq or flat (see `annkit engines`).")
@param_option("Build parameter, e.g. -p M=16 -p ef_construction=200 (repeatable).")
@metric_option
@threads_option
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Index directory to write.")
@click.option("--force", is_flag=True, help="Replace an existing index directory.")
@memory_check_option
@json_option
def build(data: str | None, engine_name: str, params: tuple[str, ...], metric: str | None,
          threads: int | None, output: str, force: bool, skip_memory_check: bool,
          as_json: bool) -> None:
    """Build an index over DATA (a vector file, a dataset HDF5's train set, or a bundled
    dataset name; default words-10k) and write it as a bundle directory."""
    engine_class = get_engine(engine_name)
    build_params = parse_params(params)
    engine_class(metric or "euclidean", 1, **build_params)  # validate params before loading data
    base, chosen_metric, name = open_base(data, metric)
    if Path(output).exists() and not force:
        raise InputError(f"{output} already exists (use --force to replace it)")
    threads = threads or os.cpu_count() or 1
    engine, seconds = build_index(engine_name, base, chosen_metric, build_params, threads,
                                  memory_check=not skip_memory_check)
    path = save_bundle(engine, output, build_seconds=seconds, overwrite=force, threads=threads,
                       dataset_fingerprint=fingerprint_vectors(base), dataset_name=name)
    index_bytes = sum(f.stat().st_size for f in path.iterdir() if f.name != "manifest.json")
    summary = {
        "index": str(path), "engine": engine.name, "build_params": engine.resolved_build_params(),
        "metric": chosen_metric, "dim": engine.dim, "count": engine.count,
        "build_seconds": seconds, "index_bytes": index_bytes, "threads": threads,
    }
    if as_json:
        click.echo(to_json(summary))
        return
    stdout_console().print(key_value_table("index built", [
        ("index", path), ("engine", engine.name),
        ("build params", format_params(summary["build_params"])),
        ("vectors", f"{engine.count:,} x {engine.dim} ({chosen_metric})"),
        ("build seconds", f"{seconds:.2f} ({threads} threads)"),
        ("index size", format_bytes(index_bytes)),
    ]))


@click.command()
@json_option
def engines(as_json: bool) -> None:
    """List the engines with their build and query parameters."""
    listing = {}
    for name in engine_names():
        engine_class = get_engine(name)
        defaults = {p: s.default for p, s in engine_class.build_params.items()}
        listing[name] = {
            "description": engine_class.description,
            "effort_param": engine_class.effort_param_for(defaults),
            "build_params": {p: {"type": s.type.__name__, "default": s.default, "help": s.help}
                             for p, s in engine_class.build_params.items()},
            "query_params": {p: {"type": s.type.__name__, "default": s.default, "help": s.help}
                             for p, s in engine_class.query_specs(defaults).items()},
        }
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
    stdout_console().print(table)


COMMANDS = [build, engines]
