"""The one evaluation path: recall, QPS, latency, compatibility checks."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.bundle import build_index, load_bundle, save_bundle
from annkit.errors import InputError
from annkit.evaluate import (
    MAX_TIMED_QUERIES,
    MIN_TIMED_QUERIES,
    TIMING_SAMPLE,
    evaluate,
    time_runs,
    timing_is_stable,
    timing_order,
    timing_sample,
)
from annkit.timing import WARMUP_QUERIES, qps_interval, time_sample
from annkit.types import Dataset, RunRecord, SearchResult


@pytest.mark.slow
def test_batch_and_single(hnsw_words10k, words10k):
    batch = evaluate(hnsw_words10k, words10k, 10, {"ef": 40})
    single = evaluate(hnsw_words10k, words10k, 10, {"ef": 40}, mode="single", runs=2)
    assert batch.recall == single.recall  # same index, same setting: same answers
    assert 0.85 < batch.recall <= 1.0
    assert batch.latency_ms["p50"] is None
    lat = single.latency_ms
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert single.qps == pytest.approx(single.timed_queries / single.search_seconds)
    out = single.to_dict()
    for key in (
        "engine",
        "build_params",
        "query_params",
        "k",
        "recall",
        "qps",
        "latency_ms",
        "build_seconds",
        "index_bytes",
        "queries",
        "mode",
    ):
        assert key in out
    assert out["query_params"] == {"ef": 40} and out["queries"] == 1000
    assert len(single.per_query_recall) == 1000


@pytest.mark.slow
def test_more_effort_more_recall(hnsw_words10k, words10k):
    low = evaluate(hnsw_words10k, words10k, 10, {"ef": 10}).recall
    high = evaluate(hnsw_words10k, words10k, 10, {"ef": 200}).recall
    assert low < high


def test_ground_truth_computed_when_absent(hnsw_words10k, words10k):
    without = Dataset(
        name="nogt", metric="angular", base=words10k.base, queries=words10k.queries[:200]
    )
    with_gt = Dataset(
        name="gt",
        metric="angular",
        base=words10k.base,
        queries=words10k.queries[:200],
        neighbors=words10k.neighbors[:200],
    )
    a = evaluate(hnsw_words10k, without, 10, {"ef": 20})
    b = evaluate(hnsw_words10k, with_gt, 10, {"ef": 20})
    np.testing.assert_array_equal(a.per_query_recall, b.per_query_recall)


def test_incompatible_dataset_refused(hnsw_words10k, words10k):
    other = Dataset(
        name="other", metric="angular", base=words10k.base[::-1].copy(), queries=words10k.queries
    )
    with pytest.raises(InputError, match="was built from different base vectors"):
        evaluate(hnsw_words10k, other, 10)
    smaller = Dataset(
        name="small", metric="angular", base=words10k.base[:10], queries=words10k.queries
    )
    with pytest.raises(InputError, match="holds 10000 vectors, dataset small has 10 base"):
        evaluate(hnsw_words10k, smaller, 10)
    euclid = Dataset(name="e", metric="euclidean", base=words10k.base, queries=words10k.queries)
    with pytest.raises(
        InputError,
        match="uses metric angular, dataset e is scored with "
        "euclidean: rebuild the index with --metric euclidean, or evaluate it "
        "with --metric angular",
    ):
        evaluate(hnsw_words10k, euclid, 10)
    with pytest.raises(InputError, match="unknown mode 'fast'"):
        evaluate(hnsw_words10k, words10k, 10, mode="fast")


def test_flat_counts_every_base_vector_per_query(words10k, tmp_path):
    """flat counts its distance computations exactly: n_base per query, batch and single."""
    engine, seconds = build_index("flat", words10k.base, "angular", {}, threads=1)
    bundle = load_bundle(save_bundle(engine, tmp_path / "flat", build_seconds=seconds))
    queries = Dataset(
        name="w",
        metric="angular",
        base=words10k.base,
        queries=words10k.queries[:50],
        neighbors=words10k.neighbors[:50],
    )
    for mode in ("batch", "single"):
        evaluation = evaluate(bundle, queries, 10, mode=mode, with_slices=False)
        assert evaluation.distance_computations == words10k.n_base
        counts = evaluation.per_query_distance_computations
        assert counts is not None and counts.dtype == np.int64
        np.testing.assert_array_equal(counts, np.full(50, words10k.n_base))
        assert evaluation.to_dict()["distance_computations"] == words10k.n_base


def test_an_engine_that_cannot_count_reports_none(hnsw_words10k, words10k):
    evaluation = evaluate(hnsw_words10k, words10k, 10, {"ef": 20}, mode="single")
    assert evaluation.distance_computations is None
    assert evaluation.per_query_distance_computations is None
    assert evaluation.to_dict()["distance_computations"] is None


def test_timing_is_stable_rule():
    """Stable once >= 2 runs and the two fastest QPS differ by <= tolerance of the fastest."""
    assert not timing_is_stable([1000.0], 0.05)
    assert timing_is_stable([1000.0, 960.0], 0.05)
    assert not timing_is_stable([1000.0, 940.0], 0.05)
    assert timing_is_stable([700.0, 1000.0, 951.0], 0.05)  # the two fastest decide
    assert not timing_is_stable([1000.0, 1000.0], 0.0)  # 0: never stop early


def _scripted(seconds: list[float]):
    """A run callable returning the given search seconds in turn."""
    remaining = list(seconds)
    result = SearchResult(ids=np.zeros((1, 1), np.int64), distances=np.zeros((1, 1), np.float32))

    def run():
        return result, remaining.pop(0), None

    return run


def test_time_runs_stops_once_stable_and_keeps_every_run():
    calls = []
    stable = time_runs(
        _scripted([1.0, 1.02, 5.0]),
        3,
        1000,
        0.05,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert stable.seconds == [1.0, 1.02] and stable.best[1] == 1.0
    assert calls == [(1, 3), (2, 2)]
    noisy = time_runs(_scripted([1.0, 1.5, 1.2]), 3, 1000, 0.05)
    assert noisy.seconds == [1.0, 1.5, 1.2]  # never within 5%: every run made
    assert noisy.qps_runs(1000) == pytest.approx([1000.0, 1000 / 1.5, 1000 / 1.2])
    always = time_runs(_scripted([1.0, 1.0, 1.0]), 3, 1000, 0.0)
    assert len(always.seconds) == 3


def test_evaluation_keeps_the_qps_of_every_run(hnsw_words10k, words10k):
    evaluation = evaluate(hnsw_words10k, words10k, 10, {"ef": 40}, runs=4, qps_tolerance=0.0)
    assert evaluation.runs == 4 and evaluation.max_runs == 4 and len(evaluation.qps_runs) == 4
    assert evaluation.qps == max(evaluation.qps_runs) == evaluation.qps_max
    assert evaluation.qps_min == min(evaluation.qps_runs)
    assert evaluation.qps_min <= evaluation.qps_median <= evaluation.qps_max
    assert evaluation.timed_queries == words10k.n_queries
    record = RunRecord.from_evaluation(evaluation, "r1")
    assert record.qps_runs == list(evaluation.qps_runs) and record.runs == 4
    assert (record.qps_min, record.qps_median, record.qps_max) == (
        evaluation.qps_min,
        evaluation.qps_median,
        evaluation.qps_max,
    )
    assert RunRecord.from_dict(record.to_dict()) == record
    old = {
        key: value
        for key, value in record.to_dict().items()
        if not key.startswith("qps_") and key not in ("timed_queries", "max_runs")
    }
    legacy = RunRecord.from_dict(old)  # a runs.jsonl line from before the spread was kept
    assert legacy.qps == record.qps and legacy.qps_runs is None and legacy.qps_min is None
    assert legacy.timed_queries is None and legacy.max_runs is None


def test_runs_is_a_maximum_with_a_tolerance(hnsw_words10k, words10k):
    loose = evaluate(hnsw_words10k, words10k, 10, {"ef": 40}, runs=5, qps_tolerance=0.99)
    assert loose.runs == 2 and loose.max_runs == 5 and len(loose.qps_runs) == 2
    assert loose.to_dict()["qps_tolerance"] == 0.99
    with pytest.raises(InputError, match=r"QPS tolerance must be in \[0, 1\), got 1.5"):
        evaluate(hnsw_words10k, words10k, 10, {"ef": 40}, qps_tolerance=1.5)


def test_single_mode_times_a_seeded_sample_and_scores_the_batch_pass(words10k, tmp_path):
    """Single mode: recall and work are the untimed batch pass's over all 1,000 queries,
    exactly; QPS comes from a seeded sample (the same queries every time), grown until the
    interval is within the tolerance; the record says how many queries were timed."""
    engine, seconds = build_index("faiss", words10k.base, "angular", {"factory": "IVF64,Flat"})
    bundle = load_bundle(save_bundle(engine, tmp_path / "ivf", build_seconds=seconds))
    seen: list[np.ndarray] = []
    path = bundle.engine.single_queries

    def spy(queries, k):
        seen.append(np.array(queries))
        return path(queries, k)

    bundle.engine.single_queries = spy  # type: ignore[method-assign]
    setting = {"nprobe": 8}
    batch = evaluate(bundle, words10k, 10, setting, runs=1, with_slices=False)
    wide = evaluate(bundle, words10k, 10, setting, mode="single", qps_tolerance=0.99)
    every = evaluate(bundle, words10k, 10, setting, mode="single", qps_tolerance=0.0)
    for single in (wide, every):
        np.testing.assert_array_equal(single.per_query_recall, batch.per_query_recall)
        np.testing.assert_array_equal(
            single.per_query_distance_computations, batch.per_query_distance_computations
        )
        np.testing.assert_array_equal(single.returned_ids, batch.returned_ids)
        assert single.recall == batch.recall and single.queries == words10k.n_queries
        assert single.qps == pytest.approx(single.timed_queries / single.search_seconds)
        assert single.qps_low <= single.qps <= single.qps_high
        record = RunRecord.from_evaluation(single, "r")
        assert record.timed_queries == single.timed_queries
        assert (record.qps_low, record.qps_high) == (single.qps_low, single.qps_high)
        assert RunRecord.from_dict(record.to_dict()) == record
    assert wide.timed_queries == MIN_TIMED_QUERIES  # a 99% tolerance holds at once
    assert every.timed_queries == min(words10k.n_queries, MAX_TIMED_QUERIES)  # 0: never holds
    order = timing_order(words10k.n_queries)
    np.testing.assert_array_equal(order, timing_order(words10k.n_queries))  # seeded
    assert sorted(order.tolist()) == list(range(words10k.n_queries))
    # both passes were offered the same queries in the same seeded order
    np.testing.assert_array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(seen[0], np.asarray(words10k.queries, np.float32)[order])
    np.testing.assert_array_equal(timing_sample(words10k.n_queries), np.sort(order[:TIMING_SAMPLE]))


def test_time_sample_grows_until_the_interval_is_narrow_enough():
    """The sampled pass times a prefix of the items in order, doubling from the minimum;
    it stops once the interval's relative half-width is within the tolerance."""
    called: list[int] = []
    items = list(range(1000))
    sample = time_sample(called.append, items, 0.99, minimum=50)
    assert sample.timed_queries == 50
    assert called == items[:WARMUP_QUERIES] + items[:50]  # warm-up, then the timed prefix
    called.clear()
    blocks: list[tuple[int, int]] = []
    full = time_sample(called.append, items, 0.0, minimum=50, progress=lambda *a: blocks.append(a))
    assert full.timed_queries == 1000 and called[WARMUP_QUERIES:] == items
    assert [done for done, _ in blocks] == [50, 100, 200, 400, 800, 1000]
    assert blocks[-1] == (1000, 1000)
    # latencies that do not drift: the queries' own spread (normal approximation)
    low, high, width = qps_interval(np.array([1.0, 3.0] * 50))
    assert low < 1 / 2.0 < high and width == pytest.approx(
        1.96 * np.std([1.0, 3.0] * 50, ddof=1) / 10 / 2, rel=1e-3
    )
    # the same latencies, the machine slowing down halfway: the blocks' means disagree and
    # the interval widens (batch means), so the sample would grow
    drifting = qps_interval(np.array([1.0] * 50 + [3.0] * 50))[2]
    assert drifting > 3 * width
