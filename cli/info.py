"""``annkit info``: what a dataset file or an index bundle holds."""

from __future__ import annotations

from pathlib import Path

import click

from annkit.bundle import MANIFEST, read_manifest
from annkit.cli.console import stdout_console, to_json
from annkit.cli.options import json_option
from annkit.cli.render import format_bytes, format_params, key_value_table
from annkit.io import describe_file, resolve_dataset_path


@click.command()
@click.argument("path")
@json_option
def info(path: str, as_json: bool) -> None:
    """Describe PATH: an index directory, a vector/dataset file, or a bundled dataset name."""
    target = Path(path)
    if target.is_dir() or (target / MANIFEST).exists():
        manifest = read_manifest(target)
        if as_json:
            click.echo(to_json({"kind": "index", **manifest}))
            return
        size = sum(entry["bytes"] for entry in manifest["files"].values())
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
                    ("files", ", ".join(manifest["files"])),
                    ("libraries", format_params(manifest.get("library_versions", {}))),
                    ("created", manifest.get("created", "-")),
                ],
            )
        )
        return
    description = describe_file(resolve_dataset_path(path))
    if as_json:
        click.echo(to_json({"kind": "file", **description}))
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
    stdout_console().print(key_value_table(f"file {path}", rows))


COMMANDS = [info]
