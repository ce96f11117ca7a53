"""Engines from outside annkit: a class registered at run time, and a package installed with an
``annkit.engines`` entry point. Both reach every command with no edit to annkit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bench.runner import run_sweep
from annkit.bench.spec import parse_sweep
from annkit.bundle import build_index, load_bundle, save_bundle
from annkit.effort import minimum_effort
from annkit.engines.base import Engine, ParamSpec, engine_names, register, unregister
from annkit.errors import EngineError
from annkit.evaluate import evaluate, true_neighbor_distances
from annkit.tune import tune
from annkit.types import Dataset, SearchResult

PAYLOAD = "scan.npy"


class ScanEngine(Engine):
    """A test engine: exact search over the first ``scan`` vectors of a seeded permutation of
    the base (euclidean or angular). Recall grows with ``scan``; it counts its distances."""

    name = "scan-test"
    description = "prefix scan of a seeded permutation (tests only)"
    build_specs = {"seed": ParamSpec(int, 0, "permutation seed", minimum=0)}
    default_query_params = {
        "scan": ParamSpec(int, 256, "vectors examined per query", minimum=1, effort=True),
    }
    counts_distances = True
    contract_settings = ({}, {"scan": 1_000_000})

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        rng = np.random.default_rng(self.params["seed"])
        order = rng.permutation(len(base))
        self._vectors = self._prepare(np.asarray(base, dtype=np.float32)[order])
        self._ids = order.astype(np.int64)
        self.count = len(base)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        if self.metric == "angular":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)
        return vectors

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        scanned = min(self.query["scan"], self.count)
        vectors = self._vectors[:scanned]
        queries = self._prepare(np.asarray(queries, dtype=np.float32))
        if self.metric == "angular":
            distances = 1.0 - queries @ vectors.T
        else:
            squared = (
                (queries**2).sum(1)[:, None]
                - 2 * queries @ vectors.T
                + (vectors**2).sum(1)[None, :]
            )
            distances = np.sqrt(np.maximum(squared, 0.0))
        found = min(k, scanned)
        order = np.argsort(distances, axis=1, kind="stable")[:, :found]
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        out = np.full((len(queries), k), np.inf, dtype=np.float32)
        ids[:, :found] = self._ids[order]
        out[:, :found] = np.take_along_axis(distances, order, axis=1)
        counts = np.full(len(queries), scanned, dtype=np.int64)
        return SearchResult(ids=ids, distances=out, distance_computations=counts)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        grid = [k * 2**j for j in range(20) if k * 2**j < n_base]
        return grid + [n_base]

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        return {"seed": [1, 2]}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {"numpy": np.__version__}

    def save(self, directory: Path) -> list[str]:
        np.save(directory / PAYLOAD, np.column_stack([self._ids.astype(np.float32), self._vectors]))
        return [PAYLOAD]

    @classmethod
    def load(
        cls, directory: Path, metric: str, dim: int, count: int, params: Mapping[str, Any]
    ) -> ScanEngine:
        stored = np.load(directory / PAYLOAD, allow_pickle=False)
        if stored.shape != (count, dim + 1):
            raise EngineError(
                f"{directory / PAYLOAD}: holds {stored.shape}, manifest says {count} x {dim}"
            )
        engine = cls(metric, dim, **params)
        engine._ids = stored[:, 0].astype(np.int64)
        engine._vectors = np.ascontiguousarray(stored[:, 1:], dtype=np.float32)
        engine.count = count
        return engine


@pytest.fixture()
def scan_engine() -> Iterator[type[ScanEngine]]:
    """ScanEngine in the registry for one test."""
    register(ScanEngine)
    try:
        yield ScanEngine
    finally:
        unregister(ScanEngine.name)


@pytest.fixture(scope="module")
def small(words10k: Dataset) -> Dataset:
    """words-10k with 200 queries (the fake engine is a numpy brute force)."""
    return Dataset(
        name="words-small",
        metric=words10k.metric,
        base=words10k.base,
        queries=words10k.queries[:200],
    )


@pytest.mark.slow
def test_registered_engine_through_the_library(scan_engine, small: Dataset, tmp_path: Path) -> None:
    assert "scan-test" in engine_names()
    engine, seconds = build_index("scan-test", small.base, small.metric, {"seed": 3})
    bundle = load_bundle(save_bundle(engine, tmp_path / "index", build_seconds=seconds))
    assert bundle.manifest["library_versions"]["numpy"] == np.__version__
    truth = true_neighbor_distances(small, 10)
    full = evaluate(bundle, small, 10, {"scan": small.n_base}, true_distances=truth)
    partial = evaluate(bundle, small, 10, {"scan": 500}, true_distances=truth)
    assert full.recall == 1.0 and partial.recall < 0.5

    effort = minimum_effort(bundle, small, 10, 0.9, truth=truth)
    assert effort.param == "scan" and effort.grid == bundle.engine.effort_grid(10, small.n_base)
    assert effort.reached.all() and effort.grid[-1] == small.n_base

    result = tune(small, "scan-test", 0.9, runs=1, cache_dir=tmp_path / "cache")
    assert result.param == "scan"
    assert [setting.build_params["seed"] for setting in result.settings] == [1, 2]
    best = result.best
    assert best is not None and best.grid_choice in best.grid  # then refined below it
    assert (
        best.chosen == best.grid_choice
        if best.bracket is None
        else best.bracket[0] < best.chosen <= best.bracket[1]
    )


@pytest.mark.slow
def test_registered_engine_through_bench(scan_engine, tmp_path: Path) -> None:
    spec = parse_sweep(
        textwrap.dedent("""\
        [bench]
        dataset = "words-10k"
        k = 10
        runs = 1

        [[engine]]
        name = "scan-test"
        build = { seed = 4 }
        query = { scan = [100, 10000] }
        """),
        "plugin.toml",
    )
    outcome = run_sweep(
        spec, tmp_path / "results" / "plugin", results_root=tmp_path / "results", threads=1
    )
    records = [
        json.loads(line)
        for line in (tmp_path / "results" / "plugin" / "runs.jsonl").read_text().splitlines()
    ]
    assert len(records) == 2 and all(record["status"] == "ok" for record in records), outcome
    recall = {record["query_params"]["scan"]: record["recall"] for record in records}
    assert recall[10000] == 1.0 and recall[100] < recall[10000]


@pytest.mark.slow
def test_registered_engine_through_the_cli(scan_engine, tmp_path: Path) -> None:
    listing = json.loads(run_cli("engines", "--json").stdout)
    assert listing["scan-test"]["effort_param"] == "scan"
    assert set(listing["scan-test"]["query_params"]) == {"scan"}

    index = tmp_path / "index"
    result = run_cli("build", "words-10k", "-e", "scan-test", "-p", "seed=5", "-o", index, "--json")
    assert result.exit_code == 0, result.output
    result = run_cli(
        "query", index, "words-10k", "-k", "5", "-p", "scan=10000", "-o", tmp_path / "found.npy"
    )
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "found.npy").shape == (1000, 5)
    result = run_cli("evaluate", index, "-p", "scan=10000", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recall"] == 1.0
    result = run_cli("effort", index, "--grid", "100,1000,10000", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["param"] == "scan"
    result = run_cli(
        "tune",
        "words-10k",
        "--engine",
        "scan-test",
        "--build-grid",
        "seed=1",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        tmp_path / "cache",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best"]["reached"]

    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        '[bench]\ndataset = "words-10k"\nk = 10\nruns = 1\n\n[[engine]]\n'
        'name = "scan-test"\nquery = { scan = [10000] }\n'
    )
    result = run_cli(
        "bench",
        sweep,
        "-o",
        "cli",
        "--results-root",
        tmp_path / "results",
        "--threads",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output


def test_unregistered_engine_is_gone(scan_engine) -> None:
    unregister("scan-test")
    assert "scan-test" not in engine_names()
    result = run_cli("build", "words-10k", "-e", "scan-test", "-o", "unused")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: unknown engine 'scan-test' (known: {', '.join(engine_names())})\n"
    )


# ----------------------------------------------------------------- an installed plugin

PLUGIN_PYPROJECT = """\
[build-system]
requires = []
build-backend = "toy_backend"
backend-path = ["."]

