"""Tail rescue (annkit.adaptive): per-query effort search, cross-fitting, policy files and
``annkit adapt``, on the bundled words-10k with seeded small indexes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from bundles import make_index
from cli_runner import run_cli

from annkit.adaptive import (
    AdaptConfig,
    Goal,
    PolicyError,
    adapt,
    adaptive_search,
    load_policy,
    save_policy,
    search_with_efforts,
)
from annkit.adaptive.search import refine_grid
from annkit.bundle import Bundle
from annkit.engines import engine_names
from annkit.errors import InputError, ParamError
from annkit.types import Dataset

lightgbm = pytest.importorskip(
    "lightgbm", reason="learned policies need the adapt extra (pip install 'annkit[adapt]')"
)

K = 10
GRID = [10, 14, 20, 28, 40, 57, 80, 113, 160, 226, 320]
SMALL = AdaptConfig(
    k=K,
    folds=3,
    seed=0,
    n_centroids=8,
    label_targets=(1.0,),
    first_indices=(0,),
    stages=("full", "none"),
    rounds=20,
)


def subset(dataset: Dataset, count: int) -> Dataset:
    return Dataset(
        name=f"{dataset.name}[:{count}]",
        metric=dataset.metric,
        base=dataset.base,
        queries=dataset.queries[:count],
        neighbors=dataset.neighbors[:count],
        weights=dataset.weights[:count],
    )


@pytest.fixture(scope="module")
def counting_index(tmp_path_factory: pytest.TempPathFactory, words10k: Dataset) -> Bundle:
    """An index whose engine counts distance computations exactly and has an effort knob."""
    if "faiss" not in engine_names():
        pytest.skip("no registered engine both counts distances and has an effort parameter")
    folder = tmp_path_factory.mktemp("adaptive") / "faiss"
    return make_index(folder, words10k, "faiss", {"factory": "HNSW8,Flat", "efConstruction": 40})


@pytest.fixture(scope="module")
def small_report(hnsw_words10k: Bundle, words10k: Dataset):
    return adapt(
        hnsw_words10k,
        subset(words10k, 150),
        K,
        0.95,
        config=SMALL,
        goals=[Goal("recall", 0.95)],
        oracle_targets=(1.0,),
        grid=GRID,
    )


def test_per_query_search_equals_uniform_when_efforts_are_equal(
    hnsw_words10k: Bundle, words10k: Dataset
) -> None:
    engine, queries = hnsw_words10k.engine, words10k.queries[:200]
    engine.set_query_params(ef=40)
    uniform = engine.search(queries, K)
    engine.set_query_params(ef=17)
    same = search_with_efforts(engine, queries, K, np.full(len(queries), 40))
    assert np.array_equal(same.ids, uniform.ids)
    assert np.array_equal(same.distances, uniform.distances)
    assert engine.query["ef"] == 17  # the caller's setting is restored
    efforts = np.where(np.arange(len(queries)) % 3 == 0, 10, 80)
    mixed = search_with_efforts(engine, queries, K, efforts)
    for value in (10, 80):
        rows = efforts == value
        engine.set_query_params(ef=value)
        assert np.array_equal(mixed.ids[rows], engine.search(queries[rows], K).ids)


def test_exact_engine_is_refused(tmp_path: Path, words10k: Dataset) -> None:
    flat = make_index(tmp_path / "flat", subset(words10k, 150), "flat", {})
    with pytest.raises(
        ParamError,
        match=r"^engine flat has no per-query effort parameter "
        r"\(it searches exactly\); adaptive effort needs an index of ",
    ):
        adapt(flat, subset(words10k, 150), K, 0.9, config=SMALL)


@pytest.mark.slow
def test_cross_fitting_never_scores_a_query_with_a_policy_trained_on_it(
    small_report, words10k: Dataset
) -> None:
    report = small_report
    assert report.mode.startswith("cross-fitted over 3 folds")
    folds = report.fold_of_query
    assert folds is not None and folds.shape == (150,) and set(folds.tolist()) == {0, 1, 2}
    scored = np.concatenate(report.scored_rows)
    assert np.array_equal(np.sort(scored), np.arange(150))  # every query scored exactly once
    learned = report.frontiers["learned"][0]
    for fold, (train, test) in enumerate(zip(report.train_rows, report.scored_rows, strict=True)):
        assert np.intersect1d(train, test).size == 0
        assert np.all(folds[test] == fold) and np.all(folds[train] != fold)
        assert learned["folds"][fold]["training"]["queries"] == train.size
    assert report.policy.training["queries"] == 150  # the saved policy: all queries
    assert {"uniform", "learned", "threshold", "oracle"} == set(report.frontiers)
    point = report.frontiers["learned"][0]
    for key in ("recall", "p5_recall", "tail", "slices", "distance_computations", "qps"):
        assert key in point
    assert point["distance_computations"] is None  # hnswlib cannot count: never estimated
    assert report.frontiers["oracle"][0]["uses_ground_truth"] is True


def test_too_few_queries_says_how_many_are_needed(hnsw_words10k: Bundle, words10k: Dataset) -> None:
    with pytest.raises(InputError) as error:
        adapt(hnsw_words10k, subset(words10k, 30), K, 0.9, config=AdaptConfig(folds=5))
    assert str(error.value) == (
        "adapt needs at least 100 training queries for 5 folds (20 per fold), got 30; give "
        "more queries, fewer --folds, or --train-queries FILE"
    )


def test_policy_file_round_trip(
    small_report, hnsw_words10k: Bundle, words10k: Dataset, tmp_path: Path
) -> None:
    path = save_policy(small_report.policy, tmp_path / "policy.json")
    loaded = load_policy(path, hnsw_words10k.manifest)
    assert loaded.manifest() == small_report.policy.manifest()
    assert np.array_equal(loaded.centroids, small_report.policy.centroids)
    queries = words10k.queries[200:400]
    first = adaptive_search(hnsw_words10k.engine, small_report.policy, queries, K)
    second = adaptive_search(hnsw_words10k.engine, loaded, queries, K)
    assert np.array_equal(first.ids, second.ids)
    assert np.array_equal(first.efforts, second.efforts)
    assert np.all(first.efforts >= loaded.first_effort)
    assert np.array_equal(first.second_stage, first.efforts > loaded.first_effort)
    stored = json.loads(path.read_text())  # plain JSON with LightGBM's text model: no pickle
    assert stored["payload"]["model"].startswith("tree\nversion=")


def test_damaged_and_foreign_policy_files(
    small_report, hnsw_words10k: Bundle, words10k: Dataset, tmp_path: Path
) -> None:
    path = save_policy(small_report.policy, tmp_path / "policy.json")
    document = json.loads(path.read_text())
    document["payload"]["model"] = document["payload"]["model"].replace("tree", "tr3e", 1)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(document))
    with pytest.raises(PolicyError) as error:
        load_policy(damaged, hnsw_words10k.manifest)
    assert str(error.value) == (
        f"{damaged}: damaged policy file (checksum mismatch); retrain it with annkit adapt"
    )
    truncated = tmp_path / "truncated.json"
    truncated.write_text(path.read_text()[:500])
    with pytest.raises(PolicyError) as error:
        load_policy(truncated)
    assert str(error.value) == (
        f"{truncated}: damaged policy file (not valid JSON); retrain it with annkit adapt"
    )
    smaller = Dataset(
        name="first-2000",
        metric=words10k.metric,
        base=words10k.base[:2000],
        queries=words10k.queries[:10],
    )
    other = make_index(tmp_path / "other", smaller, "hnsw", {"M": 8, "ef_construction": 64})
    with pytest.raises(PolicyError) as error:
        load_policy(path, other.manifest)
    assert str(error.value) == (
        f"{path}: policy belongs to another index (count differs: trained for hnsw "
        "10000 x 384); retrain it with annkit adapt"
    )


@pytest.mark.slow
def test_reported_work_is_the_sum_of_the_engine_counts_over_stages(
    counting_index: Bundle, words10k: Dataset
) -> None:
    dataset = subset(words10k, 150)
    report = adapt(
        counting_index,
        dataset,
        K,
        0.97,
        config=SMALL,
        goals=[Goal("recall", 0.97)],
        oracle_targets=(1.0,),
        grid=GRID,
    )
    policy, engine = report.policy, counting_index.engine
    queries = words10k.queries[300:500]
    result = adaptive_search(engine, policy, queries, K)
    assert result.second_stage.any()
    expected = np.full(len(queries), policy.n_centroids, dtype=np.int64)
    if policy.stage.kind != "none":
        engine.set_query_params(**{policy.param: policy.stage.effort})
        expected += engine.search(queries, policy.stage.k).distance_computations
    for value in np.unique(result.efforts[result.second_stage]):
        rows = np.flatnonzero(result.second_stage & (result.efforts == value))
        engine.set_query_params(**{policy.param: int(value)})
        expected[rows] += engine.search(queries[rows], K).distance_computations
    assert np.array_equal(result.distance_computations, expected)
    point = report.frontiers["learned"][0]
    stages = point["stage_computations"]
    assert point["distance_computations"] == pytest.approx(sum(stages.values()))


def test_refine_grid_inserts_geometric_midpoints() -> None:
    assert refine_grid([10, 20, 40], steps=2) == [10, 14, 20, 28, 40]
    assert refine_grid([1, 2, 4], steps=4) == [1, 2, 3, 4]


def test_cli_refuses_exact_engine_and_existing_output(
    tmp_path: Path, words10k: Dataset, hnsw_words10k: Bundle
) -> None:
    flat = make_index(tmp_path / "flat", subset(words10k, 150), "flat", {})
    result = run_cli("adapt", flat.path, "words-10k", "-o", tmp_path / "p.json")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: engine flat has no per-query effort parameter")
    assert len(result.stderr.strip().splitlines()) == 1
    existing = tmp_path / "exists.json"
    existing.write_text("{}")
    result = run_cli("adapt", hnsw_words10k.path, "words-10k", "-o", existing)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {existing} already exists (use --force to replace it)\n"


@pytest.mark.slow
def test_cli_adapt_json_and_train_queries(
    tmp_path: Path, words10k: Dataset, hnsw_words10k: Bundle
) -> None:
    base, queries = tmp_path / "base.npy", tmp_path / "queries.npy"
    np.save(base, words10k.base)
    np.save(queries, words10k.queries[:120])
    policy = tmp_path / "policy.json"
    result = run_cli(
        "adapt",
        hnsw_words10k.path,
        base,
        "--queries",
        queries,
        "--metric",
        "angular",
        "--folds",
        "2",
        "--centroids",
        "4",
        "--target",
        "0.95",
        "--json",
        "--grid",
        ",".join(map(str, GRID)),
        "-o",
        policy,
        "--force",  # write the policy even where none beats uniform effort
    )
    out = json.loads(result.stdout)
    assert result.exit_code == 0, result.output  # --force: written, exit 0, win or not
    assert out["mode"].startswith("cross-fitted over 2 folds")
    assert set(out["frontiers"]) == {"uniform", "learned", "threshold", "oracle"}
    assert len(out["fold_of_query"]) == 120 and out["policy_file"] == str(policy)
    assert load_policy(policy, hnsw_words10k.manifest).kind == "learned"
    train = tmp_path / "train.npy"
    np.save(train, words10k.queries[500:620])
    result = run_cli(
        "adapt",
        hnsw_words10k.path,
        base,
        "--queries",
        queries,
        "--metric",
        "angular",
        "--train-queries",
        train,
        "--folds",
        "2",
        "--kind",
        "threshold",
        "--json",
        "-o",
        policy,
        "--force",
    )
    out = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert out["mode"].startswith("trained on 120 training queries (train.npy), scored on 120")
    assert out["fold_of_query"] is None
    assert load_policy(policy, hnsw_words10k.manifest).kind == "threshold"


@pytest.mark.slow
def test_query_and_evaluate_with_a_policy(
    small_report, hnsw_words10k: Bundle, words10k: Dataset, tmp_path: Path
) -> None:
    from annkit.adaptive.evaluate import evaluate_policy

    policy_file = save_policy(small_report.policy, tmp_path / "policy.json")
    queries = tmp_path / "queries.npy"
    np.save(queries, words10k.queries[200:260])
    output = tmp_path / "ids.npy"
    result = run_cli(
        "query", hnsw_words10k.path, queries, "-o", output, "--policy", policy_file, "--json"
    )
    assert result.exit_code == 0, result.output
    expected = adaptive_search(
        hnsw_words10k.engine, small_report.policy, words10k.queries[200:260], K
    )
    assert np.array_equal(np.load(output), expected.ids)
    assert json.loads(result.stdout)["query_params"] == {"policy": str(policy_file)}
    damaged = tmp_path / "damaged.json"
    damaged.write_text(
        policy_file.read_text()
        .replace('"seed": 0', '"seed": 1', 1)
        .replace('"model": "tree', '"model": "tree ', 1)
    )
    result = run_cli("query", hnsw_words10k.path, queries, "-o", output, "--policy", damaged)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {damaged}: damaged policy file (checksum mismatch); retrain it with annkit adapt\n"
    )
    result = run_cli("evaluate", hnsw_words10k.path, "words-10k", "--policy", policy_file, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["query_params"]["policy"] == "learned"
    result = run_cli(
        "evaluate", hnsw_words10k.path, "words-10k", "--policy", policy_file, "-p", "ef=20"
    )
    assert result.exit_code == 2
    assert result.stderr == "Error: --policy chooses each query's effort; drop -p\n"
    evaluation = evaluate_policy(hnsw_words10k, subset(words10k, 300), small_report.policy)
    assert 0.0 <= evaluation.recall <= 1.0 and evaluation.k == K
    assert evaluation.query_params["policy"] == "learned"
    assert evaluation.distance_computations is None  # hnswlib cannot count


@pytest.mark.slow
def test_work_matched_policies_stay_within_the_training_budget(
    hnsw_words10k: Bundle, words10k: Dataset
) -> None:
    report = adapt(
        hnsw_words10k,
        subset(words10k, 150),
        K,
        0.95,
        config=AdaptConfig(
            k=K,
            folds=3,
            n_centroids=8,
            label_targets=(1.0,),
            first_indices=(0, 2),
            stages=("full", "probe"),
            rounds=20,
        ),
        goals=[Goal("uniform-budget", 20)],
        oracle_targets=(1.0,),
        grid=GRID,
    )
    for kind in ("learned", "threshold"):
        for fold in report.frontiers[kind][0]["folds"]:
            training = fold["training"]
            # effort units (hnswlib cannot count); "equal work" allows 2% more
            assert training["work_budget"] == pytest.approx(20.0 * 1.02)
            assert training["train_work"] <= training["work_budget"]


def test_missing_lightgbm_is_one_line(
    monkeypatch: pytest.MonkeyPatch, hnsw_words10k: Bundle, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if the adapt extra were absent
    result = run_cli("adapt", hnsw_words10k.path, "words-10k", "-o", tmp_path / "p.json")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: learned policies need lightgbm: pip install "
        "'annkit[adapt]' (or use --kind threshold)\n"
    )


def test_labels_are_annkit_effort_minimum_efforts(hnsw_words10k: Bundle, words10k: Dataset) -> None:
    from annkit.adaptive.table import least_effort_index, measure_table
    from annkit.effort import minimum_effort
    from annkit.evaluate import true_neighbor_distances

    dataset = subset(words10k, 200)
    truth = true_neighbor_distances(dataset, K)
    table = measure_table(
        hnsw_words10k.engine,
        dataset.base,
        dataset.queries,
        dataset.metric,
        truth,
        K,
        GRID,
        [0],
        np.zeros((0, dataset.dim), np.float32),
    )
    for target in (0.9, 1.0):
        index = least_effort_index(table.recall, target)
        labels = np.where(index < len(GRID), np.asarray(GRID + [0])[index], np.inf)
        bisected = minimum_effort(hnsw_words10k, dataset, K, target, GRID, truth).min_effort
        monotone = np.all(np.diff(table.recall, axis=1) >= -1e-9, axis=1)
        assert monotone.mean() > 0.9
        assert np.array_equal(labels[monotone], bisected[monotone])


@pytest.mark.slow
def test_risk_model_searches_again_exactly_the_queries_it_flags(
    counting_index: Bundle, words10k: Dataset, tmp_path: Path
) -> None:
    from annkit.adaptive.calibrate import calibrate_learned
    from annkit.adaptive.families import train_families
    from annkit.adaptive.policy import Policy, index_identity
    from annkit.adaptive.table import measure_table
    from annkit.adaptive.train import default_centroids
    from annkit.evaluate import true_neighbor_distances

    dataset = subset(words10k, 300)
    truth = true_neighbor_distances(dataset, K)
    config = AdaptConfig(k=K, folds=3, seed=0, n_centroids=4, rounds=20)
    centroids = default_centroids(dataset.base, dataset.metric, config)
    table = measure_table(
        counting_index.engine,
        dataset.base,
        dataset.queries,
        dataset.metric,
        truth,
        K,
        GRID,
        [0, 1],
        centroids,
    )
    rows = np.arange(dataset.n_queries)
    families = [
        f
        for f in train_families(table, rows, ["full@10", "full@14"], (1.0,), 3, 0, 20)
        if f.model == "risk"
    ]
    assert families, "both outcomes occur after a first stage at efSearch 10"
    family, calibration, stats = calibrate_learned(
        table, rows, families, Goal("uniform-recall", 40)
    )
    assert calibration["model"] == "risk" and calibration["hard"] in GRID
    policy = Policy(
        kind="learned",
        index=index_identity(counting_index.manifest),
        param="efSearch",
        grid=GRID,
        k=K,
        stage=table.stages[family.stage].stage,
        calibration=calibration,
        centroids=centroids,
        model_text=family.model_text,
    )
    path = save_policy(policy, tmp_path / "risk.json")
    loaded = load_policy(path, counting_index.manifest)
    queries = words10k.queries[300:700]
    timed = adaptive_search(counting_index.engine, loaded, queries, K, count=False)
    result = adaptive_search(counting_index.engine, loaded, queries, K)
    assert timed.distance_computations is None  # timed passes skip the counting
    assert np.array_equal(timed.ids, result.ids) and result.distance_computations is not None
    first = search_with_efforts(
        counting_index.engine, queries, K, np.full(len(queries), loaded.first_effort)
    )
    risk = loaded.predicted_log_effort(loaded.features(queries, first))
    flagged = risk > calibration["threshold"]
    assert np.array_equal(result.second_stage, flagged)
    assert np.all(result.efforts[flagged] == calibration["hard"])
    assert np.all(result.efforts[~flagged] == loaded.first_effort)
    assert np.array_equal(result.ids[~flagged], first.ids[~flagged])
    document = json.loads(path.read_text())
    document["calibration"]["hard"] = 7  # not a grid value
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    with pytest.raises(PolicyError, match="a risk model needs a full first stage"):
        load_policy(edited)


def test_least_work_for_recall_against_brute_force() -> None:
    import itertools

    from annkit.adaptive.frontier import least_work_for_recall

    rng = np.random.default_rng(0)
    for _ in range(300):
        n_rows, n_options = 4, 3
        recall = rng.integers(0, 11, (n_rows, n_options)) / 10
        cost = rng.integers(1, 30, (n_rows, n_options)).astype(float)
        goal = float(rng.uniform(0.0, 1.0))
        feasible = []
        for choice in itertools.product(range(n_options), repeat=n_rows):
            rows = np.arange(n_rows)
            if recall[rows, choice].mean() >= goal - 1e-9:
                feasible.append(cost[rows, choice].mean())
        found = least_work_for_recall(recall, cost, goal)
        if not feasible:
            assert found is None
            continue
        assert found is not None and found[1].mean() >= goal - 1e-9
        # feasible, so never below the true least work, and at most one option step above
        step = (cost.max(axis=1) - cost.min(axis=1)).max() / n_rows
        assert min(feasible) - 1e-9 <= found[0] <= min(feasible) + step + 1e-9


def test_room_bounds_at_each_operating_point(small_report) -> None:
    from annkit.cli.adapt import verdicts

    summary = small_report.to_dict()
    for entry in summary["comparisons"]:
        room = entry["room"]
        assert room["uses_ground_truth"] and room["work_unit"] == "effort"  # hnswlib: no counts
        assert room["recall"] == pytest.approx(entry["uniform"]["recall"])
        # searching every query at the uniform effort is among the choices of both bounds
        assert 0 < room["oracle_work_ratio"] <= 1 + 1e-9
        assert 0 < room["two_stage_oracle_work_ratio"] <= 1 + 1e-9
        assert room["two_stage_first_effort"] <= entry["uniform"]["setting"]["ef"]
    lines = verdicts(summary)
    assert sum(line.startswith("  room there (uses the ground truth") for line in lines) == 3


def test_recall_matched_calibration_keeps_the_uniform_p5() -> None:
    from annkit.adaptive.calibrate import _choose

    # column 0: cheapest with the mean recall, p5 0.5; column 1: dearer, p5 0.95
    recall = np.array([[1.0, 0.95]] * 17 + [[0.5, 0.95]] * 3)
    cost = np.array([[1.0, 2.0]] * 20)
    assert recall[:, 0].mean() >= 0.9 and recall[:, 1].mean() >= 0.9
    assert _choose(recall, cost, 0.9, None) == 0
    assert _choose(recall, cost, 0.9, None, p5_floor=0.9) == 1
    # no column reaches the floor: the best p5 among those meeting the recall
    assert _choose(recall, cost, 0.9, None, p5_floor=1.0) == 1


def test_policy_wins_needs_less_work_at_kept_recall_or_a_better_tail_at_equal_work() -> None:
    from annkit.adaptive.run import policy_wins

    uniform = {"recall": 0.95, "p5_recall": 0.7}
    cheaper = {"work_ratio": 0.9, "recall_change": 0.0, "p5_change": 0.0}
    assert policy_wins(
        [{"operating_point": 0.95, "uniform": uniform, "learned (recall matched)": cheaper}]
    ) == ["near recall 0.95: learned (recall matched) 0.90x the cost"]
    worse_p5 = {**cheaper, "p5_change": -0.1}
    lost_recall = {**cheaper, "recall_change": -0.01}
    flat_tail = {"work_ratio": 1.01, "recall_change": 0.0, "p5_change": 0.0}
    flat_tail["tail_band_change"] = None  # data without a tail band
    none = [
        {
            "operating_point": 0.95,
            "uniform": uniform,
            "learned (recall matched)": worse_p5,
            "threshold (recall matched)": lost_recall,
            "learned (work matched)": flat_tail,
        }
    ]
    assert policy_wins(none) == []
    better_p5 = {**flat_tail, "p5_change": 0.1}
    assert policy_wins([{**none[0], "learned (work matched)": better_p5}]) == [
        "near recall 0.95: learned (work matched) p5 +0.10"
    ]
    small_tail = {**flat_tail, "tail_band_change": 0.0027}  # below the gate's tolerance
    assert policy_wins([{**none[0], "learned (work matched)": small_tail}]) == []
    better_tail = {**flat_tail, "tail_band_change": 0.0061}
    assert policy_wins([{**none[0], "learned (work matched)": better_tail}]) == [
        "near recall 0.95: learned (work matched) tail +0.0061"
    ]
    # an engine that cannot count: the QPS ratio stands in for the work
    timed = {"work_ratio": None, "qps_ratio": 1.25, "recall_change": 0.0, "p5_change": 0.0}
    assert policy_wins(
        [{"operating_point": 0.9, "uniform": uniform, "threshold (recall matched)": timed}]
    ) == ["near recall 0.9: threshold (recall matched) 0.80x the cost"]


@pytest.mark.slow
def test_adapt_without_a_winning_policy_exits_1_and_writes_nothing(
    tmp_path: Path, hnsw_words10k: Bundle
) -> None:
    policy = tmp_path / "p.json"
    args = ["adapt", hnsw_words10k.path, "words-10k", "--kind", "threshold", "--folds", "2"]
    args += ["--grid", ",".join(map(str, GRID)), "--max-queries", "200", "--json", "-o", policy]
    result = run_cli(*args)
    out = json.loads(result.stdout)
    assert result.exit_code == (0 if out["wins"] else 1)
    assert policy.exists() == bool(out["wins"])
    assert out["policy_file"] == (str(policy) if out["wins"] else None)
    forced = run_cli(*args, "--force")  # hnswlib cannot count: wins are timed, so may differ
    assert forced.exit_code == 0  # --force: the user keeps the policy, win or not
    assert policy.exists()
    trained = json.loads(policy.read_text())["training"]["query_hashes"]
    assert len(trained) == 200 and len(set(trained)) == 200


def test_the_default_grid_grows_until_uniform_reaches_the_top_operating_point(
    hnsw_words10k: Bundle,
) -> None:
    """Out-of-distribution queries ended the grid short of 0.99 (0.861 and 0.957 seen): the
    grid now doubles until uniform effort reaches it, or says where it stopped."""
    from annkit.adaptive.run import extend_grid

    engine = hnsw_words10k.engine
    asked: list[int] = []

    def recall_at(value: int) -> float:
        asked.append(value)
        return min(1.0, value / 1000)

    values, note = extend_grid(engine, [10, 20, 40, 80], recall_at, 0.99, "ef")
    assert note is None and values[-1] == 1280 and recall_at(values[-1]) >= 0.99
    assert asked[:5] == [80, 160, 320, 640, 1280] and values == sorted(set(values))
    values, note = extend_grid(engine, [10, 20], lambda value: 0.5, 0.99, "ef")
    assert values[-1] == 20 * 64
    assert note == (
        "the uniform grid's best recall is 0.5000 at ef=1280, below 0.99: operating points "
        "above it are not measured"
    )


@pytest.mark.slow
def test_evaluating_a_policy_on_its_training_queries_says_in_sample(
    tmp_path: Path, hnsw_words10k: Bundle
) -> None:
    """Item 10: evaluate --policy on the queries the policy trained on reported in-sample
    figures without a word; the policy now keeps hashes of its training queries."""
    policy = tmp_path / "p.json"
    args = ["adapt", hnsw_words10k.path, "words-10k", "--kind", "threshold", "--folds", "2"]
    args += ["--grid", ",".join(map(str, GRID)), "--max-queries", "200", "-o", policy]
    trained = run_cli(*args, "--force")
    assert trained.exit_code == 0 and policy.exists(), trained.output
    result = run_cli("evaluate", hnsw_words10k.path, "words-10k", "--policy", policy, "--json")
    assert result.exit_code == 0, result.output
    assert "annkit: in-sample: 200 of 1,000 queries of words-10k trained this policy" in (
        result.stderr
    )
    other = run_cli(
        "evaluate",
        hnsw_words10k.path,
        "words-10k",
        "--policy",
        policy,
        "--json",
        "--max-queries",
        "50",
    )
    assert other.exit_code == 0 and "in-sample" in other.stderr  # a sample overlapping them
