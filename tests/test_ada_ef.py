"""The ada-ef policy kind: the distance model against the exact distance lists, its
calibration and its search inside annkit's own graph search (work = the kernel's counts
plus the model's dot products), its file, and adapt's default kinds."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from bundles import head_subset, make_index
from cli_runner import run_cli

from annkit.adaptive import (
    AdaptConfig,
    PolicyError,
    adapt,
    adaptive_search,
    load_policy,
    save_policy,
)
from annkit.adaptive.ada_ef import DistanceModel, bin_efforts
from annkit.adaptive.features import metric_distances
from annkit.adaptive.goal import Goal
from annkit.adaptive.run import applicable_kinds
from annkit.io import write_dataset_hdf5

pytest.importorskip("numba")

from annkit.engines.hnsw_kernel import kernel_for  # noqa: E402

K = 10
GRID = [10, 20, 40, 80, 160]
GOALS = [Goal("recall", 0.95), Goal("uniform-recall", 40), Goal("uniform-budget", 20)]


@pytest.fixture(scope="module")
def report(words10k, tmp_path_factory):
    data = head_subset(words10k, 3000, 240)
    folder = tmp_path_factory.mktemp("ada-ef") / "faiss-hnsw"
    bundle = make_index(folder, data, "faiss", {"factory": "HNSW16,Flat", "efConstruction": 64})
    config = AdaptConfig(k=K, folds=3, kinds=("ada-ef",), n_centroids=0)
    return bundle, data, adapt(bundle, data, K, 0.95, config=config, goals=GOALS, grid=GRID)


@pytest.mark.parametrize("metric", ["angular", "euclidean", "ip"])
def test_full_rank_model_gives_each_querys_exact_distance_moments(words10k, metric):
    """With every covariance direction kept, the model's mean and standard deviation are
    those of the query's whole distance list (squared L2 for euclidean)."""
    base = np.asarray(words10k.base[:2000], dtype=np.float64)
    queries = np.asarray(words10k.queries[:50], dtype=np.float64)
    model = DistanceModel.fit(base, metric, rank=base.shape[1] + 1)
    mean, std = model.moments(queries)
    exact = metric_distances(queries, base, metric)
    if metric == "euclidean":
        exact = exact**2
    np.testing.assert_allclose(mean, exact.mean(axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std, exact.std(axis=1, ddof=1), rtol=1e-5)


def test_low_rank_model_stays_close_and_costs_its_dot_products(words10k):
    base = np.asarray(words10k.base[:2000], dtype=np.float64)
    queries = np.asarray(words10k.queries[:200], dtype=np.float64)
    model = DistanceModel.fit(base, "angular")
    assert model.cost == 1 + model.axes.shape[0] == 17
    _, std = model.moments(queries)
    exact = metric_distances(queries, base, "angular").std(axis=1, ddof=1)
    assert np.median(np.abs(std / exact - 1.0)) < 0.15


def test_bin_efforts_pick_the_least_effort_reaching_the_target():
    recall = np.array([[0.5, 0.8, 1.0], [0.9, 1.0, 1.0], [0.2, 0.4, 0.6], [0.8, 0.9, 1.0]])
    bins = np.array([0, 1, 0, 1])
    # bin 0 (rows 0, 2): means 0.35, 0.6, 0.8; bin 1 (rows 1, 3): 0.85, 0.95, 1.0
    np.testing.assert_array_equal(bin_efforts(bins, recall, 0, 0.9, 3), [2, 1, 0])
    np.testing.assert_array_equal(bin_efforts(bins, recall, 1, 0.5, 2), [1, 1])


def test_ada_ef_gets_frontiers_fitted_per_fold(report):
    _, _, result = report
    points = result.frontiers["ada-ef"]
    assert [p["setting"]["goal"] for p in points] == [g.label() for g in GOALS]
    for point in points:
        assert point["stage_computations"]["features"] == 17
        for fold in point["folds"]:
            calibration = fold["calibration"]
            assert len(calibration["efforts"]) == len(calibration["edges"]) + 1
            assert set(calibration["efforts"]) <= set(GRID)
            assert min(calibration["efforts"]) >= fold["first_stage"]["effort"]
            assert fold["training"]["queries"] == 160
    names = {name for entry in result.comparisons for name in entry}
    assert "ada-ef (recall matched)" in names


def test_ada_ef_work_is_the_resumed_search_plus_the_model(report, tmp_path):
    """Saved and loaded, the policy gives each query its bin's effort; a query escalated
    from the first stage costs exactly one fresh search at its effort (resumed), plus the
    model's 17 dot products."""
    bundle, data, result = report
    path = save_policy(result.policy, tmp_path / "ada.policy.json")
    loaded = load_policy(path, bundle.manifest)
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    found = adaptive_search(bundle.engine, loaded, queries, K)
    assert set(np.unique(found.efforts)) <= set(loaded.calibration["efforts"])
    kernel = kernel_for(bundle.engine)
    for effort in np.unique(found.efforts):
        rows = np.flatnonzero(found.efforts == effort)
        fresh = kernel.search(queries[rows], K, int(effort))
        np.testing.assert_array_equal(
            found.distance_computations[rows], fresh.distance_computations + 17
        )
        np.testing.assert_array_equal(found.ids[rows], fresh.ids)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda c: {**c, "edges": c["edges"][::-1]}, "increasing"),
        (lambda c: {**c, "efforts": [7] * len(c["efforts"])}, "one grid effort per score bin"),
        (lambda c: {**c, "efforts": c["efforts"][1:]}, "one grid effort per score bin"),
        (lambda c: {**c, "distribution": {**c["distribution"], "mean": [0.0]}}, "dimension"),
    ],
)
def test_a_damaged_ada_ef_policy_is_refused(report, tmp_path, damage, why):
    bundle, _, result = report
    policy = result.policy
    assert len(set(policy.calibration["edges"])) >= 2
    damaged = replace(policy, calibration=damage(policy.calibration))
    path = save_policy(damaged, tmp_path / "bad.policy.json")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, bundle.manifest)
    assert why in str(caught.value) and "\n" not in str(caught.value)


