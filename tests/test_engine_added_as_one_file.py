"""An engine added as one file reaches the contract tests, the fuzz corpus, ``annkit
engines``, ``annkit bench`` and ``annkit tune`` with no other edit: the engine of
tests/exact_engine.py, registered with ``annkit.engines.register`` and nothing else."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from exact_engine import ExactNumpyEngine

from annkit.bundle import load_bundle
from annkit.engines import engine_names
from annkit.engines.base import register, unregister
from annkit.io import write_dataset_hdf5

TESTS = Path(__file__).resolve().parent
NAME = ExactNumpyEngine.name


@pytest.fixture()
def exact_engine():
    """The one-file engine in the registry for one test, and out of it afterwards."""
    assert NAME not in engine_names()
    register(ExactNumpyEngine)
    try:
        yield ExactNumpyEngine
    finally:
        unregister(NAME)
    assert NAME not in engine_names()


@pytest.fixture()
def tiny_file(tmp_path: Path) -> Path:
    """400 x 8 euclidean base vectors and 30 queries, no ground truth (annkit computes it)."""
    rng = np.random.default_rng(5)
    path = tmp_path / "tiny.hdf5"
    write_dataset_hdf5(
        path,
        base=rng.standard_normal((400, 8)).astype(np.float32),
        queries=rng.standard_normal((30, 8)).astype(np.float32),
        metric="euclidean",
    )
    return path


def test_the_contract_tests_are_parametrised_by_the_registry(exact_engine):
    import test_engines

    params = {param.id: param for param in test_engines.contract_params()}
    assert {f"{NAME}-small", f"{NAME}-words10k"} <= set(params)
    assert not params[f"{NAME}-small"].marks  # in the quick loop
    assert [mark.name for mark in params[f"{NAME}-words10k"].marks] == ["slow"]


def test_the_contract_tests_pass_for_it_in_a_pytest_run_that_registers_it():
    """pytest with the engine loaded as a plugin runs every quick contract test on it."""
    contract_tests = sorted(
        name for name in dir(__import__("test_engines")) if name.startswith("test_contract_")
    )
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "exact_engine",
            "-p",
            "no:cacheprovider",
            "-v",
            "-m",
            "not slow",
            "-k",
            NAME,
            str(TESTS / "test_engines.py"),
        ],
        cwd=TESTS.parent,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    passed = sorted(
        re.findall(rf"::(test_contract_\w+)\[{re.escape(NAME)}-small\] PASSED", child.stdout)
    )
    assert passed == contract_tests, child.stdout[-3000:]


def test_the_fuzz_corpus_builds_and_damages_a_bundle_of_it(exact_engine, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS / "robustness"))
    from fuzz_damage import Writer, build_bundles, bundle_cases

    bundles = build_bundles(tmp_path / "valid", seed=3)
    assert set(bundles) == set(engine_names()) and NAME in bundles
    bundle = load_bundle(bundles[NAME])
    assert bundle.manifest["engine"] == NAME and bundle.engine.count == 700
    writer = Writer(tmp_path / "files")
    bundle_cases(writer, {NAME: bundles[NAME], "flat": bundles["flat"]}, seed=4)
    categories = {case.category for case in writer.cases if case.label.startswith(f"{NAME}: ")}
    assert {
        "bundle valid",
        "bundle payload truncation",
        "bundle payload bit flip",
        "bundle payload swap",
        "bundle manifest",
    } <= categories
    renamed_to_it = [
        case for case in writer.cases if case.label == f"flat: engine = {json.dumps(NAME)}"
    ]
    assert len(renamed_to_it) == 1  # the manifest edits name every registered engine


def test_annkit_engines_lists_it(exact_engine):
    listing = run_cli("engines", "--json")
    assert listing.exit_code == 0, listing.output
    assert json.loads(listing.stdout)[NAME]["effort_param"] == "scan"
    table = run_cli("engines")
    assert table.exit_code == 0 and NAME in table.stdout


def test_annkit_bench_sweeps_it(exact_engine, tiny_file, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'[bench]\nruns = 1\n\n[[engine]]\nname = "{NAME}"\nquery = {{ scan = [8, 400] }}\n'
    )
    root = tmp_path / "results"
    result = run_cli(
        "bench", sweep, "--dataset", tiny_file, "-o", "one-file", "--results-root", root, "-q"
    )
    assert result.exit_code == 0, result.output
    records = [
        json.loads(line) for line in (root / "one-file" / "runs.jsonl").read_text().splitlines()
    ]
    assert [record["engine"] for record in records] == [NAME, NAME]
    recall = {record["query_params"]["scan"]: record["recall"] for record in records}
    assert recall[400] == 1.0 and recall[8] < 1.0


def test_annkit_tune_tunes_it(exact_engine, tiny_file, tmp_path):
    result = run_cli(
        "tune",
        tiny_file,
        "-e",
        NAME,
        "--target",
        "0.9",
        "--runs",
        "1",
        "--cache-dir",
        tmp_path / "cache",
        "--json",
    )
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout)
    assert (tuned["engine"], tuned["param"]) == (NAME, "scan")
    (setting,) = tuned["settings"]
    assert setting["reached"] and 1 <= setting["query_params"]["scan"] <= 400
