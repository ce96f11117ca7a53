"""One cache of built indexes: tune reuses what bench built, and a default build value
and the same value given explicitly share one cached index."""

from __future__ import annotations

import json

import pytest
from cli_runner import WIDE, run_cli


@pytest.mark.slow
def test_tune_reuses_an_index_bench_cached(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[bench]\nruns = 1\n\n[[engine]]\nname = "hnsw"\n'
        "build = { M = 8, ef_construction = 40 }\nquery = { ef = 10 }\n"
    )
    root = tmp_path / "results"
    bench = run_cli(
        "bench", str(sweep), "-o", "a", "--results-root", str(root), "-q", "--json", env=WIDE
    )
    assert bench.exit_code == 0, bench.output
    cached = sorted((root / ".cache" / "indexes").iterdir())
    assert len(cached) == 1
    tuned = run_cli(
        "tune",
        "words-10k",
        "-e",
        "hnsw",
        "--build-grid",
        "M=8",
        "--build-grid",
        "ef_construction=40",
        "--effort-grid",
        "10,20",
        "--target",
        "0.5",
        "--runs",
        "1",
        "--cache-dir",
        str(root / ".cache"),
        "--json",
        env=WIDE,
    )
    assert tuned.exit_code == 0, tuned.output
    (setting,) = json.loads(tuned.stdout)["settings"]
    assert setting["cached"] is True
    assert sorted((root / ".cache" / "indexes").iterdir()) == cached  # nothing new built


@pytest.mark.slow
def test_a_default_and_its_explicit_value_share_one_cached_index(tmp_path):
    """The default sweep leaves ivfpq's nlist to the data; tune's default grid names it.
    Both are the same index, so tune must load the one bench cached (issue: 35.7 s rebuilt)."""
    from annkit.engines.ivfpq import default_nlist

    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nruns = 1\n\n[[engine]]\nname = "ivfpq"\nquery = { nprobe = 4 }\n')
    root = tmp_path / "results"
    bench = run_cli(
        "bench", str(sweep), "-o", "a", "--results-root", str(root), "-q", "--json", env=WIDE
    )
    assert bench.exit_code == 0, bench.output
    cached = sorted((root / ".cache" / "indexes").iterdir())
    assert len(cached) == 1
    nlist = default_nlist(10_000)
    tuned = run_cli(
        "tune",
        "words-10k",
        "-e",
        "ivfpq",
        "--build-grid",
        f"nlist={nlist}",
        "--effort-grid",
        "1,4,16",
        "--target",
        "0.3",
        "--runs",
        "1",
        "--cache-dir",
        str(root / ".cache"),
        "--json",
        env=WIDE,
    )
    assert tuned.exit_code == 0, tuned.output
    (setting,) = json.loads(tuned.stdout)["settings"]
    assert setting["cached"] is True
    assert sorted((root / ".cache" / "indexes").iterdir()) == cached