def test_adapt_scores_the_stopping_rules_by_default_where_the_kernel_reads(
    report, words10k, tmp_path
):
    bundle, _, _ = report
    kinds = applicable_kinds(bundle.engine, "threshold")
    assert kinds[0] == "threshold"
    assert {"patience", "resume", "ada-ef"} <= set(kinds)
    ivf = make_index(
        tmp_path / "ivf", head_subset(words10k, 1000, 10), "faiss", {"factory": "IVF8,Flat"}
    )
    assert not {"patience", "resume", "darth", "ada-ef"} & set(applicable_kinds(ivf.engine))


def test_adapt_cli_names_the_best_kind_per_operating_point(report, tmp_path):
    bundle, data, _ = report
    file = tmp_path / "subset.hdf5"
    write_dataset_hdf5(file, base=data.base, queries=data.queries, metric=data.metric)
    args = ["adapt", bundle.path, file, "--kind", "threshold", "--kinds", "threshold,ada-ef"]
    args += ["--folds", 2, "--centroids", 0, "--grid", "10,20,40,80"]
    result = run_cli(*args, "--force", "-o", tmp_path / "p.json", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [b["operating_point"] for b in summary["best_kinds"]] == [0.9, 0.95, 0.99]
    for best in summary["best_kinds"]:
        assert best["kind"] in (None, "threshold", "ada-ef")
    assert set(summary["frontiers"]) == {"uniform", "threshold", "ada-ef", "oracle"}
    bad = run_cli("adapt", bundle.path, file, "--kinds", "threshold,nope", "-o", tmp_path / "q")
    assert bad.exit_code == 2 and "unknown policy kind 'nope'" in bad.output


def test_adapt_counts_its_steps(report):
    """The effort table, ada-ef's training data, one policy per (kind, goal), the oracle
    and the final fit: each step once, in order, against a total known from the start."""
    bundle, data, _ = report
    seen: list[tuple[int, int]] = []
    config = AdaptConfig(k=K, folds=2, kinds=("threshold", "ada-ef"), n_centroids=0)
    adapt(
        bundle,
        data,
        K,
        0.9,
        config=config,
        goals=GOALS[:2],
        grid=GRID,
        steps=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(done, 8) for done in range(1, 9)]
