"""Per-query effort policies in bench sweeps: ``adapt = {...}`` and ``policy = [...]`` in an
[[engine]] entry, ``annkit bench --policy``, their records, series, report and plot, on a
small slice of the bundled words-10k with a seeded faiss HNSW index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.adaptive import AdaptConfig, Goal, adapt, load_policy, save_policy
from annkit.adaptive.evaluate import evaluate_policy
from annkit.adaptive.search import refine_grid
from annkit.bench.report import engine_frontiers, load_results, series_names
from annkit.bench.runner import run_sweep
from annkit.bench.spec import SweepError, load_sweep, make_run_id, parse_sweep
from annkit.bench.store import ResultsStore, read_runs
from annkit.bundle import load_bundle
from annkit.errors import InputError
from annkit.evaluate import true_neighbor_ids
from annkit.io import write_dataset_hdf5
from annkit.measure import Measure
from annkit.metrics import strict_recall_per_query
from annkit.sources import open_dataset
from annkit.types import Dataset, RunRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = 10
EFFORTS = [16, 32, 64, 128]
ENGINE = """\
[[engine]]
name = "faiss"
build = { factory = "HNSW8,Flat", efConstruction = 40 }
query = { efSearch = [16, 32, 64, 128] }
"""
HEAD = """\
[bench]
dataset = "small.hdf5"
runs = 1
"""
FLAT = """
[[engine]]
name = "flat"
"""
ADAPT = 'adapt = { target = [0.9, 0.97], kinds = ["threshold"], folds = 2, centroids = 8 }\n'
SERIES = "faiss factory=HNSW8,Flat + threshold policy"


def small_dataset(words10k: Dataset, path: Path, base: int = 4000) -> Path:
    """words-10k's first ``base`` vectors and first 300 queries (with their weights, so
    the tail band exists); no ground truth: annkit computes it exactly."""
    write_dataset_hdf5(
        path,
        base=words10k.base[:base],
        queries=words10k.queries[:300],
        weights=words10k.weights[:300],
        metric=words10k.metric,
    )
    return path


def faiss_index(root: Path):
    """The faiss index the sweeps cached under ``root``."""
    for manifest in sorted((root / ".cache" / "indexes").glob("*/manifest.json")):
        if json.loads(manifest.read_text())["engine"] == "faiss":
            return load_bundle(manifest.parent)
    raise AssertionError("no cached faiss index")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, words10k: Dataset) -> dict:
    """One sweep (CLI, --json) with two adapt runs beside four uniform settings and flat."""
    folder = tmp_path_factory.mktemp("policy-sweep")
    small_dataset(words10k, folder / "small.hdf5")
    (folder / "sweep.toml").write_text(HEAD + ENGINE + ADAPT + FLAT)
    (folder / "plain.toml").write_text(HEAD + ENGINE + FLAT)
    root = folder / "results"
    result = run_cli(
        "bench",
        folder / "sweep.toml",
        "-o",
        root / "adapt",
        "--results-root",
        root,
        "--threads",
        1,
        "--json",
    )
    assert result.exit_code == 0, result.output
    return {
        "folder": folder,
        "root": root,
        "results": root / "adapt",
        "report": json.loads(result.stdout),
        "dataset": open_dataset(folder / "small.hdf5"),
    }


@pytest.mark.slow
def test_adapt_runs_are_the_cross_fitted_points_of_adapt_on_the_same_index(swept):
    records = [RunRecord.from_dict(r) for r in read_runs(swept["results"] / "runs.jsonl")]
    assert len(records) == 7 and all(r.status == "ok" for r in records)
    policies = [r for r in records if "policy" in r.query_params]
    assert [
        (
            r.query_params["policy"],
            r.query_params["source"],
            r.query_params["target"],
            r.query_params["folds"],
        )
        for r in policies
    ] == [("threshold", "adapt", 0.9, 2), ("threshold", "adapt", 0.97, 2)]
    assert all("mean_efSearch" in r.query_params for r in policies)
    bundle = faiss_index(swept["root"])
    config = AdaptConfig(k=K, folds=2, seed=0, n_centroids=8, kinds=("threshold",))
    report = adapt(
        bundle,
        swept["dataset"],
        K,
        0.9,
        config=config,
        goals=[Goal("recall", 0.9), Goal("recall", 0.97)],
        oracle_targets=(),
        grid=refine_grid(EFFORTS),
    )
    expected = report.to_dict()["frontiers"]["threshold"]
    store = ResultsStore(swept["results"])
    for record, point, rows in zip(policies, expected, report.per_query["threshold"], strict=True):
        assert record.recall == pytest.approx(point["recall"], abs=1e-12)
        assert record.tail is not None and record.tail.p5 == pytest.approx(point["p5_recall"])
        assert record.slice_recall("tail") == pytest.approx(point["slices"]["tail"]["recall"])
        assert record.distance_computations == pytest.approx(point["distance_computations"])
        assert record.query_params["mean_efSearch"] == pytest.approx(point["mean_effort"], abs=0.01)
        assert record.qps is not None and record.qps > 0 and record.mode == "batch"
        # the per-query arrays are the cross-fitted ones, and agree with the aggregates
        recall = store.per_query_recall(record.run_id)
        counts = store.per_query_distance_computations(record.run_id)
        assert recall is not None and counts is not None
        assert recall.shape == (swept["dataset"].n_queries,)
        np.testing.assert_allclose(recall, rows["recall"], atol=1e-6)
        np.testing.assert_array_equal(counts, rows["distance_computations"])
        assert float(recall.mean()) == pytest.approx(record.recall, abs=1e-6)
        assert float(counts.mean()) == pytest.approx(record.distance_computations)
        assert record.tail.work is not None  # the cost tail, as a uniform run has
        assert record.tail.work.p99 == pytest.approx(float(np.percentile(counts, 99)))


@pytest.mark.slow
def test_policy_runs_are_their_own_series_in_report_and_plot(swept, tmp_path):
    report = swept["report"]
    assert list(report["engines"]) == ["faiss", SERIES, "flat"]
    entry = report["engines"][SERIES]
    assert entry["engine"] == "faiss" and entry["policy"] == "threshold" and entry["runs"] == 2
    uniform_ids = {run["run_id"] for run in report["engines"]["faiss"]["pareto"]}
    _, records, _ = load_results(swept["results"])
    policy_ids = {r.run_id for r in records if "policy" in r.query_params}
    assert not uniform_ids & policy_ids  # never mixed into the uniform frontier
    assert {run["run_id"] for run in entry["pareto"]} <= policy_ids
    fronts = engine_frontiers(records)
    assert set(fronts) == {"faiss", SERIES, "flat"}
    # each policy run beside the cheapest uniform setting reaching its recall
    rows = report["policies"]
    assert [row["series"] for row in rows] == [SERIES, SERIES]
    for row in rows:
        uniform = row["uniform"]
        if uniform is None:
            continue
        assert uniform["recall"] >= row["recall"]
        cheaper = [
            r
            for r in records
            if r.engine == "faiss"
            and "policy" not in r.query_params
            and r.recall >= row["recall"]
            and r.distance_computations < uniform["distance_computations"]
        ]
        assert cheaper == []
        assert row["work_ratio"] == pytest.approx(
            row["distance_computations"] / uniform["distance_computations"]
        )
    text = run_cli("report", swept["results"])
    assert text.exit_code == 0
    assert "per-query effort policies" in text.stdout and SERIES in text.stdout
    for args, name in (
        (["--y", "p5", "--x", "work"], "plot-work-p5.png"),
        (["--y", "tail"], "plot-tail.png"),
    ):
        result = run_cli("plot", swept["results"], *args)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == str(swept["results"] / name)
        assert (swept["results"] / name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_rerun_resumes_without_training_again(swept):
    result = run_cli(
        "bench",
        swept["folder"] / "sweep.toml",
        "-o",
        swept["results"],
        "--results-root",
        swept["root"],
        "--threads",
        1,
        "--json",
    )
    assert result.exit_code == 0, result.output
    sweep = json.loads(result.stdout)["sweep"]
    phases = sweep.pop("phases")  # nothing built, trained or searched again
    assert phases["build"] == phases["load"] == phases["timed_search"] == 0
    assert sweep | {"seconds": 0} == {
        "ran": 0,
        "skipped": 7,
        "failed": 0,
        "builds": 0,
        "cached_builds": 0,
        "seconds": 0,
    }


@pytest.fixture(scope="module")
def policy_file(swept) -> Path:
    """A threshold policy trained (annkit.adaptive.adapt) on the index the sweep cached."""
    bundle = faiss_index(swept["root"])
    config = AdaptConfig(k=K, folds=2, seed=0, n_centroids=8, kinds=("threshold",))
    report = adapt(
        bundle,
        swept["dataset"],
        K,
        0.95,
        config=config,
        goals=[Goal("recall", 0.95)],
        oracle_targets=(),
        grid=refine_grid(EFFORTS),
    )
    return save_policy(report.policy, swept["folder"] / "policy.json")


@pytest.mark.slow
def test_a_policy_file_run_is_evaluate_policy_on_the_same_index(swept, policy_file):
    folder = swept["folder"]
    (folder / "files.toml").write_text(HEAD + ENGINE + 'policy = ["policy.json"]\n')
    result = run_cli(
        "bench",
        folder / "files.toml",
        "-o",
        swept["root"] / "files",
        "--results-root",
        swept["root"],
        "--threads",
        1,
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = [RunRecord.from_dict(r) for r in read_runs(swept["root"] / "files/runs.jsonl")]
    (record,) = [r for r in records if "policy" in r.query_params]
    assert record.status == "ok", record.error
    assert record.query_params["source"] == "policy.json"
    assert record.query_params["target"] == 0.95
    bundle = faiss_index(swept["root"])
    evaluation = evaluate_policy(bundle, swept["dataset"], load_policy(policy_file), K)
    assert record.recall == evaluation.recall
    assert record.distance_computations == evaluation.distance_computations
    assert record.tail is not None and evaluation.tail is not None
    assert record.tail.p5 == evaluation.tail.p5
    stored = ResultsStore(swept["root"] / "files")
    assert np.array_equal(
        stored.per_query_recall(record.run_id), evaluation.per_query_recall.astype(np.float32)
    )
    assert series_names(records)[record.run_id] == f"{SERIES} (policy.json)"
    # the same file given on the command line is the same setting (same run id)
    flag = run_cli(
        "bench",
        folder / "plain.toml",
        "--policy",
        policy_file,
        "-o",
        swept["root"] / "flag",
        "--results-root",
        swept["root"],
        "--threads",
        1,
        "--json",
    )
    assert flag.exit_code == 0, flag.output
    flagged = [
        r for r in read_runs(swept["root"] / "flag/runs.jsonl") if "policy" in r["query_params"]
    ]
    assert [r["run_id"] for r in flagged] == [record.run_id]


@pytest.mark.slow
def test_a_strict_recall_sweep_scores_a_policy_file_strictly(swept, policy_file):
    """A policy goes through the scoring function of uniform settings, so a strict-recall
    sweep measures a policy file too, under the strict rule (id overlap with the true top-k)."""
    folder = swept["folder"]
    strict_head = HEAD + 'recall = "strict"\n'
    (folder / "strict.toml").write_text(strict_head + ENGINE + 'policy = ["policy.json"]\n')
    result = run_cli(
        "bench",
        folder / "strict.toml",
        "-o",
        swept["root"] / "strict",
        "--results-root",
        swept["root"],
        "--threads",
        1,
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = [RunRecord.from_dict(r) for r in read_runs(swept["root"] / "strict/runs.jsonl")]
    assert {r.recall_rule for r in records} == {"strict"}
    (record,) = [r for r in records if "policy" in r.query_params]
    assert record.status == "ok", record.error
    stored = ResultsStore(swept["root"] / "strict")
    returned = stored.per_query_ids(record.run_id)
    assert returned is not None
    strict = strict_recall_per_query(true_neighbor_ids(swept["dataset"], K), returned, K)
    assert np.array_equal(stored.per_query_recall(record.run_id), strict.astype(np.float32))
    assert record.recall == pytest.approx(float(strict.mean()))
    measure = Measure(k=K, runs=1, recall_rule="strict")
    evaluation = evaluate_policy(
        faiss_index(swept["root"]), swept["dataset"], load_policy(policy_file), measure=measure
    )
    assert evaluation.recall_rule == "strict" and record.recall == evaluation.recall


@pytest.mark.slow
def test_a_policy_of_another_build_is_a_failed_run_with_one_line(swept, policy_file, monkeypatch):
    monkeypatch.chdir(swept["folder"])
    policy = load_policy(policy_file)
    policy.index["payload_sha256"] = {name: "0" * 64 for name in policy.index["payload_sha256"]}
    save_policy(policy, "foreign.json")
    result = run_cli(
        "bench",
        "plain.toml",
        "--policy",
        "foreign.json",
        "-o",
        "results/foreign",
        "--results-root",
        "results",
        "--threads",
        1,
        "--json",
    )
    assert result.exit_code == 0, result.output
    (failed,) = [r for r in read_runs("results/foreign/runs.jsonl") if r["status"] != "ok"]
    assert failed["query_params"] == {
        "policy": "threshold",
        "source": "foreign.json",
        "target": 0.95,
    }
    assert failed["error"] == (
        "foreign.json: policy belongs to another index (payload_sha256 "
        "differs: trained for faiss 4000 x 384); retrain it with annkit "
        "adapt"
    )
    assert json.loads(result.stdout)["failed"][0]["error"] == failed["error"]


@pytest.mark.slow
def test_a_policy_of_another_dataset_is_refused_before_anything_runs(
    swept, policy_file, monkeypatch, words10k
):
    monkeypatch.chdir(swept["folder"])
    small_dataset(words10k, Path("other.hdf5"), base=3000)
    result = run_cli(
        "bench",
        "plain.toml",
        "--policy",
        "policy.json",
        "--dataset",
        "other.hdf5",
        "-o",
        "results/other",
        "--results-root",
        "results",
        "--threads",
        1,
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: policy.json: policy belongs to another dataset (count differs: trained for "
        "faiss efConstruction=40 factory=HNSW8,Flat seed=1234 train_size=4000, 4000 x 384); "
        "retrain it with annkit adapt on this sweep's index, or use adapt = { target = ... } "
        "in the [[engine]] entry\n"
    )
    assert not Path("results/other/runs.jsonl").exists()


@pytest.mark.slow
def test_a_policy_for_no_build_of_the_sweep_is_one_line(swept, policy_file, monkeypatch):
    monkeypatch.chdir(swept["folder"])
    Path("hnsw16.toml").write_text(HEAD + ENGINE.replace("HNSW8", "HNSW16"))
    result = run_cli(
        "bench",
        "hnsw16.toml",
        "--policy",
        "policy.json",
        "-o",
        "results/x",
        "--results-root",
        "results",
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: policy.json: no build of hnsw16.toml is the index this policy was trained for "
        "(faiss efConstruction=40 factory=HNSW8,Flat seed=1234 train_size=4000, 4000 x 384); "
        "add that build to the sweep\n"
    )
    Path("wrong.toml").write_text(HEAD + '[[engine]]\nname = "hnsw"\npolicy = "policy.json"\n')
    with pytest.raises(
        SweepError,
        match=r"^wrong.toml line 6: engine 'hnsw': policy.json is a "
        r"policy for faiss, not hnsw$",
    ):
        load_sweep("wrong.toml")


# ------------------------------------------------------------------ the sweep file (fast)


def parse(text: str) -> object:
    return parse_sweep(HEAD + text, "sweep.toml")


def test_adapt_adds_one_run_per_kind_and_target_on_a_refined_grid():
    spec = parse(ENGINE + ADAPT + FLAT)
    (faiss, _) = spec.builds
    settings = [q.policy for q in faiss.queries if q.policy is not None]
    assert len(faiss.queries) == 6 and spec.has_policies
    assert [(s.kind, s.target, s.folds, s.centroids, s.seed) for s in settings] == [
        ("threshold", 0.9, 2, 8, 0),
        ("threshold", 0.97, 2, 8, 0),
    ]
    assert settings[0].grid == tuple(refine_grid(EFFORTS))
    policy_queries = [q for q in faiss.queries if q.policy is not None]
    assert policy_queries[0].params == {
        "policy": "threshold",
        "source": "adapt",
        "target": 0.9,
        "folds": 2,
    }
    assert policy_queries[0].run_id == make_run_id(
        "faiss", faiss.resolved, settings[0].key(), K, "batch"
    )
    # every adapt setting is part of the run id (the cache key of the result)
    for changed in (
        "folds = 3, centroids = 8",
        "folds = 2, centroids = 8, seed = 1",
        "folds = 2, centroids = 4",
        "folds = 2, centroids = 8, grid = [16, 64]",
    ):
        other = parse(ENGINE + ADAPT.replace("folds = 2, centroids = 8", changed))
        ids = {q.run_id for q in other.builds[0].queries if q.policy is not None}
        assert len(ids) == 2 and not ids & {q.run_id for q in policy_queries}, changed
    both = parse(ENGINE + "adapt = { target = 0.95 }\n")
    assert [q.policy.kind for q in both.builds[0].queries if q.policy] == ["learned", "threshold"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'adapt = { kinds = ["threshold"] }\n',
            "sweep.toml line 8: engine 'faiss': adapt needs target = <mean recall@k> or a list of "
            "them, e.g. adapt = { target = [0.95, 0.99] }",
        ),
        (
            "adapt = { target = 1.5 }\n",
            "sweep.toml line 8: engine 'faiss': adapt target must be a mean recall in (0, 1] or a "
            "list of them, got 1.5",
        ),
        (
            'adapt = { target = 0.9, kinds = ["magic"] }\n',
            "sweep.toml line 8: engine 'faiss': adapt kinds must be among learned, threshold, got "
            "['magic']",
        ),
        (
            "adapt = { target = 0.9, folds = 1 }\n",
            "sweep.toml line 8: engine 'faiss': adapt folds must be an integer >= 2, got 1",
        ),
        (
            "adapt = { target = 0.9, grid = [16] }\n",
            "sweep.toml line 8: engine 'faiss': adapt grid must list at least two effort values "
            ">= 1, got [16]",
        ),
        (
            "adapt = { target = 0.9, rounds = 5 }\n",
            "sweep.toml line 8: engine 'faiss': unknown adapt key 'rounds' (known: target, kinds, "
            "folds, grid, seed, centroids)",
        ),
        (
            "adapt = 0.9\n",
            "sweep.toml line 8: engine 'faiss': adapt must be a table, e.g. adapt = { target = "
            "[0.95, 0.99] }",
        ),
    ],
)
def test_bad_adapt_tables_name_file_and_line(text, message):
    with pytest.raises(SweepError) as caught:
        parse(ENGINE + text)
    assert str(caught.value) == message


def test_adapt_needs_an_effort_parameter_and_batch_mode():
    with pytest.raises(SweepError) as caught:
        parse('[[engine]]\nname = "flat"\nadapt = { target = 0.9 }\n')
    assert str(caught.value) == (
        "sweep.toml line 6: engine 'flat' has no per-query effort "
        "parameter (it searches exactly): adapt needs an engine with "
        "one"
    )
    with pytest.raises(SweepError) as caught:
        parse_sweep(
            HEAD.replace("runs = 1", 'runs = 1\nmode = "single"') + ENGINE + ADAPT, "sweep.toml"
        )
    assert str(caught.value) == (
        'sweep.toml line 9: adapt scores its policies with batch searches: set mode = "batch" '
        "in [bench], or list trained policy files with policy = [...]"
    )


def test_missing_or_damaged_policy_files_name_the_line(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    for name, reason in (
        ("missing.json", "no such policy file"),
        ("bad.json", "damaged policy file (not valid JSON)"),
    ):
        (tmp_path / "s.toml").write_text(HEAD + ENGINE + f'policy = "{name}"\n')
        with pytest.raises(SweepError) as caught:
            load_sweep(tmp_path / "s.toml")
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / 's.toml'} line 8: engine 'faiss': ")
        assert f"{name}: {reason}" in message and "\n" not in message


def test_policies_refuse_strict_recall_and_ray_before_anything_runs(tmp_path):
    spec = parse(ENGINE + ADAPT)
    with pytest.raises(
        InputError,
        match=r"^sweep.toml: policy runs are scored with the "
        r"tolerant recall rule; drop the strict rule or the "
        r"policies$",
    ):
        run_sweep(spec.with_recall_rule("strict"), tmp_path / "r", results_root=tmp_path)
    with pytest.raises(
        InputError,
        match=r"^sweep.toml: policy runs are measured locally; "
        r"drop --ray or the policies$",
    ):
        run_sweep(spec, tmp_path / "r", results_root=tmp_path, run_plan=lambda sweep, plan: None)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_time_limit_on_adapt_ends_all_runs_of_that_adapt_call_at_once(tmp_path):
    from bench_fakes import SlowEffortEngine

    from annkit.engines.base import _REGISTRY, register

    rng = np.random.default_rng(3)
    write_dataset_hdf5(
        tmp_path / "tiny.hdf5",
        base=rng.standard_normal((200, 8)).astype(np.float32),
        queries=rng.standard_normal((60, 8)).astype(np.float32),
        metric="euclidean",
    )
    text = (
        f'[bench]\ndataset = "{tmp_path / "tiny.hdf5"}"\nk = 5\nruns = 1\ntimeout = 2\n'
        '[[engine]]\nname = "fake-effort"\nbuild = { delay = 0.4 }\n'
        'query = { effort = 8 }\nadapt = { target = [0.8, 0.9], kinds = ["threshold"], '
        "folds = 2, centroids = 0, grid = [1, 2, 3, 4, 5, 6, 7, 8] }\n"
    )
    register(SlowEffortEngine)
    try:
        events = []
        run_sweep(
            parse_sweep(text),
            tmp_path / "res",
            results_root=tmp_path,
            threads=1,
            on_event=events.append,
        )
    finally:
        _REGISTRY.pop(SlowEffortEngine.name, None)
    got = [
        (r["query_params"].get("target"), r["status"], r["error"])
        for r in read_runs(tmp_path / "res" / "runs.jsonl")
    ]
    assert got == [
        (None, "ok", None),
        (0.8, "timeout", "training its adapt policies took longer than 2s"),
        (0.9, "timeout", "training its adapt policies took longer than 2s"),
    ]
    started = [e.message for e in events if e.kind == "query"]
    assert len(started) == 2 and "policy=threshold" in started[1]  # 0.9 was never retried
