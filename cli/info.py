"""``annkit info``: what a dataset file or an index bundle holds."""

from __future__ import annotations

from pathlib import Path

import click

from annkit.bundle import LABELS_FILE, MANIFEST, read_manifest
from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import json_option, label_options
from annkit.cli.render import format_bytes, format_params, key_value_table, new_table
from annkit.io import describe_file, resolve_dataset_path
from annkit.io.labels import SPMAT_SUFFIX, dataset_label_summary, describe_spmat
from annkit.labels import LabelSummary


def _percent(share: float) -> str:
    """A share as a percentage with enough digits for small selectivities."""
    if share == 0:
        return "0%"
    return f"{share * 100:.3g}%" if share < 0.01 else f"{share * 100:.1f}%"


def _label_tables(summary: LabelSummary) -> list:
    """The labels table and, with query labels, the share-passing bands table."""
    rows: list[tuple[str, object]] = [
        ("labels", f"{summary.n_labels:,}"),
        (
            "labels per vector",
            f"mean {summary.labels_per_vector_mean:.2f}, max {summary.labels_per_vector_max}, "
            f"{_percent(summary.share_without_labels)} without labels",
        ),
        (
            "most common",
            ", ".join(f"{name} {_percent(share)}" for name, share in summary.top_labels) or "-",
        ),
    ]
    if summary.queries is not None:
        rows.append(
            (
                "queries",
                f"{summary.queries:,} ({_percent(summary.unfiltered_share or 0.0)} unfiltered)",
            )
        )
        if summary.selectivity_percentiles:
            rows.append(
                (
                    "share passing (filtered)",
                    " ".join(
                        f"{name} {_percent(value)}"
                        for name, value in summary.selectivity_percentiles
                    ),
                )
            )
            rows.append(("no vector passes", f"{summary.queries_none_pass or 0:,} queries"))
    tables = [key_value_table("labels (a query's filter: the AND of its labels)", rows)]
    if summary.bands:
        bands = new_table("filtered queries by selectivity")
        bands.add_column("share passing")
        bands.add_column("queries", justify="right")
        for name, count in summary.bands:
            bands.add_row(name, f"{count:,}")
        tables.append(bands)
    return tables


@click.command()
@click.argument("path")
@label_options
@json_option
def info(
    path: str, base_labels_file: str | None, query_labels_file: str | None, as_json: bool
) -> None:
    """Describe PATH: an index directory, a vector/dataset file, a .spmat label file, or a
    bundled dataset name. Labels (a dataset's train_labels / test_labels, or --base-labels /
    --query-labels) are summarised: labels per vector and each query's selectivity (the
    share of base vectors passing its filter)."""
    target = Path(path)
    if target.is_dir() or (target / MANIFEST).exists():
        manifest = read_manifest(target)
        if as_json:
            click.echo(to_json({"kind": "index", **manifest}))
            return
        size = sum(
            entry["bytes"] for name, entry in manifest["files"].items() if name != LABELS_FILE
        )
        stdout_console().print(
            key_value_table(
                f"index {target}",
                [
                    ("engine", manifest["engine"]),
                    ("build params", format_params(manifest["build_params"])),
                    (
                        "vectors",
                        f"{manifest['count']:,} x {manifest['dim']} ({manifest['metric']})",
                    ),
                    ("dataset", manifest.get("dataset") or "-"),
                    ("build seconds", f"{manifest['build_seconds']:.2f}"),
                    ("index size", format_bytes(size)),
                    *(
                        [("base labels", f"kept ({LABELS_FILE})")]
                        if LABELS_FILE in manifest["files"]
                        else []
                    ),
                    ("files", ", ".join(manifest["files"])),
                    ("libraries", format_params(manifest.get("library_versions", {}))),
                    ("created", manifest.get("created", "-")),
                ],
            )
        )
        return
    resolved = resolve_dataset_path(path)
    if resolved.suffix.lower() == SPMAT_SUFFIX:
        labels_file = describe_spmat(resolved)
        if as_json:
            click.echo(to_json({"kind": "labels", **labels_file}))
            return
        stdout_console().print(
            key_value_table(f"labels {path}", [(key, value) for key, value in labels_file.items()])
        )
        return
    description = describe_file(resolved)
    summary = dataset_label_summary(resolved, base_labels_file, query_labels_file)
    if as_json:
        labels = {"labels": summary.to_dict()} if summary is not None else {}
        click.echo(to_json({"kind": "file", **description, **labels}))
        return
    rows: list[tuple[str, object]] = []
    for key, value in description.items():
        if key == "arrays" and isinstance(value, dict):
            rows += [
                (f"  {name}", " x ".join(map(str, spec.get("shape", []))) + f" {spec.get('dtype')}")
                for name, spec in value.items()
            ]
        elif key == "attrs" and isinstance(value, dict):
            rows += [(f"  @{name}", str(text)) for name, text in value.items()]
        else:
            rows.append((str(key), value if not isinstance(value, dict | list) else to_json(value)))
    console = stdout_console()
    console.print(key_value_table(f"file {path}", rows))
    for table in _label_tables(summary) if summary is not None else []:
        console.print(table)


COMMANDS = [info]
