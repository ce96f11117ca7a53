"""The memory guard refuses work that cannot fit, with the estimate and what to change."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_cli

from annkit.engines import get_engine
from annkit.errors import ResourceError
from annkit.memory import available_bytes, check_memory, ground_truth_bytes


def test_estimates_grow_with_data_and_params():
    hnsw = get_engine("hnsw")
    small, large = hnsw("angular", 384, M=8), hnsw("angular", 384, M=64)
    assert small.estimate_build_bytes(100_000) < large.estimate_build_bytes(100_000)
    assert small.estimate_build_bytes(10_000) < small.estimate_build_bytes(100_000)
    # a 100k x 384 float32 set is 146 MiB: every estimate is at least the vectors' size
    for name in ("hnsw", "annoy", "ivfpq", "flat"):
        assert get_engine(name)("angular", 384).estimate_build_bytes(100_000) > 100_000 * 384 * 4
    assert ground_truth_bytes(100_000, 5_000, 384, 100, 700_000) > 100_000 * 384 * 4


def test_check_memory(monkeypatch):
    monkeypatch.setenv("ANNKIT_MEMORY_LIMIT", str(2**30))
    assert available_bytes() == 2**30
    check_memory(2**29, "x", "y")
    with pytest.raises(ResourceError) as info:
        check_memory(2**31, "building hnsw", "use fewer vectors")
    assert str(info.value) == (
        "building hnsw needs about 2.00 GiB of memory but only 1.00 GiB is available: "
        "use fewer vectors, or pass --no-memory-check to try anyway"
    )
    check_memory(2**31, "x", "y", force=True)


def test_cli_refuses_and_can_be_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNKIT_MEMORY_LIMIT", "1000000")
    result = run_cli("build", "-e", "flat", "-o", str(tmp_path / "i"))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(
        "Error: building flat over 10,000 x 384 vectors needs about"
    )
    assert not (tmp_path / "i").exists()
    result = run_cli("groundtruth", "words-10k", "-k", "5", "-o", str(tmp_path / "g.hdf5"))
    assert result.exit_code == 2 and "exact ground truth for 1,000 queries" in result.output
    result = run_cli(
        "tune", "-e", "hnsw", "--build-grid", "M=8,16", "--cache-dir", str(tmp_path / "c")
    )
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(
        "Error: building hnsw over 10,000 x 384 vectors needs about"
    )
    assert "use fewer vectors or a smaller build grid" in result.output
    assert not (tmp_path / "c").exists()
    result = run_cli("build", "-e", "flat", "-o", str(tmp_path / "i"), "--no-memory-check")
    assert result.exit_code == 0, result.output


def test_library_build_and_ground_truth_paths_check_memory(tmp_path, monkeypatch, tiny_dataset):
    """The guard lives in the library: every build (build_index, the cache behind bench and
    tune) and every exact ground-truth run checks it; memory_check=False skips it."""
    from annkit.bundle import build_index
    from annkit.cache import obtain_index
    from annkit.groundtruth import compute_ground_truth

    monkeypatch.setenv("ANNKIT_MEMORY_LIMIT", "1000")
    base, queries = tiny_dataset.base, tiny_dataset.queries
    with pytest.raises(ResourceError, match=r"^building hnsw over \d[\d,]* x \d+ vectors needs"):
        build_index("hnsw", base, "euclidean", {"M": 8})
    with pytest.raises(ResourceError, match="^building flat over"):
        obtain_index(tmp_path / "i", "flat", {}, tiny_dataset, fingerprint="x", threads=1)
    assert not (tmp_path / "i").exists()
    with pytest.raises(ResourceError, match="^exact ground truth for"):
        compute_ground_truth(base, queries, 5, "euclidean")
    engine, _ = build_index("hnsw", base, "euclidean", {"M": 8}, memory_check=False)
    assert engine.count == len(base)
    bundle, cached = obtain_index(
        tmp_path / "i", "flat", {}, tiny_dataset, fingerprint="x", threads=1, memory_check=False
    )
    assert not cached and bundle.engine.count == len(base)
    truth = compute_ground_truth(base, queries, 5, "euclidean", memory_check=False)
    assert truth.ids.shape == (len(queries), 5)


@pytest.mark.slow
def test_bench_records_a_build_that_cannot_fit_and_can_be_forced(tmp_path, monkeypatch):
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[bench]\ndataset = "words-10k"\nk = 10\nruns = 1\n\n[[engine]]\nname = "flat"\n'
    )
    monkeypatch.setenv("ANNKIT_MEMORY_LIMIT", str(20 * 2**20))  # flat needs ~29 MiB
    args = ["bench", str(sweep), "--results-root", str(tmp_path), "-q", "--json"]
    result = run_cli(*args, "-o", str(tmp_path / "refused"))
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (tmp_path / "refused" / "runs.jsonl").open()]
    assert record["status"] == "failed"
    assert record["error"].startswith("build: building flat over 10,000 x 384 vectors needs")
    result = run_cli(*args, "-o", str(tmp_path / "forced"), "--no-memory-check")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (tmp_path / "forced" / "runs.jsonl").open()]
    assert record["status"] == "ok" and record["recall"] == 1.0
