"""The shared engine contract, run over every registered engine on the bundled real data."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.bundle import build_index, load_bundle, save_bundle
from annkit.engines import engine_names, get_engine
from annkit.errors import ParamError
from annkit.evaluate import evaluate, true_kth_distances
from annkit.metrics import exact_distances

# generous settings at which every engine must reach recall@10 >= 0.9 on words-10k
GENEROUS = {
    "hnsw": ({"M": 16, "ef_construction": 200}, {"ef": 200}),
    "annoy": ({"n_trees": 50}, {"search_k": 50_000}),
    "ivfpq": ({"nlist": 64}, {"nprobe": 64, "rerank": 10}),
    "flat": ({}, {}),
}


def test_every_registered_engine_has_generous_settings():
    assert set(engine_names()) == set(GENEROUS)


@pytest.fixture(scope="module")
def built(words10k, tmp_path_factory):
    """Every engine built once on words-10k and saved as a bundle."""
    bundles = {}
    for name, (build_params, _) in GENEROUS.items():
        engine, seconds = build_index(name, words10k.base, "angular", build_params, threads=2)
        path = tmp_path_factory.mktemp(name) / "index"
        save_bundle(engine, path, build_seconds=seconds)
        bundles[name] = (engine, path)
    return bundles


@pytest.fixture(scope="module")
def truth10(words10k):
    return true_kth_distances(words10k, 10)


@pytest.mark.parametrize("name", sorted(GENEROUS))
def test_contract(name, built, words10k, truth10):
    engine, path = built[name]
    engine.set_query_params(**GENEROUS[name][1])
    result = engine.search(words10k.queries, 10)
    assert result.ids.shape == (1000, 10) and result.ids.dtype == np.int64
    assert result.distances.shape == (1000, 10)
    assert np.all((result.ids >= 0) & (result.ids < words10k.n_base))
    assert all(len(set(row)) == 10 for row in result.ids.tolist())
    assert np.all(np.diff(result.distances, axis=1) >= -1e-5)  # best first
    # distances are in the metric's convention: match the exact ones
    exact = exact_distances(words10k.base, words10k.queries, result.ids, "angular")
    np.testing.assert_allclose(result.distances, exact, atol=1e-4)  # ivfpq: reranked, exact
    bundle = load_bundle(path)
    evaluation = evaluate(bundle, words10k, 10, GENEROUS[name][1], true_distances=truth10)
    assert evaluation.recall >= 0.9, (name, evaluation.recall)
    again = bundle.engine.search(words10k.queries, 10)
    np.testing.assert_array_equal(again.ids, result.ids)  # save/load gives identical results
    np.testing.assert_allclose(again.distances, result.distances)


@pytest.mark.parametrize("name", ["hnsw", "annoy", "ivfpq"])
def test_top1_distance_agrees_with_flat(name, built, words10k):
    flat = built["flat"][0].search(words10k.queries, 1)
    engine = built[name][0]
    engine.set_query_params(**GENEROUS[name][1])
    result = engine.search(words10k.queries, 1)
    same = result.ids[:, 0] == flat.ids[:, 0]
    assert same.mean() > 0.95
    np.testing.assert_allclose(result.distances[same, 0], flat.distances[same, 0], atol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "ip"])
@pytest.mark.parametrize("name", sorted(GENEROUS))
def test_other_metrics_return_metric_distances(name, metric):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    build_params = {"nlist": 16, "m": 4} if name == "ivfpq" else GENEROUS[name][0]
    engine, _ = build_index(name, base, metric, build_params)
    query_params = {"nprobe": 16, "rerank": 20} if name == "ivfpq" else GENEROUS[name][1]
    engine.set_query_params(**query_params)
    result = engine.search(queries, 5)
    exact = exact_distances(base, queries, result.ids, metric)
    np.testing.assert_allclose(result.distances, exact, rtol=1e-4, atol=1e-4)


def test_k_larger_than_count_is_padded():
    base = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    for name in ("hnsw", "annoy", "flat"):
        engine, _ = build_index(name, base, "euclidean", {})
        result = engine.search(base[:3], 40)
        assert result.ids.shape == (3, 40)
        assert np.all(result.ids[:, 30:] == -1) and np.all(np.isinf(result.distances[:, 30:]))


def test_hnsw_single_thread_build_is_deterministic(words10k):
    base = words10k.base[:2000]
    first, _ = build_index("hnsw", base, "angular", {"M": 8}, threads=1)
    second, _ = build_index("hnsw", base, "angular", {"M": 8}, threads=1)
    first.set_query_params(ef=20)
    second.set_query_params(ef=20)
    np.testing.assert_array_equal(first.search(words10k.queries, 10).ids,
                                  second.search(words10k.queries, 10).ids)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("hnsw", {"MM": 3},
         "engine hnsw has no build parameter 'MM' (known: M, ef_construction, seed)"),
        ("hnsw", {"M": "x"}, "parameter M: expected int, got 'x'"),
        ("hnsw", {"M": 1}, "parameter M: must be >= 2, got 1"),
        ("annoy", {"n_trees": 2.5}, "parameter n_trees: expected int, got 2.5"),
    ],
)
def test_bad_build_params(name, params, message):
    with pytest.raises(ParamError) as info:
        get_engine(name)("euclidean", 8, **params)
    assert str(info.value) == message


def test_ivfpq_param_validation():
    base = np.random.default_rng(0).standard_normal((500, 12)).astype(np.float32)
    with pytest.raises(ParamError, match="m=5 must divide the dimension 12"):
        build_index("ivfpq", base, "euclidean", {"m": 5})
    with pytest.raises(ParamError, match="nlist=900 exceeds the 500 base vectors"):
        build_index("ivfpq", base, "euclidean", {"nlist": 900})
    engine, _ = build_index("ivfpq", base, "euclidean", {"refine": False, "nlist": 4, "m": 4,
                                                          "nbits": 4})
    engine.set_query_params(rerank=4)
    with pytest.raises(ParamError, match="rerank needs an index built with refine=1"):
        engine.search(base[:2], 3)


def test_unknown_engine():
    message = r"unknown engine 'nope' \(known: annoy, flat, hnsw, ivfpq\)"
    with pytest.raises(ParamError, match=message):
        get_engine("nope")
