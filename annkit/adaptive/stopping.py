"""Stopping rules inside the search: per-query effort decided while a query is searched,
not before. They run in annkit's own resumable graph search
(:mod:`annkit.engines.hnsw_kernel`), so they need an index it can read.

Five policy kinds, trained and scored by ``adapt`` like the others (cross-fitted, same goals,
frontiers, oracle and room):

- ``patience``: a search at effort ``ef`` that also stops a query once more than ``p``
  consecutive expansions left its k-result queue saturated (Lucene's
  ``PatienceKnnVectorQuery``). ``ef`` and ``p`` are chosen on the training queries for the
  goal; ``p`` = -1 (no patience) is a candidate, so a uniform setting is one too.
- ``resume``: the threshold rule (a full first stage, one first-stage feature above or
  below a threshold picks the hard effort), but a query picked for more effort resumes
  its first-stage search instead of searching again from scratch: its total work is that
  of one search at the hard effort, not the first stage's plus it.
- ``learned-resume``: the learned policy (LightGBM effort or risk model after a full first
  stage, as ``learned``) calibrated and run with resumed costs in the same way.
- ``darth``: a recall predictor on the search state checked at every grid effort
  (:mod:`annkit.adaptive.darth`).
- ``ada-ef``: the effort of the query's score bin, the score being where its first-stage
  k-th distance sits in the Gaussian of its distances to the base
  (:mod:`annkit.adaptive.ada_ef`).

Work is the exact distance computations of everything the policy does (faiss' counting,
which the kernel reproduces), so it compares with the uniform frontier's counts directly.
QPS is the kernel's (numba) and the uniform frontier's is the engine's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from annkit.adaptive.ada_ef import AdaEfData, ada_ef_data, ada_ef_search, fit_ada_ef
from annkit.adaptive.calibrate import Outcomes, better_calibration, calibrate_learned, choose
from annkit.adaptive.darth import DarthTable, darth_search, darth_table, fit_darth
from annkit.adaptive.families import LearnedFamily, train_families
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import (
    STOPPING_KINDS,
    AdaptiveResult,
    FirstStage,
    Policy,
    index_identity,
)
from annkit.adaptive.table import RECALL_TOLERANCE, EffortTable, per_query_recall
from annkit.adaptive.threshold import fit_threshold
from annkit.adaptive.train import AdaptConfig
from annkit.engines.base import Engine
from annkit.engines.hnsw_kernel import HnswKernel, require_kernel

__all__ = [
    "STOPPING_KINDS",
    "fit_patience",
    "fit_resume",
    "fit_stopping",
    "patience_table",
    "stopping_data",
    "stopping_search",
]

#: patience values tried (-1: none, the uniform search)
PATIENCE_VALUES = (-1, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
#: queries per kernel call while tabulating (bounds the visited bitsets' memory)
CHUNK = 1024


@dataclass
class PatienceTable:
    """Per training query (n) and candidate setting (M = caps x patience values): recall
    (n, M) and distance computations (n, M); ``settings[m]`` = (ef, patience)."""

    settings: list[tuple[int, int]]
    recall: np.ndarray
    work: np.ndarray


def kernel_of(engine: Engine, kind: str) -> HnswKernel:
    """The engine's kernel, or a one-line ParamError naming the policy kind."""
    return require_kernel(engine, f"policy kind {kind!r}")


