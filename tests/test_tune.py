"""Tuning to a recall target on a slice: bisection agrees with the exhaustive grid on the
bundled real dataset for hnsw, with fewer evaluate runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from annkit.bundle import fingerprint_vectors, load_bundle
from annkit.cache import index_dir, index_key
from annkit.engines.base import get_engine, resolve_params
from annkit.errors import InputError, ParamError
from annkit.evaluate import evaluate, true_kth_distances
from annkit.slices import build_profile
from annkit.tune import (
    _bisect_setting,
    build_settings,
    exhaustive_choice,
    slice_recall,
    tune,
)
from annkit.types import Dataset

K = 10
TARGET = 0.95
SLICE = "tail"
BUILD_GRID = {"M": [8, 16]}
EFFORT_GRID = [10, 20, 40, 80, 160, 320]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tune-cache")


@pytest.fixture(scope="module")
def tuned(words10k: Dataset, cache: Path):
    return tune(words10k, "hnsw", TARGET, SLICE, BUILD_GRID, EFFORT_GRID, k=K, mode="batch",
                runs=1, cache_dir=cache, threads=1)


def _cached_bundle(dataset: Dataset, cache: Path, params: dict):
    resolved = resolve_params("hnsw", get_engine("hnsw").build_params, params, "build")
    key = index_key(fingerprint_vectors(dataset.base), "hnsw", resolved, dataset.metric)
    return load_bundle(index_dir(cache, key))


@pytest.mark.slow
def test_tune_matches_the_exhaustive_grid_with_fewer_runs(tuned, words10k: Dataset,
                                                          cache: Path) -> None:
    truth = true_kth_distances(words10k, K)
    profile = build_profile(words10k, truth, K)
    assert [setting.build_params["M"] for setting in tuned.settings] == [8, 16]
    for setting in tuned.settings:
        bundle = _cached_bundle(words10k, cache, {"M": setting.build_params["M"]})
        scan = {}
        for ef in EFFORT_GRID:
            evaluation = evaluate(bundle, words10k, K, {"ef": ef}, true_distances=truth,
                                  profile=profile)
            scan[ef] = slice_recall(evaluation, SLICE)
        assert setting.chosen == exhaustive_choice(scan, TARGET)
        # the probes bisection made saw the same (deterministic) recall as the scan
        assert all(scan[ef] == recall for ef, recall in setting.trace.items())
        assert setting.evaluation.query_params["ef"] == setting.chosen
        assert slice_recall(setting.evaluation, SLICE) >= TARGET
        assert len(setting.trace) <= math.ceil(math.log2(len(EFFORT_GRID) + 1))
    assert tuned.exhaustive == len(BUILD_GRID["M"]) * len(EFFORT_GRID)
    assert tuned.evaluations < tuned.exhaustive


def test_fastest_setting_is_chosen_by_qps(tuned) -> None:
    # QPS is noisy, so check the rule (max QPS among settings that meet the target), not
    # which build wins.
    reached = [setting for setting in tuned.settings if setting.reached]
    assert reached and tuned.best is max(reached, key=lambda setting: setting.qps)
    recall = tuned.best.recall_by_slice()
    for name in ("all", "head", "torso", "tail", "hard-lid", "hard-rc", "hard-ood"):
        assert 0 <= recall[name] <= 1
    out = tuned.to_dict()
    assert out["best"]["build_params"] == tuned.best.build_params
    assert out["best"]["effort"] == tuned.best.chosen
    assert out["evaluations"] == tuned.evaluations and out["slice"] == SLICE
    assert {"settings", "exhaustive", "target", "param"} <= set(out)


def test_cached_indexes_are_reused_and_unreached_targets_reported(words10k: Dataset,
                                                                  cache: Path, tuned) -> None:
    outcome = tune(words10k, "hnsw", 1.0, "hard-lid", {"M": [8]}, [10, 20], k=K, runs=1,
                   cache_dir=cache, threads=1)
    (setting,) = outcome.settings
    assert setting.cached and not setting.reached and setting.chosen is None
    assert outcome.best is None and outcome.to_dict()["best"] is None
    # bisection over [10, 20] tests 20 first; failing there settles "not reached"
    assert list(setting.trace) == [20] and setting.evaluation.query_params["ef"] == 20


def test_unknown_slice_lists_the_available_ones(words10k: Dataset, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        tune(words10k, "hnsw", TARGET, "nope", {"M": [8]}, EFFORT_GRID, cache_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith("unknown slice 'nope' (available: all, head, torso, tail, lid-q1,")
    assert message.endswith("hard-ood)")
    assert not any(tmp_path.iterdir())  # refused before building anything


def test_invalid_inputs() -> None:
    from annkit.io import load_dataset

    dataset = load_dataset("words-10k")
    with pytest.raises(ParamError, match="engine flat has no effort parameter"):
        tune(dataset, "flat", TARGET)
    with pytest.raises(ParamError, match="engine hnsw has no build parameter 'MM'"):
        tune(dataset, "hnsw", TARGET, build_grid={"MM": [8]})
    with pytest.raises(InputError, match="target recall must be in"):
        tune(dataset, "hnsw", 0.0)
    with pytest.raises(ParamError, match="ef is the effort parameter"):
        tune(dataset, "hnsw", TARGET, query_params={"ef": 10})


def test_build_settings_product_and_defaults() -> None:
    settings = build_settings("hnsw", {"M": ["8", 16, "16"], "ef_construction": [100, 200]})
    assert settings == [{"M": 8, "ef_construction": 100}, {"M": 8, "ef_construction": 200},
                        {"M": 16, "ef_construction": 100}, {"M": 16, "ef_construction": 200}]
    assert build_settings("hnsw", {}) == [{}]
    assert get_engine("hnsw").tune_build_grid(10_000) == {"M": [8, 16, 32]}
    assert get_engine("ivfpq").tune_build_grid(10_000) == {"nlist": [64, 128, 256]}
    assert get_engine("annoy").tune_build_grid(10_000) == {"n_trees": [10, 50, 100]}


@pytest.mark.parametrize("target", [0.05, 0.3, 0.5, 0.77, 0.9, 0.99, 1.0])
def test_bisection_on_a_monotone_curve_equals_the_scan(target: float) -> None:
    grid = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    curve = {effort: 1 - 1 / (1 + effort / 10) for effort in grid}
    chosen, trace = _bisect_setting(curve.__getitem__, grid, target)
    assert chosen == exhaustive_choice(curve, target)
    assert len(trace) <= math.ceil(math.log2(len(grid) + 1))
