"""Imports follow the layers: a module imports only from lower layers or from its own group.

The table below is the architecture (README, "Architecture"). Every module of ``annkit/`` and
``cli/`` (installed as ``annkit.cli``) must be in it; imports inside functions count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (group, layer, module prefixes). A module belongs to the group with the longest matching
# prefix. An import is allowed when the imported module's layer is lower, or when both are
# in the same group; never sideways (same layer, other group) and never upwards.
LAYERS: list[tuple[str, int, tuple[str, ...]]] = [
    (
        "foundation",
        0,
        (
            "annkit.__init__",
            "annkit.errors",
            "annkit.types",
            "annkit.parallel",
            "annkit.memory",
            "annkit.files",
            "annkit.faiss_util",
            # labels: the CSR label matrix, filters, selectivity (Dataset carries them)
            "annkit.labels",
            # catalogue: the ann-benchmarks manifest, the download directory and its
            # registry (io resolves downloaded names through it)
            "annkit.catalogue",
        ),
    ),
    ("io", 1, ("annkit.io", "annkit.sources")),
    # measure: the one frozen Measure (k, mode, runs, recall rule, threads, clients)
    ("metrics", 1, ("annkit.metrics", "annkit.longtail", "annkit.hardness", "annkit.measure")),
    # filtered: exact ground truth under label filters
    ("groundtruth", 2, ("annkit.groundtruth", "annkit.fromtext", "annkit.filtered")),
    ("engines", 2, ("annkit.engines", "annkit.bundle")),
    # download: resumable, verified transfers of catalogue datasets and URLs
    ("download", 2, ("annkit.download",)),
    # timing: every timed search loop; evaluate: the one scoring function
    (
        "evaluate",
        3,
        ("annkit.evaluate", "annkit.timing", "annkit.slices", "annkit.cache", "annkit.filtering"),
    ),
    # adaptive imports nothing above evaluate; bench measures policies (files and its own
    # cross-fitted training) beside uniform settings, so adaptive sits below bench
    ("adaptive", 4, ("annkit.adaptive",)),
    ("bench", 5, ("annkit.bench",)),
    # tune bisects each build setting's effort grid with effort's helpers: one group
    ("effort", 5, ("annkit.effort", "annkit.effort_study", "annkit.tune")),
    # query searches at fixed params or at a trained adaptive policy's per-query effort
    ("query", 6, ("annkit.query",)),
    # explain: one query's returned and true neighbours, least effort per missed neighbour
    ("explain", 6, ("annkit.explain",)),
    # Ray (optional extra): sharded ground truth and sweeps; commands import it only with --ray
    ("distributed", 6, ("annkit.distributed",)),
    # stream: streaming runbooks (inserts, deletes, searches; recall per step); its plot
    # reuses bench's plot helpers
    ("stream", 6, ("annkit.stream",)),
    (
        "cli-shared",
        7,
        (
            "annkit.cli.__init__",
            "annkit.cli.options",
            "annkit.cli.console",
            "annkit.cli.render",
            "annkit.cli.sweep_render",
            "annkit.cli.gate",
        ),
    ),
    # each command module is its own group (see _group): commands never import each other
    ("cli-command", 8, ("annkit.cli",)),
    ("cli-main", 9, ("annkit.cli.main", "annkit.__main__")),
]


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for annkit/ and cli/ (as annkit.cli)."""
    modules: dict[str, Path] = {}
    for folder, package in ((ROOT / "annkit", "annkit"), (ROOT / "cli", "annkit.cli")):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            modules[".".join((package, *parts))] = path
    return modules


def _classify(module: str) -> tuple[str, int] | None:
    """(group, layer) of a module, or None when the table does not place it."""
    best: tuple[int, str, int] | None = None
    for group, layer, prefixes in LAYERS:
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), group, layer)
    if best is None:
        return None
    _, group, layer = best
    if group == "cli-command":
        group = module  # one group per command module
    return group, layer