[project]
name = "annkit-toy-plugin"
version = "0.1"

[project.entry-points."annkit.engines"]
toy = "annkit_toy_plugin:ToyEngine"
toy-broken = "annkit_toy_broken:BrokenEngine"
"""

# This venv has setuptools without ``wheel``, so the toy package brings a minimal PEP 517
# backend (stdlib only) that writes the wheel pip installs. A real plugin uses setuptools as
# in the README; what pip installs (modules + entry_points.txt) is the same.
PLUGIN_BACKEND = """\
import base64, hashlib, zipfile
from pathlib import Path

NAME, VERSION = "annkit_toy_plugin", "0.1"
MODULES = ["annkit_toy_plugin.py", "annkit_toy_broken.py"]
DIST = f"{NAME}-{VERSION}.dist-info"
FILES = {
    f"{DIST}/METADATA": f"Metadata-Version: 2.1\\nName: annkit-toy-plugin\\nVersion: {VERSION}\\n",
    f"{DIST}/WHEEL": ("Wheel-Version: 1.0\\nGenerator: toy\\nRoot-Is-Purelib: true\\n"
                      "Tag: py3-none-any\\n"),
    f"{DIST}/entry_points.txt": ("[annkit.engines]\\ntoy = annkit_toy_plugin:ToyEngine\\n"
                                 "toy-broken = annkit_toy_broken:BrokenEngine\\n"),
}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    files = {module: Path(module).read_text() for module in MODULES}
    files.update(FILES)
    record = []
    with zipfile.ZipFile(Path(wheel_directory) / name, "w") as wheel:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
            wheel.writestr(path, data)
        record.append(f"{DIST}/RECORD,,")
        wheel.writestr(f"{DIST}/RECORD", "\\n".join(record) + "\\n")
    return name
