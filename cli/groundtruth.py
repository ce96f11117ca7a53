"""``annkit groundtruth``: exact k-NN of queries over a base set, written as HDF5."""

from __future__ import annotations

import time

import click

from annkit.cli.console import progress_bar, stdout_console, to_json
from annkit.cli.options import (
    json_option,
    memory_check_option,
    metric_option,
    quiet_option,
    threads_option,
)
from annkit.cli.render import key_value_table
from annkit.groundtruth import BLOCK_BYTES, compute_ground_truth
from annkit.io import write_dataset_hdf5, write_neighbors_hdf5
from annkit.memory import check_memory, ground_truth_bytes
from annkit.sources import open_dataset


@click.command()
@click.argument("base")
@click.argument("queries", required=False)
@click.option("-k", type=click.IntRange(min=1), default=100, show_default=True,
              help="Neighbours per query.")
@metric_option
@threads_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="HDF5 file to write.")
@click.option("--ids-only", is_flag=True,
              help="Write only neighbors/distances, not a complete dataset file.")
@memory_check_option
@json_option
@quiet_option
def groundtruth(base: str, queries: str | None, k: int, metric: str | None,
                threads: int | None, output: str, ids_only: bool, skip_memory_check: bool,
                as_json: bool, quiet: bool) -> None:
    """Exact top-k neighbours of QUERIES in BASE by brute force (faiss, bounded memory).

    BASE alone may be a dataset HDF5 (train + test). The output is a complete
    ann-benchmarks dataset (train, test, neighbors, distances) unless --ids-only.
    """
    dataset = open_dataset(base, queries=queries, metric=metric)
    check_memory(
        ground_truth_bytes(dataset.n_base, dataset.n_queries, dataset.dim, k,
                           BLOCK_BYTES // (4 * dataset.dim)),
        f"exact ground truth for {dataset.n_queries:,} queries over {dataset.n_base:,} vectors",
        "split the queries into smaller files", force=skip_memory_check)
    started = time.perf_counter()
    with progress_bar("ground truth", quiet or as_json) as progress:
        truth = compute_ground_truth(dataset.base, dataset.queries, k, dataset.metric,
                                     threads=threads, progress=progress)
    seconds = time.perf_counter() - started
    if ids_only:
        write_neighbors_hdf5(output, truth.ids, truth.distances)
    else:
        write_dataset_hdf5(output, base=dataset.base, queries=dataset.queries,
                           metric=dataset.metric, neighbors=truth.ids,
                           distances=truth.distances, weights=dataset.weights)
    summary = {"output": output, "queries": dataset.n_queries, "base": dataset.n_base,
               "k": int(truth.ids.shape[1]), "metric": dataset.metric, "seconds": seconds,
               "queries_per_second": dataset.n_queries / seconds if seconds > 0 else None}
    if as_json:
        click.echo(to_json(summary))
        return
    stdout_console().print(key_value_table("ground truth", [
        ("output", output), ("queries x base", f"{dataset.n_queries:,} x {dataset.n_base:,}"),
        ("k", summary["k"]), ("metric", dataset.metric), ("seconds", f"{seconds:.2f}"),
    ]))


COMMANDS = [groundtruth]
