"""``annkit adapt``: train a per-query effort policy for an index and show, on queries it
never trained on, whether adaptive effort helps the tail, by how much and at what cost."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from annkit.adaptive import AdaptConfig, adapt, save_policy
from annkit.adaptive.policy import KINDS, STOPPING_KINDS
from annkit.adaptive.run import AdaptReport, applicable_kinds, training_dataset
from annkit.bundle import load_bundle
from annkit.cli.console import stdout_console, step_messages, to_json
from annkit.cli.options import (
    dataset_options,
    html_option,
    json_option,
    parse_grid,
    quiet_option,
)
from annkit.errors import InputError
from annkit.evaluate import refuse_filters
from annkit.io import read_vectors
from annkit.sources import open_dataset


def default_policy_path(index: str) -> Path:
    """``INDEX.policy.json`` beside the index directory."""
    path = Path(index)
    return path.with_name(f"{path.name}.policy.json")


@click.command("adapt")
@click.argument("index", type=click.Path())
@dataset_options
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Recall depth.")
@click.option(
    "--target",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Mean recall@k the saved policy must reach on its training queries.",
)
@click.option(
    "--train-queries",
    "train_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Train on these query vectors and score on DATA's queries (default: "
    "cross-fit over --folds folds of DATA's queries).",
)
@click.option(
    "--kind",
    type=click.Choice((*KINDS, *STOPPING_KINDS)),
    default="learned",
    show_default=True,
    help="Policy saved: learned (LightGBM) or threshold (one feature, two efforts); or, on an "
    "HNSW bundle annkit's own resumable search can read, a stopping rule inside the search: "
    "patience, resume, learned-resume, darth or ada-ef (docs/resumable.md).",
)
@click.option(
    "--kinds",
    "kinds_text",
    default="all",
    show_default=True,
    metavar="K1,K2,...",
    help="Kinds scored beside --kind: 'all' is every kind the index supports (the LightGBM "
    "ones when LightGBM is installed; the stopping rules when annkit's own resumable search "
    "can read the index), or a comma-separated list.",
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Cross-fitting folds (and inner folds for calibration).",
)
@click.option(
    "--centroids",
    type=click.IntRange(min=0),
    default=32,
    show_default=True,
    help="Coarse centroids for query-only features (each costs one distance).",
)
@click.option(
    "--grid",
    "grid_text",
    default=None,
    metavar="V1,V2,...",
    help="Effort values (default: the engine's grid with geometric midpoints).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every choice.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Policy file (default: INDEX.policy.json beside the index).",
)
@html_option(
    "Also write the frontiers and the comparison (hover a point, switch QPS / work and "
    "the query slice)"
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing policy file, and write the policy (exit 0) even when no "
    "policy beats uniform effort at any operating point (without it: exit 1, nothing "
    "written).",
)
@json_option
@quiet_option
def adapt_command(
    index: str,
    data: str | None,
    queries_file: str | None,
    groundtruth_file: str | None,
    weights_file: str | None,
    metric: str | None,
    max_queries: int | None,
    dataset_name: str | None,
    k: int,
    target: float,
    train_file: str | None,
    kind: str,
    kinds_text: str,
    folds: int,
    centroids: int,
    grid_text: str | None,
    seed: int,
    output: str | None,
    html_file: str | None,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train a per-query effort policy for INDEX on DATA's queries (default words-10k) and
    print the uniform, adaptive and oracle frontiers: mean and p5 recall, tail band, distance
    computations per query (the policy's own work included) and QPS."""
    target_path = Path(output) if output else default_policy_path(index)
    if target_path.exists() and not force:
        raise InputError(f"{target_path} already exists (use --force to replace it)")
    grid_values = parse_grid(grid_text, "--grid")
    grid = None if grid_values is None else [int(float(value)) for value in grid_values]
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
    )
    refuse_filters(dataset, "adapt")
    train = None
    if train_file is not None:
        train = training_dataset(dataset, read_vectors(train_file), Path(train_file).name)
    if kinds_text.strip() == "all":
        kinds = applicable_kinds(bundle.engine, kind)
    else:
        listed = [name.strip() for name in kinds_text.split(",") if name.strip()]
        kinds = (kind, *dict.fromkeys(name for name in listed if name != kind))
    config = AdaptConfig(k=k, folds=folds, seed=seed, n_centroids=centroids, kinds=kinds)
    with step_messages(quiet or as_json) as steps:
        report = adapt(
            bundle,
            dataset,
            k,
            target,
            train=train,
            config=config,
            grid=grid,
            progress=steps.say,
            steps=steps.advance,
        )
    written = bool(report.wins) or force
    if written:
        save_policy(report.policy, target_path)
    if html_file is not None:
        from annkit.bench.html_report import adapt_report_data, write_page

        write_page(adapt_report_data(report.to_dict()), html_file)
    if as_json:
        click.echo(
            to_json(
                {
                    **report.to_dict(),
                    "policy_file": str(target_path) if written else None,
                    "html": html_file,
                }
            )
        )
    else:
        render_report(report, kind, k, target, target_path if written else None)
        if html_file is not None:
            stdout_console().print(f"html: {html_file}", highlight=False, markup=False)
    if not report.wins and not force:  # --force: the user keeps the policy all the same
        raise SystemExit(1)


