"""Every `annkit` example the user can read runs: the examples ending each command's --help,
and every example line of a ```bash / ```sh / ```console block in README.md and docs/*.md
(run in document order, one empty folder per file, on the bundled words-10k). An example
that cannot run on the bundled data is listed in NOT_RUNNABLE with the reason. Every
relative markdown link between the README and docs/ points to an existing file (and
heading)."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from annkit.cli.main import cli
from annkit.cli.options import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]

SWEEP = """[bench]
runs = 1

[[engine]]
name = "hnsw"
build = { M = 8, ef_construction = 60 }
query = { ef = [10, 40] }

[[engine]]
name = "flat"
"""
#: help examples that need what a test machine lacks
NEEDS = {
    "datasets from-text": "a local sentence-transformers model folder (extra annkit[embed])",
    "datasets get": "the network (ann-benchmarks.com) or a local mirror",
}

#: documentation examples that cannot run on the bundled data: (pattern searched in the
#: example line, reason). Every pattern must match at least one example.
NOT_RUNNABLE: list[tuple[str, str]] = [
    (r"\.\./shared/", "needs the shared 100k words dataset (../shared/data)"),
    (r"--ray\b", "needs the Ray extra and, with an address, a running Ray cluster"),
    (r"datasets from-text", "needs a local sentence-transformers model (extra annkit[embed])"),
    (
        r"\b(base|queries|my_queries|dataset_without_gt|log)\.(fbin|npy|fvecs|hdf5)\b",
        "stands for the user's own vector files",
    ),
    (r"\bmine\.hdf5\b", "needs the dataset that `annkit datasets from-text` writes"),
    (
        r"datasets get|glove-25-angular|fashion-mnist|sift-128",
        "downloads from ann-benchmarks.com (or needs a dataset downloaded that way): tests "
        "send no traffic off the machine; tests/test_download.py serves files on 127.0.0.1",
    ),
    (r"results/words100k\b", "reports the sweep of the shared 100k dataset"),
    (r"\bbenchmarks/", "a repository sweep file: its settings take minutes (CI runs them)"),
    (
        r"\b(before|after)\b",
        "the user's sweeps before and after a change (their QPS check depends on the load)",
    ),
]
#: most seconds one documentation example may take (they should be small)
EXAMPLE_BUDGET_SECONDS = 90.0

FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
SHELL_LANGUAGES = {"bash", "sh", "console"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = command
    return out


def help_examples(path: list[str]) -> list[str]:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    _, _, tail = result.stdout.partition("Examples:\n")
    return [line.strip() for line in tail.splitlines() if line.strip().startswith("annkit ")]


def doc_files() -> list[Path]:
    """README.md and every markdown file of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_examples(path: Path) -> list[str]:
    """The `annkit` example lines of the shell blocks of ``path``, in order: continuation
    lines joined, console prompts (``$ ``) removed, output lines of console blocks left out."""
    examples: list[str] = []
    language: str | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        fence = FENCE.match(raw)
        if fence:
            language = None if language is not None else fence.group(1).lower()
            pending = ""
            continue
        if language not in SHELL_LANGUAGES:
            continue
        line = raw.strip()
        if pending:
            line = f"{pending} {line}"
        elif language == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:].strip()
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        pending = ""
        if line.startswith("annkit "):
            examples.append(line)
    return examples


def why_not_runnable(line: str) -> str | None:
    for pattern, reason in NOT_RUNNABLE:
        if re.search(pattern, line):
            return reason
    return None


def commands_of(line: str) -> list[tuple[list[str], str | None]]:
    """Split an example line into its annkit commands: [(arguments, stdout file or None)].
    Understands comments, ``&&`` and ``> FILE``; any other shell syntax is an error."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands: list[tuple[list[str], str | None]] = []
    current: list[str] = []
    output: str | None = None
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == "&&":
            commands.append((current, output))
            current, output = [], None
        elif token == ">":
            position += 1
            output = tokens[position]
        elif set(token) <= set("();<>|&"):
            raise AssertionError(f"example uses shell syntax the test cannot run: {line}")
        else:
            current.append(token)
        position += 1
    commands.append((current, output))
    for arguments, _ in commands:
        assert arguments and arguments[0] == "annkit", line
    return commands


def test_every_command_shows_examples_in_its_help():
    commands = leaf_commands(cli)
    assert set(commands) == set(EXAMPLES)
    paths = {name: name.split() for name in commands}
    for name, path in paths.items():
        shown = help_examples(path)
        assert 1 <= len(shown) <= 2, name
        assert shown == EXAMPLES[name], name


@pytest.mark.slow
def test_every_help_example_runs(tmp_path, monkeypatch):
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


def test_every_doc_example_is_run_or_listed_with_a_reason():
    """Each example line parses as annkit commands, and each NOT_RUNNABLE entry is used."""
    used: set[str] = set()
    runnable = 0
    for path in doc_files():
        for line in doc_examples(path):
            commands_of(line)
            for pattern, _ in NOT_RUNNABLE:
                if re.search(pattern, line):
                    used.add(pattern)
                    break
            else:
                runnable += 1
    assert runnable >= 20
    assert used == {pattern for pattern, _ in NOT_RUNNABLE}, "unused NOT_RUNNABLE entries"


@pytest.mark.slow
@pytest.mark.parametrize("name", [path.relative_to(ROOT).as_posix() for path in doc_files()])
def test_every_doc_example_runs(name, tmp_path, monkeypatch):
    """The runnable examples of one file, in order, in an empty folder with a small sweep."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    for line in doc_examples(ROOT / name):
        if why_not_runnable(line):
            continue
        for arguments, output in commands_of(line):
            started = time.perf_counter()
            result = CliRunner().invoke(cli, arguments[1:], env={"COLUMNS": "200"})
            seconds = time.perf_counter() - started
            assert result.exit_code == 0, (name, line, result.output)
            assert seconds < EXAMPLE_BUDGET_SECONDS, f"{line}: {seconds:.0f} s; keep it small"
            if output:
                (tmp_path / output).write_text(result.stdout)


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of ``path``."""
    anchors: set[str] = set()
    for line in strip_code(path.read_text(), inline=False).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            anchors.add(slug)
    return anchors


def strip_code(text: str, inline: bool = True) -> str:
    """``text`` without its fenced code blocks (and, with ``inline``, code spans)."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            kept.append(re.sub(r"`[^`]*`", "", line) if inline else line)
    return "\n".join(kept)


def test_every_link_between_readme_and_docs_resolves():
    checked = 0
    for path in doc_files():
        for target in LINK.findall(strip_code(path.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = path.relative_to(ROOT)
            assert linked.exists(), f"{where}: link to a missing file: {target}"
            if anchor and linked.suffix == ".md":
                anchors = heading_anchors(linked)
                assert anchor in anchors, f"{where}: no heading for {target}"
            checked += 1
    assert checked >= 10
