"""Evaluate an index searched with a per-query effort policy: timed by
:mod:`annkit.timing` and scored by :func:`annkit.evaluate.score`, the one scoring function of
uniform settings, with the policy's own work in the distance computations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from annkit.adaptive.policy import AdaptiveResult, Policy, adaptive_search, check_policy_index
from annkit.bundle import Bundle
from annkit.errors import InputError
from annkit.evaluate import Truth, check_setting, score
from annkit.longtail import DEFAULT_CUTS
from annkit.measure import Measure
from annkit.slices import QueryProfile, build_profile
from annkit.timing import RunOutcome, paused_gc, run_single, time_runs
from annkit.types import Dataset, Evaluation, SearchResult


def _search_result(result: AdaptiveResult) -> SearchResult:
    return SearchResult(
        ids=result.ids,
        distances=result.distances,
        distance_computations=result.distance_computations,
    )


def policy_query_params(policy: Policy, result: AdaptiveResult) -> dict:
    """What a policy run did, as its query params: the policy kind, the mean and largest
    effort it chose, its first stage and the share of queries with a second stage."""
    return {
        "policy": policy.kind,
        f"mean_{policy.param}": round(float(result.efforts.mean()), 2),
        f"max_{policy.param}": int(result.efforts.max()),
        "first_stage": policy.stage.kind,
        "second_stage_share": round(float(result.second_stage.mean()), 4),
    }


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
    measure: Measure | None = None,
    truth: Truth | None = None,
) -> Evaluation:
    """Search ``dataset.queries`` with ``policy`` on ``bundle``'s index and score the fastest
    run with :func:`annkit.evaluate.score`, like a uniform setting. ``measure`` says how
    (default: ``k`` (the policy's when None), ``mode``, exactly ``runs`` runs, tolerant
    recall); a policy searches with one thread and one client. ``query_params`` of the
    result names the policy and the mean / largest effort it chose; distance computations
    (per query: features + first stage + second stage) are None when the engine cannot
    count. Batch mode counts in an untimed second pass inside adaptive_search; single mode
    times each query alone and counts in one untimed batch (the same choices: one-thread
    search is deterministic, checked)."""
    if measure is None:
        measure = Measure(k=policy.k if k is None else k, mode=mode, runs=runs, qps_tolerance=0.0)
    if measure.search_threads != 1 or measure.clients is not None:
        raise InputError("a policy searches with one thread and one client")
    k = measure.k
    check_setting(bundle, dataset, measure)
    check_policy_index(policy, bundle.manifest)
    if truth is None:
        truth = Truth(dataset, k, true_distances)
    if profile is None and with_slices:
        profile = build_profile(dataset, truth.distances, k, cuts=cuts)
    engine = bundle.engine
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    counted: list[AdaptiveResult] = []
    if measure.mode == "single":  # the untimed, counted batch the timed runs must agree with
        counted.append(adaptive_search(engine, policy, queries, k))

    def one_run() -> RunOutcome:
        if measure.mode == "batch":
            with paused_gc():
                result = adaptive_search(engine, policy, queries, k)
            counted[:] = [result]
            return _search_result(result), result.seconds, None
        efforts: list[np.ndarray] = []

        def search_one(query: np.ndarray, k: int) -> SearchResult:
            part = adaptive_search(engine, policy, query, k, count=False)
            efforts.append(part.efforts)
            return _search_result(part)

        outcome = run_single(search_one, queries, k)
        if not np.array_equal(np.concatenate(efforts), counted[0].efforts):
            raise RuntimeError("single-query searches chose other efforts than the batch")
        return outcome

    timing = time_runs(one_run, measure.runs, len(queries), measure.qps_tolerance)
    adaptive = counted[0]
    result = timing.best[0]
    return score(
        bundle,
        dataset,
        measure,
        timing,
        result,
        query_params=policy_query_params(policy, adaptive),
        timed_queries=len(queries),
        truth=truth,
        profile=profile,
        counts=adaptive.distance_computations,
    )


def evaluate_file_policy(
    bundle: Bundle,
    dataset: Dataset,
    policy_file: str | Path,
    measure: Measure,
    params: dict | None = None,
    *,
    cuts: Sequence[float] = DEFAULT_CUTS,
) -> Evaluation:
    """``annkit evaluate --policy``: load and check the policy file for ``bundle``, refuse
    what a policy cannot combine with (query params, clients, search threads; one line
    each) and run :func:`evaluate_policy` as ``measure`` says."""
    from annkit.adaptive.policy import load_policy

    if params:
        raise InputError("--policy chooses each query's effort; drop -p")
    if measure.clients is not None or measure.search_threads != 1:
        raise InputError(
            "--policy searches with one thread and one client; drop --clients and --search-threads"
        )
    policy = load_policy(policy_file, bundle.manifest)
    evaluation = evaluate_policy(bundle, dataset, policy, measure=measure, cuts=cuts)
    notice = in_sample_notice(policy, dataset)
    if notice is None:
        return evaluation
    return replace(evaluation, notices=(*evaluation.notices, notice))


def in_sample_notice(policy: Policy, dataset: Dataset) -> str | None:
    """The one-line warning when some of ``dataset``'s queries trained ``policy`` (its
    figures on them are in-sample, better than on new queries); None otherwise."""
    from annkit.adaptive.policy import in_sample_count

    count = in_sample_count(policy, dataset.queries)
    if not count:
        return None
    return (
        f"annkit: in-sample: {count:,} of {dataset.n_queries:,} queries of {dataset.name} "
        "trained this policy, so its figures on them are better than on new queries"
    )