def patience_table(
    engine: Engine,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    truth: np.ndarray,
    k: int,
    caps: list[int],
    patience_values: tuple[int, ...] = PATIENCE_VALUES,
) -> PatienceTable:
    """Every (ef, patience) outcome of every query, one resumable search per patience
    value: the caps in increasing order are successive stops of one search (stopped at
    ef a and resumed to b it is the search at b; patience keeps counting across)."""
    kernel = kernel_of(engine, "patience")
    caps = sorted({int(c) for c in caps})
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_queries = int(queries.shape[0])
    settings = [(cap, wait) for wait in patience_values for cap in caps]
    recall = np.zeros((n_queries, len(settings)))
    work = np.zeros((n_queries, len(settings)), dtype=np.int64)
    for start in range(0, n_queries, CHUNK):
        rows = np.arange(start, min(n_queries, start + CHUNK))
        column = 0
        for wait in patience_values:
            state = kernel.start(queries[rows], k, max(caps))
            for cap in caps:
                kernel.advance(state, cap, patience=None if wait < 0 else wait)
                found = kernel.result(state)
                recall[rows, column] = per_query_recall(
                    base, queries[rows], metric, truth[rows], found.ids, k
                )
                assert found.distance_computations is not None
                work[rows, column] = found.distance_computations
                column += 1
    return PatienceTable(settings, recall, work)


def _stopping_policy(
    kind: str,
    manifest: dict,
    param: str,
    table: EffortTable,
    k: int,
    stage: FirstStage,
    calibration: dict,
    centroids: np.ndarray,
    goal: Goal,
    seed: int,
    training: dict,
) -> Policy:
    return Policy(
        kind=kind,
        index=index_identity(manifest),
        param=param,
        grid=list(table.grid),
        k=k,
        stage=stage,
        calibration=calibration,
        centroids=centroids,
        seed=seed,
        target=goal.value,
        training=training,
    )


def fit_patience(
    data: PatienceTable,
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    manifest: dict,
    param: str,
    k: int,
    dim: int,
    seed: int = 0,
) -> Policy:
    """The (ef, patience) setting best meeting ``goal`` on the training ``rows`` (goals
    resolved on the uniform ``table`` as for every kind; a uniform-recall goal also keeps
    the uniform's p5)."""
    recall_target, budget = goal.resolve(table, rows)
    p5_floor = goal.p5_floor(table, rows)
    outcomes = Outcomes(data.recall[rows], data.work[rows].astype(np.float64))
    column = choose(outcomes, recall_target, budget, p5_floor)
    ef, wait = data.settings[column]
    training = {
        "queries": int(rows.size),
        "goal": goal.label(),
        "train_recall": float(outcomes.mean_recall[column]),
        "train_p5_recall": float(outcomes.p5[column]),
        "train_work": float(outcomes.mean_cost[column]),
        "recall_goal": recall_target,
        "work_budget": budget,
    }
    return _stopping_policy(
        "patience",
        manifest,
        param,
        table,
        k,
        FirstStage("none"),
        {"ef": int(ef), "patience": int(wait)},
        np.zeros((0, dim), dtype=np.float32),
        goal,
        seed,
        training,
    )


def resume_table(table: EffortTable, first_index: int) -> EffortTable:
    """``table`` with only the full first stage at grid index ``first_index``, and the
    cost of every larger effort j made cost_j - cost_first: the threshold rule's sum
    (first stage + second search) is then cost_j, what a resumed search costs."""
    assert table.computations is not None
    computations = table.computations.copy()
    later = slice(first_index + 1, None)
    computations[:, later] = np.maximum(computations[:, later] - computations[:, [first_index]], 0)
    stages = {key: data for key, data in table.stages.items() if data.reuse == first_index}
    return replace(table, computations=computations, stages=stages)


def fit_resume(
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    manifest: dict,
    param: str,
    k: int,
    centroids: np.ndarray,
    seed: int = 0,
) -> Policy:
    """The threshold rule fitted with resumed costs (see :func:`resume_table`): for each
    full first stage, the best feature, threshold and efforts; then the best stage for the
    goal (recall goals: least work reaching the recall; budgets: best recall within it).
    The goal is resolved on the real table (uniform recall and work)."""
    recall_target, budget = goal.resolve(table, rows)
    if recall_target is not None:
        fixed = Goal("recall", recall_target)
    else:
        assert budget is not None
        fixed = Goal("budget", budget)
    best: tuple[FirstStage, dict, dict] | None = None
    for data in table.stages.values():
        if data.reuse is None:
            continue
        candidate = fit_threshold(resume_table(table, data.reuse), rows, fixed)
        if best is None or _better(candidate[2], best[2], recall_target, budget):
            best = candidate
    if best is None:
        raise ValueError("the resume rule needs a full first stage in the table")
    stage, calibration, stats = best
    return _stopping_policy(
        "resume",
        manifest,
        param,
        table,
        k,
        stage,
        calibration,
        centroids[:0],
        goal,
        seed,
        {"queries": int(rows.size), "goal": goal.label(), **stats},
    )