"""

PLUGIN_MODULE = '''\
"""A toy annkit engine: exact search in numpy, saved as one .npy file."""

from pathlib import Path

import numpy as np

from annkit.engines.base import Engine, ParamSpec
from annkit.errors import EngineError
from annkit.types import SearchResult


class ToyEngine(Engine):
    name = "toy"
    description = "exact search in numpy (a plugin)"
    build_specs = {}
    default_query_params = {}
    counts_distances = True

    def build(self, base, threads=1):
        self._base = np.asarray(base, dtype=np.float32)
        if self.metric == "angular":
            self._base = self._base / np.linalg.norm(self._base, axis=1, keepdims=True)
        self.count = len(self._base)

    def search(self, queries, k):
        queries = np.asarray(queries, dtype=np.float32)
        if self.metric == "angular":
            queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
            distances = 1.0 - queries @ self._base.T
        else:
            distances = np.linalg.norm(queries[:, None, :] - self._base[None], axis=2)
        ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return SearchResult(
            ids=ids.astype(np.int64),
            distances=np.take_along_axis(distances, ids, axis=1).astype(np.float32),
            distance_computations=np.full(len(queries), self.count, dtype=np.int64))

    def save(self, directory: Path):
        np.save(directory / "toy.npy", self._base)
        return ["toy.npy"]

    @classmethod
    def load(cls, directory, metric, dim, count, params):
        engine = cls(metric, dim, **params)
        engine._base = np.load(directory / "toy.npy", allow_pickle=False)
        if engine._base.shape != (count, dim):
            raise EngineError(f"{directory / 'toy.npy'} does not match its manifest")
        engine.count = count
        return engine
'''

PLUGIN_BROKEN = "import annkit_no_such_module_xyz  # noqa: F401\n"


def annkit_process(*args: Any, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "annkit", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )


@pytest.fixture()
def installed_plugin(tmp_path: Path) -> Iterator[Path]:
    """The toy plugin package pip-installed into this venv for one test, then uninstalled."""
    source = tmp_path / "plugin"
    source.mkdir()
    (source / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (source / "annkit_toy_plugin.py").write_text(PLUGIN_MODULE)
    (source / "annkit_toy_broken.py").write_text(PLUGIN_BROKEN)
    (source / "toy_backend.py").write_text(PLUGIN_BACKEND)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    try:
        yield tmp_path
    finally:
        subprocess.run(
            [*pip, "uninstall", "-y", "annkit-toy-plugin"],
            capture_output=True,
            timeout=300,
            cwd=tmp_path,
        )


@pytest.mark.slow
def test_entry_point_plugin(installed_plugin: Path) -> None:
    work = installed_plugin
    listing = annkit_process("engines", "--json", cwd=work)
    assert listing.returncode == 0, listing.stderr
    engines = json.loads(listing.stdout)
    assert "toy" in engines and "toy-broken" not in engines and "hnsw" in engines
    assert engines["toy"]["counts_distances"] is True
    assert listing.stderr == (
        "plugin toy-broken left out: ModuleNotFoundError: No module named "
        "'annkit_no_such_module_xyz'\n"
    )

    built = annkit_process(
        "build", "words-10k", "-e", "toy", "-o", work / "index", "--json", cwd=work
    )
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["engine"] == "toy"
    evaluated = annkit_process("evaluate", work / "index", "--json", cwd=work)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["recall"] == 1.0

    broken = annkit_process(
        "build", "words-10k", "-e", "toy-broken", "-o", work / "broken", cwd=work
    )
    assert broken.returncode == 2
    assert broken.stderr == (
        "Error: engine plugin 'toy-broken' could not be loaded (ModuleNotFoundError: No module "
        "named 'annkit_no_such_module_xyz'); fix or uninstall its package\n"
    )
