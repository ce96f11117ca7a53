"""Ray backend on a real local Ray: sharded ground truth equals the local result bit for bit;
bench sweeps on a two-node cluster (same recall as locally, a killed worker becomes a failed
record); bad input (no extra, unreachable address) is one line and exit 2.

CI installs the extra (``pip install -e '.[test,ray]'``); without Ray these tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sweep_files import sweep_text

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before Ray is imported anywhere
ray = pytest.importorskip("ray")

from cli_runner import run_cli  # noqa: E402

from annkit.distributed.ray_backend import (  # noqa: E402
    ray_ground_truth,
    shard_bounds,
)
from annkit.groundtruth import compute_ground_truth  # noqa: E402

pytestmark = pytest.mark.slow  # a local Ray instance per module (~20 s to start)

ROOT = Path(__file__).resolve().parent.parent
OBJECT_STORE = 150 << 20


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 CPUs for this module's ground-truth tests."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield ray
    ray.shutdown()


def tied_base(n: int = 3000, dim: int = 16, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Gaussian base whose last third repeats its first rows (exact ties across shard
    boundaries: the lower id must win), and 50 queries."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dim)).astype(np.float32)
    base[2 * n // 3 :] = base[: n - 2 * n // 3]
    queries = rng.standard_normal((50, dim)).astype(np.float32)
    return base, queries


def assert_identical(local, distributed):
    assert local.ids.dtype == distributed.ids.dtype and local.ids.shape == distributed.ids.shape
    np.testing.assert_array_equal(local.ids, distributed.ids)
    assert local.distances.tobytes() == distributed.distances.tobytes()  # bit for bit


def test_shards_cover_the_base_in_order():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]


@pytest.mark.slow
def test_ground_truth_on_ray_equals_local_on_real_data(local_ray, words10k):
    local = compute_ground_truth(words10k.base, words10k.queries, 20, "angular")
    distributed = ray_ground_truth(words10k.base, words10k.queries, 20, "angular", shards=5)
    assert_identical(local, distributed)  # 5 shards over 2 CPUs


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_ground_truth_on_ray_keeps_the_tie_rule(local_ray, metric):
    base, queries = tied_base()
    local = compute_ground_truth(base, queries, 10, metric)
    distributed = ray_ground_truth(base, queries, 10, metric, shards=7, base_block_rows=300)
    assert_identical(local, distributed)
    duplicate = base.shape[0] - base.shape[0] // 3
    # a query's nearest row and its copy are equally near: the lower id comes first
    first = distributed.ids[:, 0]
    assert np.all(first < duplicate)


def test_memory_mapped_base_is_read_by_path(local_ray, tmp_path):
    base, queries = tied_base(n=2000)
    np.save(tmp_path / "base.npy", base)
    mapped = np.load(tmp_path / "base.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    local = compute_ground_truth(base, queries, 5, "euclidean")
    assert_identical(local, ray_ground_truth(mapped, queries, 5, "euclidean", shards=4))


def run_annkit_process(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m annkit *args`` in a child process (its own imports and environment)."""
    return subprocess.run(
        [sys.executable, "-m", "annkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_ray_without_the_extra_says_how_to_install_it(tmp_path):
    fake = tmp_path / "ray"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    result = run_annkit_process(
        "groundtruth",
        "words-10k",
        "-k",
        "5",
        "-o",
        str(tmp_path / "gt.hdf5"),
        "--ray",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: --ray needs the ray extra: pip install 'annkit[ray]'"


@pytest.mark.slow
@pytest.mark.parametrize("address", ["127.0.0.1:1", "192.0.2.1:6379"])
def test_unreachable_address_is_one_line_within_30_seconds(tmp_path, address):
    started = time.monotonic()
    result = run_annkit_process(
        "groundtruth",
        "words-10k",
        "-k",
        "5",
        "-o",
        str(tmp_path / "gt.hdf5"),
        f"--ray={address}",
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"Error: cannot reach a Ray cluster at {address} ("
    )
    assert not (tmp_path / "gt.hdf5").exists()


def test_groundtruth_cli_with_ray_writes_the_local_result(local_ray, tmp_path):
    import h5py

    for name, extra in (("local", []), ("ray", ["--ray"])):
        result = run_cli(
            "groundtruth",
            "words-10k",
            "-k",
            "10",
            "-q",
            "-o",
            str(tmp_path / f"{name}.hdf5"),
            *extra,
        )
        assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "local.hdf5") as local, h5py.File(tmp_path / "ray.hdf5") as other:
        np.testing.assert_array_equal(local["neighbors"][:], other["neighbors"][:])
        assert local["distances"][:].tobytes() == other["distances"][:].tobytes()


# --------------------------------------------------------------------------- sweeps on Ray

BENCH_DIR = ROOT / "tests" / "bench"
SWEEP = sweep_text("ray-hnsw-annoy-flat")


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray cluster of two nodes with one CPU each (ray.cluster_utils.Cluster); its workers
    can import the fake engines of tests/bench."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR)] + ([previous] if previous else []))
    node_args = {"num_cpus": 1, "object_store_memory": OBJECT_STORE}
    cluster = Cluster(
        initialize_head=True, head_node_args={**node_args, "include_dashboard": False}
    )
    cluster.add_node(**node_args)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


@pytest.mark.slow
def test_sweep_on_two_nodes_gives_the_local_recall(two_nodes, tmp_path):
    from annkit.bench.runner import run_sweep
    from annkit.bench.spec import parse_sweep
    from annkit.distributed.ray_bench import run_sweep_on_ray

    spec = parse_sweep(SWEEP)
    local = run_sweep(spec, tmp_path / "local" / "res", results_root=tmp_path / "local", threads=1)
    distributed = run_sweep_on_ray(
        spec, tmp_path / "ray" / "res", results_root=tmp_path / "ray", threads=1
    )
    assert distributed.failed == 0 and distributed.builds == 4 and distributed.cached_builds == 0
    local_recall = {r.run_id: r.recall for r in local.records}
    ray_records = {r.run_id: r.to_dict() for r in distributed.records}
    assert set(ray_records) == set(local_recall) and len(local_recall) == 7
    for run_id, recall in local_recall.items():
        assert ray_records[run_id]["recall"] == recall, run_id
    assert len({r["node"] for r in ray_records.values()}) == 2  # both nodes measured
    assert all(r["reference_qps"] > 0 for r in ray_records.values())
    assert all(r.node is None for r in local.records)
    again = run_sweep_on_ray(
        spec, tmp_path / "ray" / "res", results_root=tmp_path / "ray", threads=1
    )
    assert again.ran == 0 and again.skipped == 7  # resumed: nothing left to do


@pytest.mark.slow
def test_a_worker_killed_mid_task_leaves_a_failed_record(two_nodes, tmp_path):
    sys.path.insert(0, str(BENCH_DIR))
    from bench_fakes import FakeEngine

    from annkit.bench.spec import parse_sweep
    from annkit.distributed.ray_bench import run_sweep_on_ray
    from annkit.engines.base import register, unregister
    from annkit.io import write_dataset_hdf5

    rng = np.random.default_rng(3)
    write_dataset_hdf5(
        tmp_path / "tiny.hdf5",
        base=rng.standard_normal((300, 8)).astype(np.float32),
        queries=rng.standard_normal((20, 8)).astype(np.float32),
        metric="euclidean",
    )
    register(FakeEngine)
    try:
        spec = parse_sweep(sweep_text("ray-fake-engine", dataset=tmp_path / "tiny.hdf5"))
        started = time.monotonic()
        outcome = run_sweep_on_ray(
            spec, tmp_path / "res", results_root=tmp_path, threads=1, timeout=10
        )
        assert time.monotonic() - started < 90
    finally:
        unregister(FakeEngine.name)
    by_setting = {
        (r.build_params["build"], r.query_params["search"]): r.to_dict() for r in outcome.records
    }
    assert len(by_setting) == 8  # no setting lost
    for search in ("ok", "crash", "raise", "hang"):  # the build's worker died (SIGSEGV)
        record = by_setting[("crash", search)]
        assert record["status"] == "failed"
        assert record["error"] == (
            "build: the engine process died on Ray (its worker exited or was killed)"
        )
    assert by_setting[("ok", "ok")]["status"] == "ok"
    assert by_setting[("ok", "crash")]["error"] == (
        "the engine process died on Ray (its worker exited or was killed)"
    )
    assert by_setting[("ok", "raise")]["status"] == "failed"  # measured by a new actor
    assert by_setting[("ok", "raise")]["error"] == "RuntimeError: boom in search"
    hung = by_setting[("ok", "hang")]
    assert (hung["status"], hung["error"]) == ("timeout", "the query run took longer than 10s")