def _resume_family(family: LearnedFamily) -> LearnedFamily:
    """A copy of ``family`` whose calibration outcomes are cached apart from the family's
    own (they are computed on resumed costs), kept on the family so that every goal
    shares it."""
    key = ("resumed costs",)
    if key not in family.outcomes:
        family.outcomes[key] = replace(family, outcomes={})
    return family.outcomes[key]  # type: ignore[no-any-return]


def fit_learned_resume(
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    manifest: dict,
    param: str,
    k: int,
    centroids: np.ndarray,
    families: list[LearnedFamily],
    seed: int = 0,
) -> Policy:
    """The learned policy (effort or risk model after a full first stage) calibrated with
    resumed costs: a query given more effort than its first stage resumes that search, so
    its work is one search at its final effort. Each family is calibrated on its own
    stage's resumed table (:func:`resume_table`); the best for ``goal`` wins."""
    recall_target, budget = goal.resolve(table, rows)
    # a uniform budget is resolved on the real costs; recall goals read only recall
    fixed = Goal("budget", budget) if goal.kind == "uniform-budget" and budget else goal
    best: tuple[LearnedFamily, dict, dict] | None = None
    for family in families:
        reuse = table.stages[family.stage].reuse
        if reuse is None:
            continue
        candidate = calibrate_learned(
            resume_table(table, reuse), rows, [_resume_family(family)], fixed
        )
        if best is None or better_calibration(candidate[2], best[2], recall_target, budget):
            best = candidate
    if best is None:
        raise ValueError("learned-resume needs a full first stage in the table")
    family, calibration, stats = best
    return Policy(
        kind="learned-resume",
        index=index_identity(manifest),
        param=param,
        grid=list(table.grid),
        k=k,
        stage=table.stages[family.stage].stage,
        calibration=calibration,
        centroids=centroids,
        seed=seed,
        target=goal.value,
        model_text=family.model_text,
        training={"queries": int(rows.size), "goal": goal.label(), **stats},
    )


def _better(new: dict, old: dict, recall_target: float | None, budget: float | None) -> bool:
    if recall_target is not None:
        return better_calibration(new, old, recall_target)
    assert budget is not None
    new_ok, old_ok = new["train_work"] <= budget, old["train_work"] <= budget
    if new_ok != old_ok:
        return bool(new_ok)
    if not new_ok:
        return bool(new["train_work"] < old["train_work"])
    return bool(new["train_recall"] > old["train_recall"] + RECALL_TOLERANCE)