def _package_of(module: str, path: Path) -> str:
    return (
        module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    )


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The annkit modules ``module`` imports (at any depth of its code), as table names:
    a package ``annkit.x`` is ``annkit.x.__init__``, ``from p import m`` names ``p.m``
    when that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        if name in known:
            found.add(name)
        elif f"{name}.__init__" in known:
            found.add(f"{name}.__init__")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("annkit"):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module, path).split(".")
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            if not base.startswith("annkit"):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                if child in known or f"{child}.__init__" in known:
                    add(child)
                else:
                    add(base)
    found.discard(module)
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that goes upwards or sideways, or touches an unplaced module."""
    problems = []
    for source, targets in sorted(graph.items()):
        placed = _classify(source)
        if placed is None:
            problems.append(f"{source} is not in the layer table")
            continue
        group, layer = placed
        for target in sorted(targets):
            target_placed = _classify(target)
            if target_placed is None:
                problems.append(f"{target} (imported by {source}) is not in the layer table")
                continue
            target_group, target_layer = target_placed
            if target_group == group or target_layer < layer:
                continue
            direction = "sideways" if target_layer == layer else "upwards"
            problems.append(
                f"{source} ({group}, layer {layer}) imports {target} "
                f"({target_group}, layer {target_layer}): {direction}"
            )
    return problems


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {module: imports_of(module, path, known) for module, path in files.items()}


def test_every_import_follows_the_layers():
    assert violations(import_graph()) == []


def test_graph_sees_the_imports_that_matter():
    graph = import_graph()
    assert "annkit.evaluate" in graph["annkit.bench.worker"]  # imported inside a function
    assert "annkit.cli.options" in graph["annkit.cli.tune"]
    assert "annkit.io.__init__" in graph["annkit.sources"]
    assert "annkit.cache" in graph["annkit.tune"]


@pytest.mark.parametrize(
    ("source", "target", "words"),
    [
        ("annkit.groundtruth", "annkit.engines.faiss_common", "sideways"),
        ("annkit.tune", "annkit.bench.runner", "sideways"),
        ("annkit.cli.bench", "annkit.cli.compare", "sideways"),
        ("annkit.cli.tune", "annkit.cli.effort", "sideways"),
        ("annkit.metrics", "annkit.evaluate", "upwards"),
        ("annkit.adaptive.run", "annkit.bench.report", "upwards"),
        ("annkit.bench.runner", "annkit.cli.render", "upwards"),
        ("annkit.newthing", "annkit.errors", "not in the layer table"),
    ],
)
def test_a_bad_import_is_reported(source, target, words):
    (problem,) = violations({source: {target}})
    assert words in problem


def test_a_lower_or_same_group_import_is_fine():
    assert (
        violations(
            {
                "annkit.cli.tune": {"annkit.cli.options", "annkit.tune"},
                "annkit.bench.runner": {"annkit.bench.process", "annkit.cache"},
                "annkit.bench.policies": {"annkit.adaptive.evaluate"},
                "annkit.groundtruth": {"annkit.faiss_util", "annkit.io.__init__"},
            }
        )
        == []
    )


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants in ``tree`` (modules, classes, functions)."""
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, owners) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def engine_name_mentions() -> list[str]:
    """Strings in code outside ``annkit/engines/`` that name a registered engine (the exact
    reference included). Docstrings and ``annkit ...`` command examples of --help are
    documentation, not branches, and are allowed."""
    from annkit.engines import engine_names

    word = re.compile(r"\b(" + "|".join(map(re.escape, engine_names())) + r")\b")
    found = []
    for module, path in module_files().items():
        if module.startswith("annkit.engines"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if id(node) in docs or node.value.startswith("annkit "):
                continue
            match = word.search(node.value)
            if match:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {match.group(0)!r}")
    return found


def test_no_engine_is_named_outside_the_engines_package() -> None:
    """Engine knowledge lives in the engine's file: no code elsewhere names one."""
    assert engine_name_mentions() == []
