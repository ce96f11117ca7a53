"""make-runbook: each shape gives a valid runbook, the same one for the same seed."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cli_runner import run_cli

from annkit.errors import InputError
from annkit.stream import LiveSet, make_runbook, read_runbook
from annkit.stream.make import cluster_order, clustered, random_deletes, sliding_window
from annkit.types import Dataset


@pytest.fixture()
def small() -> Dataset:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((1000, 8)).astype(np.float32)
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    return Dataset(name="small", metric="euclidean", base=base, queries=queries)


def test_sliding_window_slides_over_every_row():
    max_pts, steps = sliding_window(1000, searches=5, window=600)
    live = LiveSet(1000)
    counts = []
    for step in steps:
        live.apply(step)
        if step.operation == "search":
            counts.append(live.count)
    assert counts == [600] * 5
    assert max_pts == 700  # the window and one batch: each insert comes before its delete
    assert live.ids().tolist() == list(range(400, 1000))  # the newest 600


def test_random_deletes_are_seeded_and_reach_the_share():
    first = random_deletes(1000, searches=4, seed=1, share=0.5, block=10)
    again = random_deletes(1000, searches=4, seed=1, share=0.5, block=10)
    other = random_deletes(1000, searches=4, seed=2, share=0.5, block=10)
    assert first == again and first != other
    live = LiveSet(1000)
    for step in first[1]:
        live.apply(step)
    assert live.count == 500
    assert sum(step.operation == "search" for step in first[1]) == 4


def test_clustered_arrivals_group_rows_by_cluster(small):
    order, sizes = cluster_order(small.base, 5, seed=0)
    assert sorted(order.tolist()) == list(range(1000)) and sizes.sum() == 1000
    again, _ = cluster_order(small.base, 5, seed=0)
    assert np.array_equal(order, again)
    max_pts, steps = clustered(sizes, window=400)
    assert [step.operation for step in steps].count("search") == len(sizes)
    live = LiveSet(1000)
    for step in steps:
        live.apply(step)
        assert live.count <= max_pts


@pytest.mark.parametrize("shape", ["sliding-window", "random-deletes", "clustered"])
def test_every_shape_writes_a_runbook_that_reads_back(tmp_path, small, shape):
    output = tmp_path / "runbook.yaml"
    data_out = tmp_path / "clustered-small.hdf5"
    made = make_runbook(shape, small, output, searches=4, seed=5, data_output=data_out)
    entry = "clustered-small" if shape == "clustered" else "small"
    assert made.entry == entry
    runbook = read_runbook(output, entry, small.n_base)
    assert runbook.search_steps == made.search_steps and len(runbook.steps) == made.steps
    text = output.read_text()
    make_runbook(shape, small, tmp_path / "again.yaml", searches=4, seed=5, data_output=data_out)
    assert (tmp_path / "again.yaml").read_text() == text
    if shape == "clustered":
        with h5py.File(data_out) as handle:
            assert handle["train"].shape == (1000, 8)
            assert sorted(map(tuple, handle["train"][:].tolist())) == sorted(
                map(tuple, small.base.tolist())
            )


def test_clustered_needs_its_data_file(small, tmp_path):
    with pytest.raises(InputError, match="clustered arrivals need --data-out FILE.hdf5"):
        make_runbook("clustered", small, tmp_path / "r.yaml")


def test_a_window_too_large_is_one_line():
    with pytest.raises(InputError, match=r"--window must be in 1\.\.999, got 1000"):
        sliding_window(1000, 4, window=1000)


def test_make_runbook_command(tmp_path):
    output = tmp_path / "sw.yaml"
    result = run_cli(
        "stream", "make-runbook", "sliding-window", "words-10k", "-o", output,
        "--searches", "3", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert '"entry": "words-10k"' in result.stdout and '"search_steps": 3' in result.stdout
    assert read_runbook(output, "words-10k", 10_000).max_pts == 7500