def stopping_search(engine: Engine, policy: Policy, queries: np.ndarray, k: int) -> AdaptiveResult:
    """Search ``queries`` with a stopping-rule policy inside annkit's own graph search (one
    thread; counting is free there, so one pass is both timed and counted)."""
    if policy.kind == "darth":
        return darth_search(engine, policy, queries, k)
    if policy.kind == "ada-ef":
        return ada_ef_search(engine, policy, queries, k)
    kernel = kernel_of(engine, policy.kind)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_queries = int(queries.shape[0])
    zeros = np.zeros(n_queries, dtype=np.int64)
    if policy.kind == "patience":
        ef, wait = int(policy.calibration["ef"]), int(policy.calibration["patience"])
        start = time.perf_counter()
        found = kernel.search(queries, k, ef, None if wait < 0 else wait)
        seconds = time.perf_counter() - start
        return AdaptiveResult(
            ids=found.ids,
            distances=found.distances,
            efforts=np.full(n_queries, ef, dtype=np.int64),
            second_stage=np.zeros(n_queries, dtype=bool),
            computations={"features": zeros, "first": zeros, "second": found.distance_computations},
            seconds=seconds,
        )
    first_effort = int(policy.stage.effort)
    if policy.kind == "learned-resume" and policy.model == "effort":
        capacity = max(policy.grid)  # any grid effort may be chosen
    elif policy.kind == "learned-resume":
        capacity = max(first_effort, int(policy.calibration["hard"]))
    else:
        capacity = max(
            first_effort, int(policy.calibration["hard"]), int(policy.calibration["easy"])
        )
    policy.prepare()
    start = time.perf_counter()
    state = kernel.start(queries, k, capacity)
    kernel.advance(state, first_effort)
    first = kernel.result(state)
    efforts = policy.final_efforts(policy.features(queries, first))
    rows = np.flatnonzero(efforts > first_effort)
    if rows.size:
        kernel.advance(state, efforts[rows], rows=rows)
    found = kernel.result(state)
    seconds = time.perf_counter() - start
    return AdaptiveResult.resumed(first, found, efforts, first_effort, policy.n_centroids, seconds)


def stopping_data(
    kind: str,
    engine: Engine,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    truth: np.ndarray,
    k: int,
    grid: Sequence[int],
    say: Callable[[str], None] | None = None,
    seed: int = 0,
) -> PatienceTable | DarthTable | AdaEfData | None:
    """What ``kind`` is fitted on beyond the effort table, measured once on the training
    ``queries``: patience: every (ef of ``grid``, patience) outcome; darth: every query
    through every checkpoint; ada-ef: the base's distance model; resume: nothing (the
    effort table's full first stages and costs suffice). ParamError (one line) when the
    engine's index cannot be searched by annkit's own kernel."""
    kernel_of(engine, kind)
    if kind == "ada-ef":
        return ada_ef_data(base, queries, metric, seed)
    if kind == "darth":
        if say is not None:
            say(f"darth: searching every query through {len(grid)} checkpoints")
        return darth_table(engine, base, queries, metric, truth, k, list(grid))
    if kind != "patience":
        return None
    if say is not None:
        say(
            f"patience: searching every query at {len(grid)} efforts x "
            f"{len(PATIENCE_VALUES)} patience values"
        )
    return patience_table(engine, base, queries, metric, truth, k, list(grid))


def fit_stopping(
    kind: str,
    data: PatienceTable | DarthTable | AdaEfData | None,
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    config: AdaptConfig,
    manifest: dict,
    param: str,
    centroids: np.ndarray,
    families: list[LearnedFamily] | None = None,
) -> Policy:
    """Fit one stopping-rule policy of ``kind`` on the training ``rows`` for ``goal``
    (learned-resume: with the LightGBM ``families`` trained on those rows, trained here
    when None)."""
    if kind == "learned-resume":
        if families is None:
            families = train_families(
                table,
                rows,
                list(table.stages),
                config.label_targets,
                config.folds,
                config.seed,
                config.rounds,
            )
        return fit_learned_resume(
            table, rows, goal, manifest, param, config.k, centroids, families, config.seed
        )
    if kind == "darth":
        assert isinstance(data, DarthTable)
        return fit_darth(
            data, table, rows, goal, manifest, param, config.k, int(centroids.shape[1]), config.seed
        )
    if kind == "ada-ef":
        assert isinstance(data, AdaEfData)
        return fit_ada_ef(
            data, table, rows, goal, manifest, param, config.k, int(centroids.shape[1]), config.seed
        )
    if kind == "patience":
        assert isinstance(data, PatienceTable)
        return fit_patience(
            data, table, rows, goal, manifest, param, config.k, int(centroids.shape[1]), config.seed
        )
    return fit_resume(table, rows, goal, manifest, param, config.k, centroids, config.seed)
