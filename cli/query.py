"""``annkit query``: search an index bundle and write the neighbours."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from annkit.bundle import load_bundle
from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import json_option, param_option, parse_params
from annkit.cli.render import format_params, key_value_table
from annkit.errors import InputError
from annkit.io import write_neighbors_hdf5, write_vectors
from annkit.sources import open_queries


@click.command()
@click.argument("index", type=click.Path())
@click.argument("queries")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Neighbours per query.")
@param_option("Query parameter, e.g. -p ef=64 (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output: .hdf5 (neighbors + distances) or .npy (ids).")
@json_option
def query(index: str, queries: str, k: int, params: tuple[str, ...], output: str,
          as_json: bool) -> None:
    """Search INDEX with QUERIES (a vector file or a dataset HDF5, whose test set is used)."""
    suffix = Path(output).suffix.lower()
    if suffix not in (".hdf5", ".h5", ".npy"):
        raise InputError(f"{output}: output must end in .hdf5, .h5 or .npy")
    bundle = load_bundle(index)
    bundle.engine.set_query_params(**parse_params(params))
    vectors = open_queries(queries, bundle.manifest["metric"])
    if vectors.shape[1] != bundle.manifest["dim"]:
        raise InputError(
            f"{queries}: queries have dimension {vectors.shape[1]}, "
            f"index {index} has {bundle.manifest['dim']}"
        )
    result = bundle.engine.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
    if suffix == ".npy":
        write_vectors(output, result.ids)
    else:
        write_neighbors_hdf5(output, result.ids, result.distances)
    summary = {"output": output, "queries": int(len(vectors)), "k": k,
               "engine": bundle.engine.name, "query_params": dict(bundle.engine.query)}
    if as_json:
        click.echo(to_json(summary))
        return
    stdout_console().print(key_value_table("query", [
        ("output", output), ("queries", f"{len(vectors):,}"), ("k", k),
        ("engine", bundle.engine.name), ("query params", format_params(bundle.engine.query)),
    ]))


COMMANDS = [query]
