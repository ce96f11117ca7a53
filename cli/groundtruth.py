"""``annkit groundtruth``: exact k-NN of queries over a base set, written as HDF5."""

from __future__ import annotations

import click

from annkit.cli.console import progress_bar, stdout_console, to_json
from annkit.cli.options import (
    LOCAL_RAY,
    json_option,
    label_options,
    max_queries_option,
    memory_check_option,
    metric_option,
    quiet_option,
    ray_option,
    search_work_threads_option,
)
from annkit.cli.render import key_value_table
from annkit.groundtruth import write_ground_truth


@click.command()
@click.argument("base")
@click.argument("queries", required=False)
@click.option(
    "-k", type=click.IntRange(min=1), default=100, show_default=True, help="Neighbours per query."
)
@metric_option
@search_work_threads_option
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write."
)
@click.option(
    "--ids-only",
    is_flag=True,
    help="Write only neighbors/distances (with the metric, k and source as attributes), "
    "not a complete dataset file.",
)
@max_queries_option
@label_options
@memory_check_option
@ray_option(
    "Shard the base over Ray tasks: a new local Ray instance, or the cluster at "
    "--ray=HOST:PORT (extra annkit[ray]). Same output bit for bit."
)
@json_option
@quiet_option
def groundtruth(
    base: str,
    queries: str | None,
    k: int,
    metric: str | None,
    threads: int | None,
    output: str,
    ids_only: bool,
    max_queries: int | None,
    base_labels_file: str | None,
    query_labels_file: str | None,
    skip_memory_check: bool,
    ray_address: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Exact top-k neighbours of QUERIES in BASE by brute force (faiss, bounded memory).

    BASE alone may be a dataset HDF5 (train + test). The output is a complete
    ann-benchmarks dataset (train, test, neighbors, distances) unless --ids-only.

    With labels (a dataset's train_labels / test_labels, or --base-labels and
    --query-labels), each query's neighbours are taken among the base vectors carrying all
    of its labels; a query with fewer than k such vectors gets a shorter row, padded with
    id -1 and distance +inf. The labels go into the output.
    """
    compute = None
    if ray_address is not None:  # Ray is imported only when asked for
        from annkit.distributed.ray_backend import ray_compute

        compute = ray_compute(None if ray_address == LOCAL_RAY else ray_address)
    with progress_bar("ground truth", quiet or as_json) as progress:
        run = write_ground_truth(
            base,
            queries,
            k,
            output,
            metric=metric,
            ids_only=ids_only,
            threads=threads,
            memory_check=not skip_memory_check,
            progress=progress,
            compute=compute,
            max_queries=max_queries,
            base_labels=base_labels_file,
            query_labels=query_labels_file,
        )
    if as_json:
        click.echo(to_json(run.to_dict()))
        return
    stdout_console().print(
        key_value_table(
            "ground truth",
            [
                ("output", run.output),
                ("queries x base", f"{run.queries:,} x {run.base:,}"),
                ("k", run.k),
                ("metric", run.metric),
                *(
                    [
                        ("filtered queries", f"{run.filtered_queries:,}"),
                        ("fewer than k passing", f"{run.short_queries:,}"),
                    ]
                    if run.filtered_queries is not None and run.short_queries is not None
                    else []
                ),
                ("seconds", f"{run.seconds:.2f}"),
            ],
        )
    )


COMMANDS = [groundtruth]
