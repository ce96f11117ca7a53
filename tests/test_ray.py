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

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before Ray is imported anywhere
ray = pytest.importorskip("ray")

from annkit.distributed.ray_backend import (  # noqa: E402
    ray_ground_truth,
    shard_bounds,
)
from annkit.groundtruth import compute_ground_truth  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OBJECT_STORE = 150 << 20


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 CPUs for this module's ground-truth tests."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=OBJECT_STORE,
             log_to_driver=False, logging_level="ERROR")
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


def run_cli(*args: str, env: dict | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "annkit", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          cwd=ROOT)


def test_ray_without_the_extra_says_how_to_install_it(tmp_path):
    fake = tmp_path / "ray"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    result = run_cli("groundtruth", "words-10k", "-k", "5", "-o", str(tmp_path / "gt.hdf5"),
                     "--ray", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: --ray needs the ray extra: pip install 'annkit[ray]'"


@pytest.mark.slow
@pytest.mark.parametrize("address", ["127.0.0.1:1", "192.0.2.1:6379"])
def test_unreachable_address_is_one_line_within_30_seconds(tmp_path, address):
    started = time.monotonic()
    result = run_cli("groundtruth", "words-10k", "-k", "5", "-o", str(tmp_path / "gt.hdf5"),
                     f"--ray={address}", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot reach a Ray cluster at "
                                                   f"{address} (")
    assert not (tmp_path / "gt.hdf5").exists()


def test_groundtruth_cli_with_ray_writes_the_local_result(local_ray, tmp_path):
    import h5py
    from click.testing import CliRunner

    from annkit.cli.main import cli

    runner = CliRunner()
    for name, extra in (("local", []), ("ray", ["--ray"])):
        result = runner.invoke(cli, ["groundtruth", "words-10k", "-k", "10", "-q", "-o",
                                     str(tmp_path / f"{name}.hdf5"), *extra])
        assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "local.hdf5") as local, h5py.File(tmp_path / "ray.hdf5") as other:
        np.testing.assert_array_equal(local["neighbors"][:], other["neighbors"][:])
        assert local["distances"][:].tobytes() == other["distances"][:].tobytes()
