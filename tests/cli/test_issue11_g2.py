"""Issue 11 (items 1, 4, 7, 9, 10): slice-labelled reports, the metric hint, notices for
silent defaults, strict recall, and the smaller things; through the real commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import WIDE, run_cli

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "ci-baseline"


# item 1 -------------------------------------------------------------------------------------


def test_report_on_a_slice_says_so_in_every_title():
    result = run_cli("report", str(BASELINE), "--slice", "tail", env=WIDE)
    assert result.exit_code == 0, result.output
    assert (
        "Pareto-optimal runs on slice 'tail' (400 queries): recall@10 vs QPS (words-10k, batch)"
    ) in result.stdout
    assert "best QPS at recall@10 >= threshold on slice 'tail' (400 queries)" in result.stdout
    unsliced = run_cli("report", str(BASELINE), env=WIDE)
    assert "on slice" not in unsliced.stdout
    assert "Pareto-optimal runs: recall@10 vs QPS (words-10k, batch)" in unsliced.stdout


def test_report_json_names_the_slice_and_its_size():
    sliced = json.loads(
        run_cli("report", str(BASELINE), "--slice", "hard-lid", "--json", env=WIDE).stdout
    )
    assert sliced["slice"] == "hard-lid" and sliced["slice_queries"] == 100
    whole = json.loads(run_cli("report", str(BASELINE), "--json", env=WIDE).stdout)
    assert whole["slice"] == "all" and whole["slice_queries"] is None


def test_plot_title_label():
    from annkit.cli.bench import slice_label

    assert slice_label("tail", 400) == " on slice 'tail' (400 queries)"
    assert slice_label("tail", None) == " on slice 'tail'"
    assert slice_label("all", 1000) == ""


# item 4 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def euclidean_flat(tmp_path_factory):
    path = tmp_path_factory.mktemp("metric") / "flat-l2"
    result = run_cli(
        "build", "words-10k", "-e", "flat", "--metric", "euclidean", "-o", str(path), env=WIDE
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("extra", [(), ("--metric", "angular")])
def test_metric_mismatch_says_which_metric_the_index_has(euclidean_flat, extra):
    result = run_cli("evaluate", str(euclidean_flat), "words-10k", *extra, env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: index {euclidean_flat} uses metric euclidean, dataset words-10k is scored "
        "with angular: rebuild the index with --metric angular, or evaluate it with "
        "--metric euclidean\n"
    )


def test_evaluating_with_the_index_metric_works(euclidean_flat):
    result = run_cli(
        "evaluate",
        str(euclidean_flat),
        "words-10k",
        "--metric",
        "euclidean",
        "--json",
        "--runs",
        "1",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metric"] == "euclidean"


# item 9 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hnsw_small(hnsw_words10k):
    """The path of the session's hnsw bundle of words-10k."""
    return hnsw_words10k.path


def independent_strict(true_ids, found_ids, k):
    """Strict recall@k the plain way: one Python set per query."""
    return [
        len({int(i) for i in found[:k] if i >= 0} & {int(i) for i in true[:k]}) / k
        for true, found in zip(true_ids, found_ids, strict=True)
    ]


@pytest.mark.slow
def test_strict_recall_matches_an_independent_count_on_words10k(hnsw_small, words10k):
    import numpy as np

    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate
    from annkit.metrics import strict_recall_per_query

    bundle = load_bundle(hnsw_small)
    strict = evaluate(bundle, words10k, 10, {"ef": 12}, runs=1, recall_rule="strict")
    tolerant = evaluate(bundle, words10k, 10, {"ef": 12}, runs=1)
    assert strict.recall_rule == "strict" and tolerant.recall_rule == "tolerant"
    assert np.array_equal(strict.returned_ids, tolerant.returned_ids)
    expected = independent_strict(words10k.neighbors, strict.returned_ids, 10)
    assert np.allclose(strict.per_query_recall, expected)
    assert np.allclose(
        strict_recall_per_query(words10k.neighbors, strict.returned_ids, 10), expected
    )
    # an id inside the true top-k is within the k-th true distance: tolerant >= strict
    assert np.all(tolerant.per_query_recall >= strict.per_query_recall - 1e-12)
    assert 0.5 < strict.recall < 0.99  # a low-effort setting misses some neighbours