def render_report(report: AdaptReport, kind: str, k: int, target: float, path: Path | None) -> None:
    """The comparison table, one verdict per operating point, and what was written."""
    out = stdout_console()
    out.print(f"{report.mode}.")
    summary = report.to_dict()
    out.print(comparison_table(summary))
    for line in verdicts(summary):
        out.print(line, highlight=False, markup=False)
    if report.grid_note is not None:
        out.print(f"note: {report.grid_note}", highlight=False, markup=False)
    training = report.policy.training
    if not report.wins:
        written = (
            "the policy was written anyway (--force)"
            if path
            else "no policy file written (--force writes it anyway)"
        )
        out.print(
            "no policy beats uniform effort at any operating point here: use the uniform "
            f"setting; {written}.",
            highlight=False,
            markup=False,
        )
    else:
        out.print("policies win: " + "; ".join(report.wins), highlight=False, markup=False)
    for best in summary["best_kinds"]:
        choice = (
            f"{best['kind']} ({best['work_ratio']:.2f}x the work)"
            if best["kind"] is not None
            else "uniform effort (no kind keeps its recall and p5 with less work)"
        )
        out.print(
            f"best near recall {best['operating_point']:g}: {choice}",
            highlight=False,
            markup=False,
        )
    if path is not None:
        out.print(
            f"{kind} policy for mean recall@{k} >= {target:g} written to {path} "
            f"(on its training queries: recall {training.get('train_recall', 0):.4f}, "
            f"{training.get('train_work', 0):,.0f} work per query).",
            highlight=False,
            markup=False,
        )
    if not report.exact_counts:
        out.print(
            f"{report.policy.engine} cannot count distance computations: compare by QPS "
            "(work is null)."
        )


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_table(report: dict) -> Table:
    """Uniform vs each policy at the uniform settings nearest mean recall 0.9 / 0.95 / 0.99,
    each policy calibrated on its training queries to the uniform's recall or work."""
    param = report["param"]
    table = Table(
        title=f"adaptive vs uniform {param}, recall@{report['k']} on queries the "
        "policies never trained on",
        title_justify="left",
    )
    for column in ("search", "matched", "recall", "p5", "tail", "work/q", "x work", "QPS"):
        table.add_column(column, justify="left" if column in ("search", "matched") else "right")
    for entry in report["comparisons"]:
        for name, point in entry.items():
            if name in ("operating_point", "room"):
                continue
            if name == "uniform":
                label, matched = f"{param}={point['setting'][param]}", "-"
            else:
                label, _, rest = name.partition(" (")
                matched = rest.split(" ")[0]
            work = point["distance_computations"]
            table.add_row(
                label,
                matched,
                _cell(point["recall"]),
                _cell(point["p5_recall"], 2),
                _cell(point["tail_band_recall"]),
                "-" if work is None else f"{work:,.0f}",
                _cell(point.get("work_ratio"), 2),
                f"{point['qps']:,.0f}",
            )
        table.add_section()
    return table


def verdicts(report: dict) -> list[str]:
    """One line per operating point: does a policy beat uniform effort there?"""
    lines = []
    for entry in report["comparisons"]:
        uniform = entry["uniform"]
        param_value = uniform["setting"][report["param"]]
        parts = []
        for name, point in entry.items():
            if name in ("operating_point", "uniform", "room"):
                continue
            kind = name.split(" ")[0]
            if "recall matched" in name and point.get("work_ratio") is not None:
                parts.append(
                    f"{kind} {point['work_ratio']:.2f}x the work at recall "
                    f"{point['recall_change']:+.4f}"
                )
            elif "work matched" in name or "budget matched" in name:
                tail = point["tail_band_change"]
                parts.append(
                    f"{kind} p5 {point['p5_change']:+.2f}"
                    + ("" if tail is None else f", tail {tail:+.4f}")
                    + f" at {_cell(point.get('work_ratio'), 2)}x the work"
                )
        lines.append(
            f"near recall {entry['operating_point']:g} ({report['param']}="
            f"{param_value}): " + "; ".join(parts)
        )
        room = entry.get("room")
        if room and room["oracle_work_ratio"] is not None:
            restart = room["two_stage_oracle_work_ratio"]
            lines.append(
                f"  room there (uses the ground truth, a bound): each query at its own least "
                f"effort {room['oracle_work_ratio']:.2f}x the work; a first stage then one "
                "search again from scratch "
                + (
                    "-"
                    if restart is None
                    else f"{restart:.2f}x (first stage at {room['two_stage_first_effort']})"
                )
                + f", in {room['work_unit']}"
            )
    return lines


COMMANDS = [adapt_command]
