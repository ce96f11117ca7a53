"""Every command's --help ends with real examples, and every example runs (exit 0), in the
order they are listed, in an empty folder holding only a small sweep file."""

from __future__ import annotations

import shlex

import click
from click.testing import CliRunner

from annkit.cli.main import cli
from annkit.cli.options import EXAMPLES

SWEEP = """[bench]
runs = 1

[[engine]]
name = "hnsw"
build = { M = 8, ef_construction = 60 }
query = { ef = [10, 40] }

[[engine]]
name = "flat"
"""
#: examples that need what a test machine lacks
NEEDS = {"from-text": "a local sentence-transformers model folder (extra annkit[embed])"}


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            out[name] = command
    return out


def help_examples(path: list[str]) -> list[str]:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    _, _, tail = result.stdout.partition("Examples:\n")
    return [line.strip() for line in tail.splitlines() if line.strip().startswith("annkit ")]


def test_every_command_shows_examples_in_its_help():
    commands = leaf_commands(cli)
    assert set(commands) == set(EXAMPLES)
    paths = {name: ["datasets", name] if name == "from-text" else [name] for name in commands}
    for name, path in paths.items():
        shown = help_examples(path)
        assert 1 <= len(shown) <= 2, name
        assert shown == EXAMPLES[name], name


def test_every_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    ran = 0
    for name, lines in EXAMPLES.items():
        if name in NEEDS:
            continue
        for line in lines:
            args = shlex.split(line)
            assert args[0] == "annkit"
            result = CliRunner().invoke(cli, args[1:], env={"COLUMNS": "200"})
            assert result.exit_code == 0, (line, result.output)
            ran += 1
    assert ran == sum(len(lines) for name, lines in EXAMPLES.items() if name not in NEEDS)
    for written in (
        "hnsw8",
        "q.csv",
        "neighbours.npy",
        "gt10.hdf5",
        "policy.json",
        "results/mine/runs.jsonl",
        "tail.png",
    ):
        assert (tmp_path / written).exists(), written