def test_strict_recall_of_duplicates_and_missing_ids():
    import numpy as np

    from annkit.metrics import strict_recall_per_query

    truth = np.array([[1, 2, 3, 4]])
    found = np.array([[1, 1, -1, 4]])
    assert strict_recall_per_query(truth, found, 4).tolist() == [0.5]
    assert strict_recall_per_query(truth, truth, 4).tolist() == [1.0]


def test_evaluate_recall_flag_and_json(hnsw_small):
    strict = run_cli(
        "evaluate",
        str(hnsw_small),
        "-p",
        "ef=12",
        "--recall",
        "strict",
        "--json",
        "--runs",
        "1",
        env=WIDE,
    )
    tolerant = run_cli(
        "evaluate", str(hnsw_small), "-p", "ef=12", "--json", "--runs", "1", env=WIDE
    )
    assert strict.exit_code == 0 and tolerant.exit_code == 0, strict.output + tolerant.output
    strict_out, tolerant_out = json.loads(strict.stdout), json.loads(tolerant.stdout)
    assert strict_out["recall_rule"] == "strict" and tolerant_out["recall_rule"] == "tolerant"
    assert strict_out["recall"] <= tolerant_out["recall"]


@pytest.mark.slow
def test_effort_and_tune_take_the_rule(hnsw_small, tmp_path):
    effort = run_cli(
        "effort",
        str(hnsw_small),
        "--recall",
        "strict",
        "--json",
        "-q",
        "--grid",
        "10,20,40,80",
        env=WIDE,
    )
    assert effort.exit_code == 0, effort.output
    assert json.loads(effort.stdout)["recall_rule"] == "strict"
    tuned = run_cli(
        "tune",
        "-e",
        "hnsw",
        "--build-grid",
        "M=8",
        "--build-grid",
        "ef_construction=60",
        "--effort-grid",
        "10,20,40",
        "--target",
        "0.5",
        "--recall",
        "strict",
        "--json",
        "--runs",
        "1",
        "--threads",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        env=WIDE,
    )
    assert tuned.exit_code == 0, tuned.output
    out = json.loads(tuned.stdout)
    assert out["recall_rule"] == "strict" and out["best"]["recall_rule"] == "strict"


def test_old_records_read_as_tolerant():
    from annkit.types import RunRecord

    record = RunRecord.from_dict({"run_id": "x", "status": "ok", "engine": "flat"})
    assert record.recall_rule == "tolerant"
    strict = RunRecord.from_dict({**record.to_dict(), "recall_rule": "strict"})
    assert strict.to_dict()["recall_rule"] == "strict"


def test_compare_refuses_runs_scored_under_different_rules(tmp_path):
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "meta.json").write_text((BASELINE / "meta.json").read_text())
    lines = [
        json.loads(line)
        for line in (BASELINE / "runs.jsonl").read_text().splitlines()
        if line.strip()
    ]
    (strict / "runs.jsonl").write_text(
        "".join(json.dumps({**line, "recall_rule": "strict"}) + "\n" for line in lines)
    )
    result = run_cli("compare", str(BASELINE), str(strict), env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: cannot compare: the baseline and current sweeps differ in recall rule "
        "(tolerant vs strict); a gate compares like with like (make a new baseline)\n"
    )
    assert run_cli("compare", str(strict), str(strict), env=WIDE).exit_code == 0


def test_sweep_recall_key(tmp_path):
    from annkit.bench.spec import SweepError, load_sweep

    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nrecall = "strict"\n\n[[engine]]\nname = "flat"\n')
    spec = load_sweep(sweep)
    assert spec.recall_rule == "strict" and spec.identity()["recall_rule"] == "strict"
    assert "recall_rule" not in load_sweep(None).identity()  # old folders keep resuming
    sweep.write_text('[bench]\nrecall = "exact"\n\n[[engine]]\nname = "flat"\n')
    with pytest.raises(
        SweepError,
        match=r"s.toml line 2: \[bench\] recall must be tolerant "
        r"\(ann-benchmarks\) or strict \(id overlap\), "
        "got 'exact'",
    ):
        load_sweep(sweep)


