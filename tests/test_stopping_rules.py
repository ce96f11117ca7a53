"""Stopping rules inside the search (patience, and the threshold rule resuming its first
stage) as ``adapt`` policy kinds: cross-fitted, counted exactly, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest
from bundles import make_index

from annkit.adaptive import AdaptConfig, adapt, adaptive_search, load_policy, save_policy
from annkit.adaptive.goal import Goal
from annkit.adaptive.stopping import PATIENCE_VALUES
from annkit.errors import ParamError
from annkit.types import Dataset

pytest.importorskip("numba")

from annkit.engines.hnsw_kernel import kernel_for  # noqa: E402

K = 10
GOALS = [Goal("recall", 0.95), Goal("uniform-recall", 40), Goal("uniform-budget", 40)]


def _subset(words10k: Dataset, count: int, queries: int) -> Dataset:
    return Dataset(
        name=f"words-{count}",
        metric=words10k.metric,
        base=np.ascontiguousarray(words10k.base[:count]),
        queries=np.ascontiguousarray(words10k.queries[:queries]),
    )


@pytest.fixture(scope="module")
def report(words10k, tmp_path_factory):
    data = _subset(words10k, 3000, 240)
    folder = tmp_path_factory.mktemp("stopping") / "faiss-hnsw"
    bundle = make_index(folder, data, "faiss", {"factory": "HNSW16,Flat", "efConstruction": 64})
    config = AdaptConfig(k=K, folds=3, kinds=("patience", "resume"), n_centroids=0)
    result = adapt(bundle, data, K, 0.95, config=config, goals=GOALS, grid=[10, 20, 40, 80, 160])
    return bundle, data, result


def test_stopping_kinds_get_frontiers_and_comparisons(report):
    _, _, result = report
    for kind in ("patience", "resume"):
        points = result.frontiers[kind]
        assert [p["setting"]["goal"] for p in points] == [g.label() for g in GOALS]
        assert all(p["distance_computations"] is not None for p in points)
        assert len(points[0]["folds"]) == 3  # one policy per fold, fitted on the others
    names = {name for entry in result.comparisons for name in entry}
    assert "patience (recall matched)" in names and "resume (work matched)" in names


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
    data = _subset(words10k, 1000, 60)
    bundle = make_index(tmp_path / "ivf", data, "faiss", {"factory": "IVF8,Flat"})
    config = AdaptConfig(k=K, folds=2, kinds=("patience",), n_centroids=0)
    with pytest.raises(ParamError) as caught:
        adapt(bundle, data, K, 0.9, config=config, goals=GOALS[:1], grid=[1, 2, 4, 8])
    message = str(caught.value)
    assert "policy kind 'patience'" in message and "\n" not in message
