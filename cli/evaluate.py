"""``annkit evaluate``: recall@k, QPS and latency of one index at one query setting."""

from __future__ import annotations

import click

from annkit.bundle import load_bundle
from annkit.cli.console import progress_bar, stdout_console, to_json
from annkit.cli.options import (
    clients_option,
    dataset_options,
    echo_notices,
    filter_strategy_option,
    json_option,
    param_option,
    parse_cuts,
    parse_params,
    quiet_option,
    recall_option,
    search_threads_option,
    timing_options,
)
from annkit.cli.render import evaluation_table, slice_table
from annkit.evaluate import measure_setting
from annkit.io.table import write_csv_columns
from annkit.measure import Measure, parse_depths
from annkit.sources import open_dataset, query_texts
from annkit.types import Evaluation


@click.command()
@click.argument("index", type=click.Path())
@dataset_options
@filter_strategy_option
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Recall depth.")
@param_option("Query parameter, e.g. -p ef=64 (repeatable).")
@click.option(
    "--mode",
    type=click.Choice(["batch", "single"]),
    default=None,
    help="batch: one call; single: one query per call + latency. "
    "[default: batch; single with --clients]",
)
@timing_options
@search_threads_option
@clients_option
@click.option("--all-slices", is_flag=True, help="Show every hardness quartile too.")
@recall_option()
@click.option(
    "--recall-at",
    "recall_depths",
    multiple=True,
    metavar="A@B",
    help="Also score recall A@B: the share of the true top-A found among the first B "
    "returned, e.g. --recall-at 10@100 with -k 100 for a re-rank pipeline (repeatable; "
    "B <= k).",
)
@click.option(
    "--bands",
    default="0.2,0.6",
    show_default=True,
    help="Frequency band cut points (shares of queries, most frequent first).",
)
@click.option(
    "--per-query",
    "per_query_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write per-query recall, weight, band and hardness to this .csv file.",
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False),
    default=None,
    help="Per-query effort policy from annkit adapt (instead of -p for the effort).",
)
@json_option
@quiet_option
def evaluate(
    index: str,
    data: str | None,
    queries_file: str | None,
    groundtruth_file: str | None,
    weights_file: str | None,
    metric: str | None,
    max_queries: int | None,
    dataset_name: str | None,
    base_labels_file: str | None,
    query_labels_file: str | None,
    filter_strategy: str,
    k: int,
    params: tuple[str, ...],
    mode: str | None,
    runs: int,
    qps_tolerance: float,
    search_threads: int,
    clients: int | None,
    all_slices: bool,
    recall_rule: str,
    recall_depths: tuple[str, ...],
    bands: str,
    per_query_file: str | None,
    policy: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Measure INDEX on DATA (a dataset HDF5 or bundled name, default words-10k; or base
    vectors with --queries). Ground truth comes from DATA or is computed."""
    bundle = load_bundle(index)
    dataset = open_dataset(
        data,
        queries=queries_file,
        groundtruth=groundtruth_file,
        weights=weights_file,
        metric=metric,
        max_queries=max_queries,
        name=dataset_name,
        fallback_metric=(f"index {index}", bundle.manifest["metric"]),
        base_labels=base_labels_file,
        query_labels=query_labels_file,
    )
    measure = Measure(
        k=k,
        mode=mode or ("single" if clients is not None else "batch"),
        runs=runs,
        qps_tolerance=qps_tolerance,
        recall_rule=recall_rule,
        search_threads=search_threads,
        clients=clients,
        filter_strategy=filter_strategy,
        depths=parse_depths(recall_depths),
    )
    if policy is not None:
        from annkit.adaptive.evaluate import evaluate_file_policy

        evaluation = evaluate_file_policy(
            bundle, dataset, policy, measure, parse_params(params), cuts=parse_cuts(bands)
        )
    else:
        with progress_bar(f"searching ({measure.mode})", quiet or as_json) as progress:
            evaluation = measure_setting(
                bundle,
                dataset,
                measure,
                parse_params(params),
                progress=progress,
                cuts=parse_cuts(bands),
            )
    echo_notices(*evaluation.notices)
    if per_query_file:
        write_csv_columns(per_query_file, per_query_columns(evaluation, query_texts(dataset)))
    if as_json:
        click.echo(to_json(evaluation.to_dict()))
        return
    console = stdout_console()
    console.print(evaluation_table(evaluation))
    if evaluation.slices:
        console.print(slice_table(evaluation.slices, evaluation.k, full=all_slices))


def per_query_columns(evaluation: Evaluation, text: list[str] | None) -> dict:
    """Columns of the per-query table: recall, distance computations (empty where the engine
    cannot count), weight, band, hardness, text when known."""
    n_queries = len(evaluation.per_query_recall)
    columns: dict = {"query": list(range(n_queries))}
    if text is not None and len(text) == n_queries:
        columns["text"] = text
    columns[f"recall@{evaluation.k}"] = evaluation.per_query_recall
    if evaluation.returned_ids is not None:  # the k ids returned, nearest first (-1 = none)
        columns["returned_ids"] = [
            " ".join(str(int(value)) for value in row) for row in evaluation.returned_ids
        ]
    counts = evaluation.per_query_distance_computations
    columns["distance_computations"] = (
        [None] * n_queries if counts is None else [int(value) for value in counts]
    )
    profile = evaluation.profile
    if profile is not None:
        if profile.weights is not None:
            columns["weight"] = profile.weights
        if profile.bands is not None:
            columns["band"] = profile.bands.tolist()
        columns.update(profile.hardness)
    return columns


COMMANDS = [evaluate]
