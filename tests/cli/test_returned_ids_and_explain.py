"""The ids a search returned, kept in --per-query CSV and perquery.h5, and ``annkit
explain``: a query's returned ids beside its true neighbours, the missed ones marked."""

from __future__ import annotations

import json

import pytest
from cli_runner import WIDE, run_cli


def test_per_query_csv_keeps_the_returned_ids(hnsw_words10k, tmp_path):
    import csv

    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate

    out = tmp_path / "q.csv"
    result = run_cli(
        "evaluate",
        str(hnsw_words10k.path),
        "words-10k",
        "-p",
        "ef=12",
        "--runs",
        "1",
        "--per-query",
        str(out),
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = evaluate(load_bundle(hnsw_words10k.path), _words10k(), 10, {"ef": 12}, runs=1)
    assert len(rows) == 1000
    for row, ids in zip(rows, expected.returned_ids, strict=True):
        assert [int(value) for value in row["returned_ids"].split()] == ids.tolist()


def _words10k():
    from annkit.io import load_dataset

    return load_dataset("words-10k")


@pytest.mark.slow
def test_perquery_h5_keeps_the_returned_ids(tmp_path):
    import h5py

    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nruns = 1\n\n[[engine]]\nname = "flat"\n')
    result = run_cli(
        "bench",
        str(sweep),
        "-o",
        "ids",
        "--results-root",
        str(tmp_path / "r"),
        "--json",
        "-q",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    from annkit.bench.store import ResultsStore

    folder = tmp_path / "r" / "ids"
    (run_id,) = [
        json.loads(line)["run_id"] for line in (folder / "runs.jsonl").read_text().splitlines()
    ]
    with h5py.File(folder / "perquery.h5", "r") as handle:
        ids = handle[run_id + ".ids"][()]
    words = _words10k()
    assert ids.shape == (1000, 10)
    # flat is exact: its ids are the true top-10 up to float32 ties
    assert (ids == words.neighbors[:, :10]).mean() > 0.999
    assert (ResultsStore(folder).per_query_ids(run_id) == ids).all()


@pytest.fixture(scope="module")
def failing_query(hnsw_words10k):
    """The first query of words-10k that hnsw (M=8) misses neighbours of at ef=10."""
    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate

    evaluation = evaluate(
        load_bundle(hnsw_words10k.path), _words10k(), 10, {"ef": 10}, runs=1, recall_rule="strict"
    )
    return int(next(row for row, value in enumerate(evaluation.per_query_recall) if value <= 0.7))


def test_explain_json_sets_returned_beside_true_neighbours(hnsw_words10k, failing_query):
    import numpy as np

    from annkit.bundle import load_bundle
    from annkit.io.table import read_text

    words = _words10k()
    texts = read_text(words.source, "test_text")
    result = run_cli(
        "explain",
        str(hnsw_words10k.path),
        "words-10k",
        "--query-text",
        texts[failing_query],
        "-p",
        "ef=10",
        "--json",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["query"] == failing_query and out["query_text"] == texts[failing_query]
    truth = [entry["id"] for entry in out["truth"]]
    returned = [entry["id"] for entry in out["returned"]]
    assert truth == words.neighbors[failing_query, :10].tolist()
    query = words.queries[failing_query].astype(np.float64)
    base = words.base.astype(np.float64)
    train_text = read_text(words.source, "train_text")
    for entry in out["truth"] + out["returned"]:
        vector = base[entry["id"]]
        cosine = vector @ query / np.linalg.norm(vector) / np.linalg.norm(query)
        assert entry["distance"] == pytest.approx(1 - cosine, abs=1e-9)
        assert entry["text"] == train_text[entry["id"]]
    missed = [node for node in truth if node not in returned]
    assert missed and out["missed"] == missed
    assert out["strict_recall"] == (10 - len(missed)) / 10
    # each missed neighbour: returned at its least effort, not at the grid value below it
    engine = load_bundle(hnsw_words10k.path).engine
    grid = out["grid"]
    for entry in out["truth"]:
        if entry["found"]:
            assert entry["least_effort"] is None
            continue
        effort = entry["least_effort"]
        if effort is None:
            continue
        engine.set_query_params(ef=effort)
        assert (
            entry["id"]
            in engine.search(words.queries[failing_query : failing_query + 1], 10).ids[0]
        )
        position = grid.index(effort)
        if position:
            engine.set_query_params(ef=grid[position - 1])
            assert (
                entry["id"]
                not in engine.search(words.queries[failing_query : failing_query + 1], 10).ids[0]
            )


def test_explain_table_marks_the_missed(hnsw_words10k, failing_query):
    result = run_cli(
        "explain",
        str(hnsw_words10k.path),
        "words-10k",
        "--query",
        str(failing_query),
        "-p",
        "ef=10",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert "returned (left) and true (right) neighbours" in result.stdout
    assert "missed true #" in result.stdout and "found from ef=" in result.stdout


def test_explain_errors(hnsw_words10k):
    result = run_cli("explain", str(hnsw_words10k.path), "words-10k", "--query", "1000", env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --query 1000 is out of range: words-10k has 1000 queries (0..999)\n"
    )
    result = run_cli(
        "explain", str(hnsw_words10k.path), "words-10k", "--query-text", "no such word x", env=WIDE
    )
    assert result.exit_code == 2
    assert result.stderr == "Error: no query of words-10k has the text 'no such word x'\n"
    result = run_cli("explain", str(hnsw_words10k.path), "words-10k", env=WIDE)
    assert result.stderr == "Error: name one query: --query N or --query-text TEXT\n"
