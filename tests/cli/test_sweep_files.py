"""Sweep files: relative paths resolve against the sweep's folder; two engine blocks with
the same settings are refused."""

from __future__ import annotations

import pytest


def test_relative_sweep_paths_resolve_against_the_sweep_folder(tmp_path, monkeypatch):
    from annkit.bench.spec import load_sweep

    folder = tmp_path / "sweeps"
    folder.mkdir()
    sweep = folder / "s.toml"
    sweep.write_text(
        '[bench]\ndataset = "data/mine.hdf5"\nqueries = "q.npy"\n\n[[engine]]\nname = "flat"\n'
    )
    # a file of that name in the current folder must not be picked instead
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.hdf5").write_bytes(b"")
    kwargs = load_sweep(sweep).dataset_kwargs()
    assert kwargs["data"] == str(folder / "data" / "mine.hdf5")
    assert kwargs["queries"] == str(folder / "q.npy")
    sweep.write_text('[bench]\ndataset = "words-10k"\n\n[[engine]]\nname = "flat"\n')
    assert load_sweep(sweep).dataset_kwargs()["data"] == "words-10k"  # a bundled name


def test_duplicate_engine_blocks_are_refused(tmp_path):
    from annkit.bench.spec import SweepError, load_sweep

    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[[engine]]\nname = "hnsw"\nbuild = { M = 8 }\nquery = { ef = [10, 20] }\n'
        '\n[[engine]]\nname = "hnsw"\nbuild = { M = 8 }\nquery = { ef = 20 }\n'
    )
    with pytest.raises(SweepError) as caught:
        load_sweep(sweep)
    assert str(caught.value) == (
        f"{sweep} line 7: [[engine]] block 2 (hnsw) repeats a setting of block 1: "
        "M=8 ef_construction=200 seed=100 | ef=20; remove the duplicate (each setting is "
        "measured once)"
    )
    # two blocks of one engine with different settings are fine
    sweep.write_text(
        '[[engine]]\nname = "hnsw"\nbuild = { M = 8 }\nquery = { ef = 10 }\n'
        '\n[[engine]]\nname = "hnsw"\nbuild = { M = 16 }\nquery = { ef = 20 }\n'
    )
    assert load_sweep(sweep).n_runs == 2
