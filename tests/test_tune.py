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
from annkit.evaluate import evaluate, true_neighbor_distances
from annkit.slices import build_profile
from annkit.tune import (
    _bisect_setting,
    build_settings,
    cheapest,
    choose_fastest,
    exhaustive_choice,
    refine_effort,
    slice_recall,
    tied_with_fastest,
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
    return tune(
        words10k,
        "hnsw",
        TARGET,
        SLICE,
        BUILD_GRID,
        EFFORT_GRID,
        k=K,
        mode="batch",
        runs=1,
        cache_dir=cache,
        threads=1,
    )


def _cached_bundle(dataset: Dataset, cache: Path, params: dict):
    resolved = resolve_params("hnsw", get_engine("hnsw").build_specs, params, "build")
    key = index_key(fingerprint_vectors(dataset.base), "hnsw", resolved, dataset.metric)
    return load_bundle(index_dir(cache, key))


@pytest.mark.slow
def test_tune_matches_the_exhaustive_grid_with_fewer_runs(
    tuned, words10k: Dataset, cache: Path
) -> None:
    truth = true_neighbor_distances(words10k, K)
    profile = build_profile(words10k, truth, K)
    assert [setting.build_params["M"] for setting in tuned.settings] == [8, 16]
    for setting in tuned.settings:
        bundle = _cached_bundle(words10k, cache, {"M": setting.build_params["M"]})
        scan = {}
        for ef in EFFORT_GRID:
            evaluation = evaluate(
                bundle, words10k, K, {"ef": ef}, true_distances=truth, profile=profile
            )
            scan[ef] = slice_recall(evaluation, SLICE)
        assert setting.grid_choice == exhaustive_choice(scan, TARGET)
        # the probes bisection made saw the same (deterministic) recall as the scan
        assert all(scan[ef] == recall for ef, recall in setting.trace.items() if ef in scan)
        assert setting.evaluation.query_params["ef"] == setting.chosen
        assert slice_recall(setting.evaluation, SLICE) >= TARGET
        grid_probes = [ef for ef in setting.trace if ef in scan]
        assert len(grid_probes) <= math.ceil(math.log2(len(EFFORT_GRID) + 1))
        # refined between the last failing and the first passing grid value, exact to 1:
        # the effort just below the answer misses the target
        assert setting.bracket is not None and setting.resolution == 1
        failing, passing = setting.bracket
        assert EFFORT_GRID.index(passing) == EFFORT_GRID.index(failing) + 1
        assert passing == setting.grid_choice and failing < setting.chosen <= passing
        below = evaluate(
            bundle, words10k, K, {"ef": setting.chosen - 1}, true_distances=truth, profile=profile
        )
        assert slice_recall(below, SLICE) < TARGET - 1e-9
        refine_probes = len(setting.trace) - len(grid_probes)
        assert refine_probes <= math.ceil(math.log2(passing - failing))
        assert setting.precision() == f"refined between {failing} and {passing}; exact"
    assert tuned.exhaustive == len(BUILD_GRID["M"]) * len(EFFORT_GRID)


@pytest.mark.slow
def test_fastest_setting_is_chosen_by_qps_and_ties_by_cost(tuned) -> None:
    # QPS is noisy, so check the rule (max QPS among settings that meet the target; among
    # those whose min-max QPS overlaps it, the cheapest build), not which build wins.
    reached = [setting for setting in tuned.settings if setting.reached]
    fastest = max(reached, key=lambda setting: setting.qps)
    assert reached and tuned.fastest is fastest
    tied = [setting for setting in reached if setting.qps >= fastest.qps_interval[0]]
    assert tuned.tied == tied and fastest in tied
    assert tuned.best is min(tied, key=lambda s: (s.index_bytes, s.build_seconds))
    for setting in reached:
        low, high = setting.qps_interval
        assert low <= high == setting.qps and setting.evaluation.runs == 1
    recall = tuned.best.recall_by_slice()
    for name in ("all", "head", "torso", "tail", "hard-lid", "hard-rc", "hard-ood"):
        assert 0 <= recall[name] <= 1
    out = tuned.to_dict()
    assert out["best"]["build_params"] == tuned.best.build_params
    assert out["best"]["effort"] == tuned.best.chosen
    assert out["evaluations"] == tuned.evaluations and out["slice"] == SLICE
    assert {
        "settings",
        "exhaustive",
        "target",
        "param",
        "fastest",
        "tied",
        "choice_rule",
        "resolution",
        "qps_tolerance",
    } <= set(out)
    assert out["best"]["bracket"] == list(tuned.best.bracket)
    assert out["best"]["grid_effort"] == tuned.best.grid_choice
    assert out["best"]["resolution"] == 1 and out["resolution"] == 1
    assert out["best"]["qps_max"] == out["best"]["qps"]
    tied_out = [(entry["build_params"], entry["effort"]) for entry in out["tied"]]
    assert tied_out == (
        [] if len(tied) < 2 else [(setting.build_params, setting.chosen) for setting in tied]
    )


@pytest.mark.slow
def test_cached_indexes_are_reused_and_unreached_targets_reported(
    words10k: Dataset, cache: Path, tuned
) -> None:
    outcome = tune(
        words10k,
        "hnsw",
        1.0,
        "hard-lid",
        {"M": [8]},
        [10, 20],
        k=K,
        runs=1,
        cache_dir=cache,
        threads=1,
    )
    (setting,) = outcome.settings
    assert setting.cached and not setting.reached and setting.chosen is None
    assert outcome.best is None and outcome.to_dict()["best"] is None
    # bisection over [10, 20] tests 20 first; failing there settles "not reached"
    assert list(setting.trace) == [20] and setting.evaluation.query_params["ef"] == 20
    assert setting.bracket is None and setting.resolution is None
    closest = outcome.best_reached()
    assert closest is not None and closest[1] == 20 and closest[2] == setting.trace[20]
    assert outcome.to_dict()["best_reached"] == {
        "build_params": setting.build_params,
        "effort": 20,
        "slice_recall": setting.trace[20],
    }


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
    assert settings == [
        {"M": 8, "ef_construction": 100},
        {"M": 8, "ef_construction": 200},
        {"M": 16, "ef_construction": 100},
        {"M": 16, "ef_construction": 200},
    ]
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


def test_refine_on_a_monotone_curve_finds_the_smallest_passing_integer() -> None:
    curve = lambda effort: min(1.0, effort / 300)  # noqa: E731 - meets 0.8 from 240 on
    probes: list[int] = []

    def measure(effort: int) -> float:
        probes.append(effort)
        return curve(effort)

    chosen, gap, trace = refine_effort(measure, 160, 320, 0.8)
    assert (chosen, gap) == (240, 1) and set(trace) == set(probes)
    assert len(probes) == math.ceil(math.log2(160))  # 8 probes for a bracket of 160
    coarse = refine_effort(curve, 160, 320, 0.8, resolution=20)
    assert coarse[1] <= 20 and 240 <= coarse[0] <= 260 and len(coarse[2]) == 3
    assert refine_effort(curve, 239, 240, 0.8) == (240, 1, {})  # already exact


def test_ties_are_overlapping_qps_intervals_and_the_cheaper_build_wins() -> None:
    # (slowest, fastest) QPS over the runs: 828 (790-828) and 803 (760-803) overlap;
    # 500 (480-500) does not
    intervals = [(790.0, 828.0), (760.0, 803.0), (480.0, 500.0)]
    assert choose_fastest(intervals) == 0
    assert tied_with_fastest(intervals) == [0, 1]
    assert tied_with_fastest([(820.0, 828.0), (760.0, 803.0)]) == [0]  # apart: no tie
    assert tied_with_fastest([(800.0, 800.0)]) == [0] and tied_with_fastest([]) == []
    assert tied_with_fastest([(700.0, 900.0), (900.0, 950.0)]) == [0, 1]  # touching overlaps
    # cheaper: the smaller index, then the shorter build, then the first
    assert cheapest([(2_000_000, 5.0), (1_000_000, 9.0)]) == 1
    assert cheapest([(1_000_000, 5.0), (1_000_000, 4.0)]) == 1
    assert cheapest([(1_000_000, 5.0), (1_000_000, 5.0)]) == 0
