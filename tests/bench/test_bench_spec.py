"""Sweep files: expansion of grids, run ids, and one-line errors that name file and line."""

from __future__ import annotations

import pytest
from sweep_files import sweep_text

from annkit.bench.spec import (
    DEFAULT_SWEEP,
    SweepError,
    load_sweep,
    make_run_id,
    parse_sweep,
)
from annkit.engines import engine_names

ENGINES = ", ".join(engine_names())

GOOD = sweep_text("spec-every-key")


def test_grids_expand_to_the_product():
    spec = parse_sweep(GOOD)
    assert (spec.dataset, spec.k, spec.runs, spec.mode, spec.timeout) == (
        "words-10k",
        5,
        2,
        "single",
        30.0,
    )
    assert [(b.engine, b.params) for b in spec.builds] == [
        ("hnsw", {"M": 8, "ef_construction": 100}),
        ("hnsw", {"M": 16, "ef_construction": 100}),
        ("ivfpq", {"nlist": 64}),
        ("flat", {}),
    ]
    hnsw = spec.builds[0]
    assert hnsw.resolved == {"M": 8, "ef_construction": 100, "seed": 100}
    assert [q.params for q in hnsw.queries] == [{"ef": 10}, {"ef": 20}]  # duplicate dropped
    assert [q.params for q in spec.builds[2].queries] == [
        {"nprobe": 1, "rerank": 0},
        {"nprobe": 1, "rerank": 10},
        {"nprobe": 4, "rerank": 0},
        {"nprobe": 4, "rerank": 10},
    ]
    assert spec.n_runs == 2 + 2 + 4 + 1
    assert len(set(spec.run_ids())) == spec.n_runs


def test_defaults_and_the_built_in_sweep():
    spec = parse_sweep('[[engine]]\nname = "flat"\n')
    assert (spec.dataset, spec.k, spec.runs, spec.mode, spec.timeout) == (
        "words-10k",
        10,
        3,
        "batch",
        None,
    )
    default = load_sweep(None)
    assert default.text == DEFAULT_SWEEP and default.dataset == "words-10k"
    assert {b.engine for b in default.builds} == {
        "hnsw",
        "annoy",
        "ivfpq",
        "faiss",
        "usearch",
        "flat",
    }


def test_run_id_is_stable_and_order_free():
    a = make_run_id("hnsw", {"M": 8, "seed": 1}, {"ef": 10}, 10, "batch")
    b = make_run_id("hnsw", {"seed": 1, "M": 8}, {"ef": 10}, 10, "batch")
    assert a == b and a.startswith("hnsw-")
    assert a != make_run_id("hnsw", {"M": 8, "seed": 1}, {"ef": 10}, 10, "single")
    assert a != make_run_id("hnsw", {"M": 8, "seed": 1}, {"ef": 10}, 5, "batch")
    # writing a default explicitly is the same setting
    explicit = parse_sweep('[[engine]]\nname = "hnsw"\nbuild = { M = 16 }\n').run_ids()
    implicit = parse_sweep('[[engine]]\nname = "hnsw"\n').run_ids()
    assert explicit == implicit


def test_relative_dataset_path_is_taken_from_the_sweep_folder(tmp_path):
    (tmp_path / "data.hdf5").write_bytes(b"")
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[bench]\ndataset = "data.hdf5"\n[[engine]]\nname = "flat"\n')
    assert load_sweep(sweep).dataset_kwargs()["data"] == str(tmp_path / "data.hdf5")
    assert load_sweep(sweep).with_dataset("words-10k").dataset_kwargs()["data"] == "words-10k"


BAD = [
    (
        '[[engine]]\nname = "hnsw"\nquery = { eff = [10] }\n',
        "sweep.toml line 3: engine 'hnsw' has no query parameter 'eff' (known: ef)",
    ),
    (
        '[bench]\nk = 10\n\n[[engine]]\nname = "hnswx"\n',
        f"sweep.toml line 5: unknown engine 'hnswx' (known: {ENGINES})",
    ),
    (
        '[[engine]]\nname = "hnsw"\n[engine.build]\nM = "eight"\n',
        "sweep.toml line 4: engine 'hnsw': build parameter M: expected int, got 'eight'",
    ),
    (
        '[[engine]]\nname = "annoy"\nbuild = { n_trees = [] }\n',
        "sweep.toml line 3: engine 'annoy': build parameter 'n_trees' has an empty list "
        "(nothing to run)",
    ),
    (
        '[[engine]]\nname = "hnsw"\nquery = { ef = [10,\n  0] }\n',
        "sweep.toml line 3: engine 'hnsw': query parameter ef: must be >= 1, got 0",
    ),
    (
        '[bench]\ndataset = "words-10k"\nkk = 3\n[[engine]]\nname = "flat"\n',
        "sweep.toml line 3: unknown [bench] key 'kk' (known: dataset, queries, groundtruth, "
        "metric, k, runs, mode, timeout, recall, qps_tolerance, filter_strategy)",
    ),
    (
        '[bench]\nk = 0\n[[engine]]\nname = "flat"\n',
        "sweep.toml line 2: [bench] k must be an integer >= 1, got 0",
    ),
    (
        '[bench]\nmode = "fast"\n[[engine]]\nname = "flat"\n',
        "sweep.toml line 2: [bench] mode must be one of batch, single, got 'fast'",
    ),
    (
        '[bench]\ntimeout = -1\n[[engine]]\nname = "flat"\n',
        "sweep.toml line 2: [bench] timeout must be a number of seconds > 0, got -1",
    ),
    (
        '[engine]\nname = "flat"\n',
        "sweep.toml line 1: write each engine as an [[engine]] table (double brackets)",
    ),
    (
        '[[engine]]\nname = "flat"\nbuld = { x = 1 }\n',
        "sweep.toml line 3: unknown [[engine]] key 'buld' "
        "(known: name, build, query, policy, adapt)",
    ),
    ("[bench]\nk = 10\n", f"sweep.toml: no [[engine]] tables: nothing to run (engines: {ENGINES})"),
    (
        '[[engine]]\nname = "hnsw"\n\n[[engine]]\nname = "annoy"\nquery = { search_k = 1.5 }\n',
        "sweep.toml line 6: engine 'annoy': query parameter search_k: expected int, got 1.5",
    ),
    (
        '[[engine]]\nname = "hnsw"\nbuild = { M = [8\n',
        "sweep.toml: invalid TOML: Unclosed array (at end of document)",
    ),
    ("[bench]\nk = = 3\n", "sweep.toml: invalid TOML: Invalid value (at line 2, column 5)"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_sweeps_name_file_and_line(text, message):
    with pytest.raises(SweepError) as caught:
        parse_sweep(text, "sweep.toml")
    assert str(caught.value) == message


def test_missing_sweep_file(tmp_path):
    with pytest.raises(SweepError, match="no such file"):
        load_sweep(tmp_path / "nope.toml")
