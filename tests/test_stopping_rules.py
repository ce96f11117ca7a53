"""Stopping rules inside the search (patience, and the threshold rule resuming its first
stage) as ``adapt`` policy kinds: cross-fitted, counted exactly, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest
from bundles import head_subset, make_index

from annkit.adaptive import AdaptConfig, adapt, adaptive_search, load_policy, save_policy
from annkit.adaptive.darth import darth_table, fit_darth
from annkit.adaptive.goal import Goal
from annkit.adaptive.stopping import PATIENCE_VALUES
from annkit.adaptive.table import measure_table
from annkit.errors import ParamError
from annkit.evaluate import true_neighbor_distances

pytest.importorskip("numba")

from annkit.engines.hnsw_kernel import kernel_for  # noqa: E402

K = 10
GOALS = [Goal("recall", 0.95), Goal("uniform-recall", 40), Goal("uniform-budget", 40)]


@pytest.fixture(scope="module")
def report(words10k, tmp_path_factory):
    data = head_subset(words10k, 3000, 240)
    folder = tmp_path_factory.mktemp("stopping") / "faiss-hnsw"
    bundle = make_index(folder, data, "faiss", {"factory": "HNSW16,Flat", "efConstruction": 64})
    config = AdaptConfig(k=K, folds=3, kinds=("patience", "resume", "darth"), n_centroids=0)
    result = adapt(bundle, data, K, 0.95, config=config, goals=GOALS, grid=[10, 20, 40, 80, 160])
    return bundle, data, result


def test_stopping_kinds_get_frontiers_and_comparisons(report):
    _, _, result = report
    for kind in ("patience", "resume", "darth"):
        points = result.frontiers[kind]
        assert [p["setting"]["goal"] for p in points] == [g.label() for g in GOALS]
        assert all(p["distance_computations"] is not None for p in points)
        assert len(points[0]["folds"]) == 3  # one policy per fold, fitted on the others
    names = {name for entry in result.comparisons for name in entry}
    assert "patience (recall matched)" in names and "resume (work matched)" in names
    assert "darth (recall matched)" in names


def test_patience_is_chosen_per_fold_on_training_queries(report):
    _, _, result = report
    for point in result.frontiers["patience"]:
        for fold in point["folds"]:
            calibration = fold["calibration"]
            assert calibration["patience"] in PATIENCE_VALUES
            assert calibration["ef"] in (10, 20, 40, 80, 160)
            assert fold["training"]["queries"] == 160  # two of three folds of 240
    assert result.policy.kind == "patience"


def test_policy_work_is_the_kernels_count(report):
    bundle, data, result = report
    policy = result.policy
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    found = adaptive_search(bundle.engine, policy, queries, K)
    kernel = kernel_for(bundle.engine)
    wait = policy.calibration["patience"]
    direct = kernel.search(queries, K, policy.calibration["ef"], None if wait < 0 else wait)
    np.testing.assert_array_equal(found.ids, direct.ids)
    np.testing.assert_array_equal(found.distance_computations, direct.distance_computations)


def test_resumed_escalation_costs_one_search_at_the_hard_effort(report, tmp_path):
    bundle, data, result = report
    fitted = result.frontiers["resume"][0]["folds"][0]
    from annkit.adaptive.policy import FirstStage, Policy

    policy = Policy(
        kind="resume",
        index=result.policy.index,
        param="efSearch",
        grid=[10, 20, 40, 80, 160],
        k=K,
        stage=FirstStage(**fitted["first_stage"]),
        calibration=fitted["calibration"],
        centroids=np.zeros((0, data.dim), dtype=np.float32),
    )
    path = save_policy(policy, tmp_path / "resume.policy.json")
    loaded = load_policy(path, bundle.manifest)
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    found = adaptive_search(bundle.engine, loaded, queries, K)
    kernel = kernel_for(bundle.engine)
    total = found.distance_computations
    for effort in np.unique(found.efforts):
        rows = np.flatnonzero(found.efforts == effort)
        fresh = kernel.search(queries[rows], K, int(effort))
        if effort > loaded.stage.effort:  # resumed: exactly the fresh search at its effort
            np.testing.assert_array_equal(total[rows], fresh.distance_computations)
            np.testing.assert_array_equal(found.ids[rows], fresh.ids)
        else:
            assert (total[rows] <= fresh.distance_computations * 1.01 + 1).all()


def test_a_stopping_kind_needs_an_index_the_kernel_reads(words10k, tmp_path):
    data = head_subset(words10k, 1000, 60)
    bundle = make_index(tmp_path / "ivf", data, "faiss", {"factory": "IVF8,Flat"})
    config = AdaptConfig(k=K, folds=2, kinds=("patience",), n_centroids=0)
    with pytest.raises(ParamError) as caught:
        adapt(bundle, data, K, 0.9, config=config, goals=GOALS[:1], grid=[1, 2, 4, 8])
    message = str(caught.value)
    assert "policy kind 'patience'" in message and "\n" not in message


def test_darth_stops_each_query_at_a_checkpoint_with_its_search_work(report, tmp_path):
    """A darth policy (saved and loaded) stops every query at one of its checkpoints, and
    the work of a query stopped at effort e is that of one search at e (resumed, never
    searched again)."""
    pytest.importorskip("lightgbm")
    bundle, data, result = report
    for fold in result.frontiers["darth"][0]["folds"]:
        assert fold["calibration"]["last"] in fold["calibration"]["checkpoints"]
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    exact = true_neighbor_distances(data, K)
    checkpoints = [10, 20, 40, 80, 160]
    table = darth_table(bundle.engine, data.base, queries, data.metric, exact, K, checkpoints)
    no_centroids = np.zeros((0, data.dim), dtype=np.float32)
    uniform = measure_table(
        bundle.engine, data.base, queries, data.metric, exact, K, checkpoints, [], no_centroids
    )
    rows = np.arange(data.n_queries)
    policy = fit_darth(
        table, uniform, rows, Goal("recall", 0.97), bundle.manifest, "efSearch", K, data.dim
    )
    loaded = load_policy(save_policy(policy, tmp_path / "darth.policy.json"), bundle.manifest)
    found = adaptive_search(bundle.engine, loaded, queries, K)
    assert set(np.unique(found.efforts)) <= set(checkpoints)
    kernel = kernel_for(bundle.engine)
    same = 0
    for effort in np.unique(found.efforts):
        rows = np.flatnonzero(found.efforts == effort)
        fresh = kernel.search(queries[rows], K, int(effort))
        same += int((found.distance_computations[rows] == fresh.distance_computations).sum())
    assert same >= 0.99 * data.n_queries


@pytest.mark.slow
def test_learned_resume_is_calibrated_on_resumed_costs(words10k, tmp_path):
    pytest.importorskip("lightgbm")
    data = head_subset(words10k, 3000, 240)
    bundle = make_index(
        tmp_path / "idx", data, "faiss", {"factory": "HNSW16,Flat", "efConstruction": 64}
    )
    config = AdaptConfig(k=K, folds=3, kinds=("learned-resume",), n_centroids=4, rounds=30)
    result = adapt(bundle, data, K, 0.95, config=config, goals=GOALS, grid=[10, 20, 40, 80, 160])
    assert result.policy.kind == "learned-resume"
    assert result.policy.stage.kind == "full"
    for point in result.frontiers["learned-resume"]:
        assert point["distance_computations"] is not None
        assert point["stage_computations"]["features"] == 4
