"""Evaluate an index searched with a per-query effort policy: the same scoring as
:func:`annkit.evaluate.evaluate`, with the policy's own work in the distance computations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annkit.adaptive.policy import AdaptiveResult, Policy, adaptive_search, check_policy_index
from annkit.bundle import Bundle
from annkit.errors import InputError
from annkit.evaluate import MODES, check_compatible, paused_gc, true_neighbor_distances
from annkit.longtail import DEFAULT_CUTS
from annkit.metrics import duplicate_count, exact_distances, latency_percentiles, recall_per_query
from annkit.slices import QueryProfile, build_profile, summarize
from annkit.types import Dataset, Evaluation


def _run(
    bundle: Bundle, policy: Policy, queries: np.ndarray, k: int, mode: str
) -> tuple[AdaptiveResult, float, np.ndarray | None]:
    """One timed run (counting off); batch mode counts in an untimed second pass inside
    adaptive_search, single mode times each query alone and counts afterwards in one
    untimed batch (the same choices: one-thread search is deterministic)."""
    if mode == "batch":
        with paused_gc():
            result = adaptive_search(bundle.engine, policy, queries, k)
        return result, result.seconds, None
    parts, latencies = [], np.empty(len(queries))
    with paused_gc():
        for row in range(len(queries)):
            start = time.perf_counter()
            parts.append(
                adaptive_search(bundle.engine, policy, queries[row : row + 1], k, count=False)
            )
            latencies[row] = time.perf_counter() - start
    counted = adaptive_search(bundle.engine, policy, queries, k)
    efforts = np.concatenate([p.efforts for p in parts])
    if not np.array_equal(efforts, counted.efforts):
        raise RuntimeError("single-query searches chose other efforts than the batch")
    merged = AdaptiveResult(
        ids=np.vstack([p.ids for p in parts]),
        distances=np.vstack([p.distances for p in parts]),
        efforts=efforts,
        second_stage=np.concatenate([p.second_stage for p in parts]),
        computations=counted.computations,
        seconds=float(latencies.sum()),
    )
    return merged, float(latencies.sum()), latencies


def evaluate_policy(
    bundle: Bundle,
    dataset: Dataset,
    policy: Policy,
    k: int | None = None,
    *,
    mode: str = "batch",
    runs: int = 1,
    true_distances: np.ndarray | None = None,
    profile: QueryProfile | None = None,
    with_slices: bool = True,
    cuts: Sequence[float] = DEFAULT_CUTS,
) -> Evaluation:
    """Search ``dataset.queries`` with ``policy`` on ``bundle``'s index ``runs`` times and
    score the fastest run like :func:`annkit.evaluate.evaluate`. ``query_params`` of the
    result names the policy and the mean / largest effort it chose; distance computations
    (per query: features + first stage + second stage) are None when the engine cannot
    count. ``k`` defaults to the policy's."""
    k = policy.k if k is None else k
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use batch or single")
    if runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    check_compatible(bundle, dataset)
    check_policy_index(policy, bundle.manifest)
    if true_distances is None:
        true_distances = true_neighbor_distances(dataset, k)
    if profile is None and with_slices:
        profile = build_profile(dataset, true_distances, k, cuts=cuts)
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    best: tuple[AdaptiveResult, float, np.ndarray | None] | None = None
    for _ in range(runs):
        outcome = _run(bundle, policy, queries, k, mode)
        if best is None or outcome[1] < best[1]:
            best = outcome
    assert best is not None
    result, seconds, latencies = best
    found = exact_distances(dataset.base, dataset.queries, result.ids, dataset.metric)
    per_query = recall_per_query(true_distances, result.ids, found, k)
    counts = result.distance_computations
    tail, slices, weighted = summarize(per_query, profile)
    manifest = bundle.manifest
    return Evaluation(
        engine=bundle.engine.name,
        build_params=dict(manifest["build_params"]),
        query_params={
            "policy": policy.kind,
            f"mean_{policy.param}": round(float(result.efforts.mean()), 2),
            f"max_{policy.param}": int(result.efforts.max()),
            "first_stage": policy.stage.kind,
            "second_stage_share": round(float(result.second_stage.mean()), 4),
        },
        metric=dataset.metric,
        k=k,
        mode=mode,
        queries=dataset.n_queries,
        recall=float(per_query.mean()),
        qps=float(dataset.n_queries / seconds) if seconds > 0 else float("inf"),
        latency_ms=latency_percentiles(latencies),
        build_seconds=float(manifest["build_seconds"]),
        index_bytes=bundle.index_bytes,
        search_seconds=float(seconds),
        runs=runs,
        per_query_recall=per_query,
        profile=profile,
        dataset=dataset.name,
        duplicate_ids=duplicate_count(result.ids),
        tail=tail,
        slices=slices,
        weighted_recall=weighted,
        distance_computations=None if counts is None else float(counts.mean()),
        per_query_distance_computations=counts,
    )


def evaluate_file_policy(
    bundle: Bundle,
    dataset: Dataset,
    policy_file: str | Path,
    k: int,
    params: dict | None = None,
    *,
    mode: str = "batch",
    runs: int = 1,
    cuts: Sequence[float] = DEFAULT_CUTS,
    clients: int | None = None,
    search_threads: int = 1,
) -> Evaluation:
    """``annkit evaluate --policy``: load and check the policy file for ``bundle``, refuse
    what a policy cannot combine with (query params, clients, search threads; one line
    each) and run :func:`evaluate_policy`."""
    from annkit.adaptive.policy import load_policy

    if params:
        raise InputError("--policy chooses each query's effort; drop -p")
    if clients is not None or search_threads != 1:
        raise InputError(
            "--policy searches with one thread and one client; drop --clients and --search-threads"
        )
    policy = load_policy(policy_file, bundle.manifest)
    return evaluate_policy(bundle, dataset, policy, k, mode=mode, runs=runs, cuts=cuts)
