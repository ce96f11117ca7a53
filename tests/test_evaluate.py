"""The one evaluation path: recall, QPS, latency, compatibility checks."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.bundle import build_index, load_bundle, save_bundle
from annkit.errors import InputError
from annkit.evaluate import evaluate
from annkit.types import Dataset


@pytest.fixture(scope="module")
def hnsw_bundle(words10k, tmp_path_factory):
    engine, seconds = build_index("hnsw", words10k.base, "angular", {"M": 8}, threads=2)
    from annkit.bundle import fingerprint_vectors

    path = save_bundle(engine, tmp_path_factory.mktemp("e") / "idx", build_seconds=seconds,
                       dataset_fingerprint=fingerprint_vectors(words10k.base))
    return load_bundle(path)


def test_batch_and_single(hnsw_bundle, words10k):
    batch = evaluate(hnsw_bundle, words10k, 10, {"ef": 40})
    single = evaluate(hnsw_bundle, words10k, 10, {"ef": 40}, mode="single", runs=2)
    assert batch.recall == single.recall  # same index, same setting: same answers
    assert 0.85 < batch.recall <= 1.0
    assert batch.latency_ms["p50"] is None
    lat = single.latency_ms
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert single.qps == pytest.approx(1000 / single.search_seconds)
    out = single.to_dict()
    for key in ("engine", "build_params", "query_params", "k", "recall", "qps", "latency_ms",
                "build_seconds", "index_bytes", "queries", "mode"):
        assert key in out
    assert out["query_params"] == {"ef": 40} and out["queries"] == 1000
    assert len(single.per_query_recall) == 1000


def test_more_effort_more_recall(hnsw_bundle, words10k):
    low = evaluate(hnsw_bundle, words10k, 10, {"ef": 10}).recall
    high = evaluate(hnsw_bundle, words10k, 10, {"ef": 200}).recall
    assert low < high


def test_ground_truth_computed_when_absent(hnsw_bundle, words10k):
    without = Dataset(name="nogt", metric="angular", base=words10k.base,
                      queries=words10k.queries[:200])
    with_gt = Dataset(name="gt", metric="angular", base=words10k.base,
                      queries=words10k.queries[:200], neighbors=words10k.neighbors[:200])
    a = evaluate(hnsw_bundle, without, 10, {"ef": 20})
    b = evaluate(hnsw_bundle, with_gt, 10, {"ef": 20})
    np.testing.assert_array_equal(a.per_query_recall, b.per_query_recall)


def test_incompatible_dataset_refused(hnsw_bundle, words10k):
    other = Dataset(name="other", metric="angular", base=words10k.base[::-1].copy(),
                    queries=words10k.queries)
    with pytest.raises(InputError, match="was built from different base vectors"):
        evaluate(hnsw_bundle, other, 10)
    smaller = Dataset(name="small", metric="angular", base=words10k.base[:10],
                      queries=words10k.queries)
    with pytest.raises(InputError, match="holds 10000 vectors, dataset small has 10 base"):
        evaluate(hnsw_bundle, smaller, 10)
    euclid = Dataset(name="e", metric="euclidean", base=words10k.base, queries=words10k.queries)
    with pytest.raises(InputError, match="uses metric angular, dataset e uses euclidean"):
        evaluate(hnsw_bundle, euclid, 10)
    with pytest.raises(InputError, match="unknown mode 'fast'"):
        evaluate(hnsw_bundle, words10k, 10, mode="fast")


def test_flat_counts_every_base_vector_per_query(words10k, tmp_path):
    """flat counts its distance computations exactly: n_base per query, batch and single."""
    engine, seconds = build_index("flat", words10k.base, "angular", {}, threads=1)
    bundle = load_bundle(save_bundle(engine, tmp_path / "flat", build_seconds=seconds))
    queries = Dataset(name="w", metric="angular", base=words10k.base,
                      queries=words10k.queries[:50], neighbors=words10k.neighbors[:50])
    for mode in ("batch", "single"):
        evaluation = evaluate(bundle, queries, 10, mode=mode, with_slices=False)
        assert evaluation.distance_computations == words10k.n_base
        counts = evaluation.per_query_distance_computations
        assert counts is not None and counts.dtype == np.int64
        np.testing.assert_array_equal(counts, np.full(50, words10k.n_base))
        assert evaluation.to_dict()["distance_computations"] == words10k.n_base


def test_an_engine_that_cannot_count_reports_none(hnsw_bundle, words10k):
    evaluation = evaluate(hnsw_bundle, words10k, 10, {"ef": 20}, mode="single")
    assert evaluation.distance_computations is None
    assert evaluation.per_query_distance_computations is None
    assert evaluation.to_dict()["distance_computations"] is None