@pytest.mark.slow
def test_bench_records_carry_the_rule(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nruns = 1\n\n[[engine]]\nname = "flat"\n')
    result = run_cli(
        "bench",
        str(sweep),
        "-o",
        "strict",
        "--results-root",
        str(tmp_path / "r"),
        "--recall",
        "strict",
        "--json",
        "-q",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    from annkit.bench.store import read_runs

    (record,) = read_runs(tmp_path / "r" / "strict" / "runs.jsonl")
    # flat finds every true neighbour; strict loses only exact float32 ties (one id here)
    assert record["recall_rule"] == "strict" and 0.999 <= record["recall"] <= 1.0


# item 7: sweep files ------------------------------------------------------------------------


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


# item 7: notices ----------------------------------------------------------------------------

DEFAULT_NOTICE = (
    "annkit: no DATA given: using the bundled dataset words-10k (pass DATA to use your own)\n"
)


def test_missing_data_says_the_bundled_dataset_is_used(hnsw_small, tmp_path):
    implicit = run_cli(
        "evaluate", str(hnsw_small), "-p", "ef=12", "--runs", "1", "--json", env=WIDE
    )
    assert implicit.exit_code == 0, implicit.output
    assert implicit.stderr == DEFAULT_NOTICE
    explicit = run_cli(
        "evaluate", str(hnsw_small), "words-10k", "-p", "ef=12", "--runs", "1", "--json", env=WIDE
    )
    assert explicit.exit_code == 0 and explicit.stderr == ""
    built = run_cli("build", "-e", "flat", "-o", str(tmp_path / "flat"), "--json", env=WIDE)
    assert built.exit_code == 0 and built.stderr == DEFAULT_NOTICE


def test_k_deeper_than_the_ground_truth_says_it_is_recomputed(hnsw_small):
    result = run_cli(
        "evaluate",
        str(hnsw_small),
        "words-10k",
        "-k",
        "101",
        "-p",
        "ef=150",
        "--runs",
        "1",
        "--json",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "annkit: words-10k holds 100 true neighbours per query, fewer than k=101: computing "
        "the exact top-202 instead (this takes a while on large data)\n"
    )
    assert json.loads(result.stdout)["k"] == 101


# item 10: smaller things ---------------------------------------------------------------------


def test_groundtruth_keeps_texts_and_weights(tmp_path):
    import h5py
    import numpy as np

    from annkit.io import resolve_dataset_path

    out = tmp_path / "gt.hdf5"
    result = run_cli(
        "groundtruth", "words-10k", "-k", "10", "-o", str(out), "--json", "-q", env=WIDE
    )
    assert result.exit_code == 0, result.output
    with (
        h5py.File(resolve_dataset_path("words-10k"), "r") as source,
        h5py.File(out, "r") as written,
    ):
        for key in ("test_text", "train_text", "test_weights"):
            assert key in written, key
            assert np.array_equal(written[key][:], source[key][:]), key
        assert np.array_equal(written["neighbors"][:], source["neighbors"][:, :10])


def test_groundtruth_help_says_what_the_threads_do():
    result = run_cli("groundtruth", "--help", env=WIDE)
    assert "Threads for the exact search" in result.stdout
    assert "Threads for building" not in result.stdout


@pytest.mark.slow
def test_effort_all_slices_and_the_old_name(hnsw_small):
    for flag in ("--all-slices", "--slice-report"):
        result = run_cli(
            "effort", str(hnsw_small), "words-10k", "--grid", "10,40,160", flag, "-q", env=WIDE
        )
        assert result.exit_code == 0, result.output
        assert "lid-q4" in result.stdout
    assert "--slice-report" not in run_cli("effort", "--help", env=WIDE).stdout
    assert "--all-slices" in run_cli("effort", "--help", env=WIDE).stdout


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


# item 8: returned ids and explain -----------------------------------------------------------


def test_per_query_csv_keeps_the_returned_ids(hnsw_small, tmp_path):
    import csv

    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate

    out = tmp_path / "q.csv"
    result = run_cli(
        "evaluate",
        str(hnsw_small),
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
    expected = evaluate(load_bundle(hnsw_small), _words10k(), 10, {"ef": 12}, runs=1)
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
def failing_query(hnsw_small):
    """The first query of words-10k that hnsw (M=8) misses neighbours of at ef=10."""
    from annkit.bundle import load_bundle
    from annkit.evaluate import evaluate

    evaluation = evaluate(
        load_bundle(hnsw_small), _words10k(), 10, {"ef": 10}, runs=1, recall_rule="strict"
    )
    return int(next(row for row, value in enumerate(evaluation.per_query_recall) if value <= 0.7))


def test_explain_json_sets_returned_beside_true_neighbours(hnsw_small, failing_query):
    import numpy as np

    from annkit.bundle import load_bundle
    from annkit.io.table import read_text

    words = _words10k()
    texts = read_text(words.source, "test_text")
    result = run_cli(
        "explain",
        str(hnsw_small),
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
    engine = load_bundle(hnsw_small).engine
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


def test_explain_table_marks_the_missed(hnsw_small, failing_query):
    result = run_cli(
        "explain",
        str(hnsw_small),
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


def test_explain_errors(hnsw_small):
    result = run_cli("explain", str(hnsw_small), "words-10k", "--query", "1000", env=WIDE)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --query 1000 is out of range: words-10k has 1000 queries (0..999)\n"
    )
    result = run_cli(
        "explain", str(hnsw_small), "words-10k", "--query-text", "no such word x", env=WIDE
    )
    assert result.exit_code == 2
    assert result.stderr == "Error: no query of words-10k has the text 'no such word x'\n"
    result = run_cli("explain", str(hnsw_small), "words-10k", env=WIDE)
    assert result.stderr == "Error: name one query: --query N or --query-text TEXT\n"


@pytest.mark.slow
def test_bench_prints_one_plain_line_per_setting_when_stderr_is_not_a_terminal(tmp_path):
    import re

    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[bench]\nruns = 1\n\n[[engine]]\nname = "hnsw"\n'
        "build = { M = 8, ef_construction = 40 }\nquery = { ef = [10, 20] }\n"
        '\n[[engine]]\nname = "flat"\n'
    )
    result = run_cli(
        "bench", str(sweep), "-o", "plain", "--results-root", str(tmp_path / "r"), env=WIDE
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 3
    for number, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"\[{number}/3\] .+: recall@10 [01]\.\d{{4}}, [\d,]+ QPS", line), line
    assert "flat" in lines[2]
    quiet = run_cli(
        "bench", str(sweep), "-o", "plain2", "--results-root", str(tmp_path / "r"), "-q", env=WIDE
    )
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("[")]


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


def test_evaluate_table_says_strict(hnsw_small):
    strict = run_cli(
        "evaluate",
        str(hnsw_small),
        "words-10k",
        "-p",
        "ef=12",
        "--runs",
        "1",
        "--recall",
        "strict",
        env=WIDE,
    )
    assert strict.exit_code == 0 and "recall@10 (strict)" in strict.stdout
    tolerant = run_cli(
        "evaluate", str(hnsw_small), "words-10k", "-p", "ef=12", "--runs", "1", env=WIDE
    )
    assert "(strict)" not in tolerant.stdout


@pytest.mark.slow
def test_bench_says_when_k_is_deeper_than_the_ground_truth(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nk = 101\nruns = 1\n\n[[engine]]\nname = "flat"\n')
    result = run_cli(
        "bench", str(sweep), "-o", "deep", "--results-root", str(tmp_path / "r"), env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert (
        "annkit: words-10k holds 100 true neighbours per query, fewer than k=101: "
        "computing the exact top-202 instead (this takes a while on large data)"
    ) in result.stderr.splitlines()
