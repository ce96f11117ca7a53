"""``annkit explain``: one query's returned and true neighbours side by side, and the least
effort at which each missed one is found."""

from __future__ import annotations

import click

from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import (
    dataset_options,
    json_option,
    param_option,
    parse_grid,
    parse_params,
)
from annkit.cli.render import format_params, new_table, print_table
from annkit.explain import Explanation, Neighbour, explain_query


@click.command()
@click.argument("index", type=click.Path())
@dataset_options
@click.option(
    "--query",
    "query_row",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="The query's row number (0-based).",
)
@click.option(
    "--query-text",
    default=None,
    metavar="TEXT",
    help="The query by its text, or a unique start of it, any case (when the file has test_text).",
)
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Recall depth.")
@param_option("Query parameter, e.g. -p ef=64 (repeatable).")
@click.option(
    "--grid",
    "grid_text",
    default=None,
    metavar="V1,V2,...",
    help="Effort values bisected for each missed neighbour (default: the engine's effort grid).",
)
@json_option
def explain(
    index: str,
    data: str | None,
    queries_file: str | None,
    groundtruth_file: str | None,
    weights_file: str | None,
    metric: str | None,
    max_queries: int | None,
    dataset_name: str | None,
    query_row: int | None,
    query_text: str | None,
    k: int,
    params: tuple[str, ...],
    grid_text: str | None,
    as_json: bool,
) -> None:
    """Show why one query of DATA (default words-10k) fails on INDEX: each returned and
    each true neighbour side by side (id, exact distance, rank, text when the file has
    train_text), which true neighbours were missed, and the least effort (ef, search_k,
    nprobe) at which the index finds each missed one."""
    explanation = explain_query(
        index,
        data,
        query=query_row,
        query_text=query_text,
        k=k,
        query_params=parse_params(params),
        grid=parse_grid(grid_text, "--grid"),
        queries=queries_file,
        groundtruth=groundtruth_file,
        metric=metric,
        max_queries=max_queries,
        name=dataset_name,
    )
    if as_json:
        click.echo(to_json(explanation.to_dict()))
        return
    render_explanation(explanation)


#: what each search ending means, as printed
ENDINGS = {
    "wrong basin": "wrong basin: even its best result lies beyond the true top-k, so the "
    "search ended in another region",
    "low contrast": "low contrast: the missed neighbours are within 5% of its farthest "
    "result, barely nearer",
    "partial": "partial: the right region, but it stopped before clearly nearer neighbours",
}


def _cell(entry: Neighbour) -> tuple[str, str, str]:
    return str(entry.id), f"{entry.distance:.4f}", entry.text or ""


def render_explanation(result: Explanation) -> None:
    """Header line, the side-by-side table, and one line per missed neighbour."""
    out = stdout_console()
    name = f"query {result.query}" + (f" {result.query_text!r}" if result.query_text else "")
    out.print(
        f"{name} on {result.dataset} ({result.metric}), {result.engine} "
        f"{format_params(result.query_params)}: recall@{result.k} {result.recall:.2f} "
        f"(strict {result.strict_recall:.2f})",
        highlight=False,
        markup=False,
    )
    table = new_table("returned (left) and true (right) neighbours, nearest first")
    for column, justify in (
        ("rank", "right"),
        ("returned id", "right"),
        ("distance", "right"),
        ("text", "left"),
        ("ok", "left"),
        ("true id", "right"),
        ("distance", "right"),
        ("text", "left"),
        ("found", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for position in range(result.k):
        left = result.returned[position]
        right = result.truth[position]
        ok = "yes" if left.counted else "no"
        if right.found:
            found = "yes"
        elif right.least_effort is not None:
            found = f"missed ({result.param}={right.least_effort})"
        else:
            found = "missed"
        table.add_row(str(position + 1), *_cell(left), ok, *_cell(right), found)
    print_table(out, table)
    if result.hardness:
        out.print(
            "hardness: "
            + ", ".join(
                f"{name} {value.value:.3g} (harder than {value.harder_than:.0%} of queries)"
                for name, value in result.hardness.items()
            ),
            highlight=False,
            markup=False,
        )
    if result.ending is not None:
        best = min((e.distance for e in result.returned if e.id >= 0), default=float("nan"))
        out.print(
            f"search ended: {ENDINGS[result.ending]} (best returned at {best:.4f}; true "
            f"nearest at {result.truth[0].distance:.4f}, true #{result.k} at "
            f"{result.truth[-1].distance:.4f})",
            highlight=False,
            markup=False,
        )
    missed = result.missed
    if not missed:
        out.print("every true neighbour was returned", highlight=False)
        return
    for entry in missed:
        where = (
            f"found from {result.param}={entry.least_effort}"
            if entry.least_effort is not None
            else (
                f"not found within {result.param} <= {result.grid[-1]}"
                if result.param
                else "not found (exact engine)"
            )
        )
        text = f" {entry.text!r}" if entry.text else ""
        out.print(
            f"missed true #{entry.rank}: id {entry.id}{text} at {entry.distance:.4f}: {where}",
            highlight=False,
            markup=False,
        )


COMMANDS = [explain]
