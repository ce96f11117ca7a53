"""DARTH-style stopping: a recall predictor on the search state, checked at intervals.

A query's search is resumed from one checkpoint (a grid effort) to the next; at each
checkpoint a LightGBM model predicts the recall of the current result from the state
(effort, work so far, the found distances, how much the result changed since the last
checkpoints), and the query stops at the first checkpoint from ``first`` on whose predicted
recall reaches a calibrated ``threshold`` (at ``last`` in any case). Resuming makes the work
of a query stopped at checkpoint j exactly that of one search at that effort.

Training (on training queries only): every query is searched through all checkpoints once
(:func:`darth_table`); the model is fitted on (query, checkpoint) rows labelled with the
recall there; out-of-fold predictions of inner folds calibrate (threshold, first, last)
for the goal with the same chooser the learned policies use.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annkit.adaptive.calibrate import Outcomes, choose
from annkit.adaptive.features import first_stage_features
from annkit.adaptive.folds import fold_assignment
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import (
    AdaptiveResult,
    FirstStage,
    Policy,
    PolicyError,
    index_identity,
    require_lightgbm,
)
from annkit.adaptive.table import EffortTable, per_query_recall
from annkit.engines.base import Engine
from annkit.engines.hnsw_kernel import HnswKernel, SearchState, require_kernel
from annkit.types import SearchResult

STATE_FEATURES = (
    "log2_ef",
    "log2_work",
    "d1",
    "dk",
    "dk_over_d1",
    "spread",
    "lid",
    "new_since_last",
    "new_since_two",
    "dk_drop",
    "saturated",
    "log2_expansions",
    "log2_collected",
)
#: quantiles of the out-of-fold predictions tried as thresholds
THRESHOLD_QUANTILES = np.linspace(0.0, 1.0, 41)
INNER_FOLDS = 3
ROUNDS = 120
CHUNK = 1024


def _kernel(engine: Engine) -> HnswKernel:
    return require_kernel(engine, "policy kind 'darth'")


def _new_ids(ids: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per row: how many of ``ids`` (n, k) are not in ``before`` (n, k)."""
    present = (ids[:, :, None] == before[:, None, :]).any(axis=2)
    return (~present & (ids >= 0)).sum(axis=1)


def state_features(
    found: SearchResult,
    effort: int,
    previous: np.ndarray,
    two_before: np.ndarray,
    previous_dk: np.ndarray,
    state: SearchState,
    rows: np.ndarray,
) -> np.ndarray:
    """(n, len(STATE_FEATURES)) at one checkpoint from the current result of ``rows`` of
    ``state``, the ids at the two checkpoints before (-1 rows when none), the k-th distance
    at the last one, and the search's own counters (expansions in a row that left the
    result queue saturated, expansions, results ever collected)."""
    staged = first_stage_features(found)
    dk = staged[:, 1]
    assert found.distance_computations is not None
    work = np.maximum(found.distance_computations, 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.where(previous_dk > 0, (previous_dk - dk) / previous_dk, 0.0)
    return np.column_stack(
        [
            np.full(len(dk), np.log2(max(effort, 1))),
            np.log2(work),
            staged[:, 0],
            dk,
            staged[:, 3],
            staged[:, 5],
            staged[:, 6],
            _new_ids(found.ids, previous),
            _new_ids(found.ids, two_before),
            drop,
            state.saturated[rows],
            np.log2(np.maximum(state.nstep[rows], 1)),
            np.log2(np.maximum(state.collected[rows], 1)),
        ]
    )


@dataclass
class DarthTable:
    """Every training query searched through every checkpoint: recall (n, C), work (n, C)
    and state features (n, C, F); fitted models per training rows are cached in ``fits``."""

    checkpoints: list[int]
    recall: np.ndarray
    work: np.ndarray
    features: np.ndarray
    fits: dict[str, Any] = field(default_factory=dict)


def darth_table(
    engine: Engine,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    truth: np.ndarray,
    k: int,
    checkpoints: list[int],
) -> DarthTable:
    """Search every query through ``checkpoints`` (one resumed search each) and record the
    recall, work and state features at each."""
    kernel = _kernel(engine)
    checkpoints = sorted({int(c) for c in checkpoints})
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_queries, size = int(queries.shape[0]), len(checkpoints)
    recall = np.zeros((n_queries, size))
    work = np.zeros((n_queries, size), dtype=np.int64)
    features = np.zeros((n_queries, size, len(STATE_FEATURES)))
    for start in range(0, n_queries, CHUNK):
        rows = np.arange(start, min(n_queries, start + CHUNK))
        state = kernel.start(queries[rows], k, max(checkpoints))
        previous = np.full((rows.size, k), -1, dtype=np.int64)
        two_before = previous.copy()
        previous_dk = np.zeros(rows.size)
        for column, effort in enumerate(checkpoints):
            kernel.advance(state, effort)
            found = kernel.result(state)
            features[rows, column] = state_features(
                found, effort, previous, two_before, previous_dk, state, np.arange(rows.size)
            )
            recall[rows, column] = per_query_recall(
                base, queries[rows], metric, truth[rows], found.ids, k
            )
            assert found.distance_computations is not None
            work[rows, column] = found.distance_computations
            two_before, previous = previous, found.ids
            previous_dk = features[rows, column, STATE_FEATURES.index("dk")]
    return DarthTable(checkpoints, recall, work, features)


def _train(lightgbm: Any, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    data = lightgbm.Dataset(features, label=labels, free_raw_data=True)
    return lightgbm.train(params, data, num_boost_round=ROUNDS)


def _fit(data: DarthTable, rows: np.ndarray, seed: int) -> tuple[str, np.ndarray]:
    """(model text on all ``rows``, out-of-fold predictions (n, C) of inner folds)."""
    key = hashlib.blake2b(np.ascontiguousarray(rows).tobytes()).hexdigest()
    if key in data.fits:
        return data.fits[key]  # type: ignore[no-any-return]
    lightgbm = require_lightgbm()
    n_features = len(STATE_FEATURES)
    size = len(data.checkpoints)
    oof = np.zeros((rows.size, size))
    inner = fold_assignment(rows.size, INNER_FOLDS, seed)
    for fold in range(INNER_FOLDS):
        fit_rows, held = rows[inner != fold], inner == fold
        booster = _train(
            lightgbm,
            data.features[fit_rows].reshape(-1, n_features),
            data.recall[fit_rows].reshape(-1),
            seed,
        )
        predicted = booster.predict(
            data.features[rows[held]].reshape(-1, n_features), num_threads=1
        )
        oof[held] = np.asarray(predicted).reshape(-1, size)
    booster = _train(
        lightgbm, data.features[rows].reshape(-1, n_features), data.recall[rows].reshape(-1), seed
    )
    fitted = (str(booster.model_to_string()), oof)
    data.fits[key] = fitted
    return fitted


def _stop_index(predicted: np.ndarray, threshold: float, first: int, last: int) -> np.ndarray:
    """Per row: the first checkpoint in first..last whose prediction reaches the threshold
    (``last`` when none does)."""
    size = predicted.shape[1]
    columns = np.arange(size)
    stops = (predicted >= threshold) & (columns >= first)[None, :]
    stops |= (columns == last)[None, :]
    stops &= (columns <= last)[None, :]
    return np.argmax(stops, axis=1)


def fit_darth(
    data: DarthTable,
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    manifest: dict,
    param: str,
    k: int,
    dim: int,
    seed: int = 0,
) -> Policy:
    """The recall predictor and the (threshold, first, last) checkpoints best meeting
    ``goal`` on the training ``rows`` (out-of-fold predictions; goal resolved on the
    uniform ``table``)."""
    recall_target, budget = goal.resolve(table, rows)
    p5_floor = goal.p5_floor(table, rows)
    model_text, oof = _fit(data, rows, seed)
    thresholds = np.unique(np.quantile(oof, THRESHOLD_QUANTILES))
    thresholds = np.append(thresholds, np.inf)
    size = len(data.checkpoints)
    firsts = range(0, size, 2)
    lasts = range(0, size)
    recall_rows, work_rows = data.recall[rows], data.work[rows].astype(np.float64)
    settings, recalls, works = [], [], []
    picked = np.arange(rows.size)
    for first in firsts:
        for last in lasts:
            if last < first:
                continue
            for threshold in thresholds:
                stop = _stop_index(oof, float(threshold), first, last)
                recalls.append(recall_rows[picked, stop])
                works.append(work_rows[picked, stop])
                settings.append((float(threshold), first, last))
    outcomes = Outcomes(np.column_stack(recalls), np.column_stack(works))
    column = choose(outcomes, recall_target, budget, p5_floor)
    threshold, first, last = settings[column]
    return Policy(
        kind="darth",
        index=index_identity(manifest),
        param=param,
        grid=list(table.grid),
        k=k,
        stage=FirstStage("none"),
        calibration={
            "threshold": threshold if np.isfinite(threshold) else 1e9,
            "first": int(data.checkpoints[first]),
            "last": int(data.checkpoints[last]),
            "checkpoints": [int(c) for c in data.checkpoints],
        },
        centroids=np.zeros((0, dim), dtype=np.float32),
        seed=seed,
        target=goal.value,
        model_text=model_text,
        training={
            "queries": int(rows.size),
            "goal": goal.label(),
            "train_recall": float(outcomes.mean_recall[column]),
            "train_p5_recall": float(outcomes.p5[column]),
            "train_work": float(outcomes.mean_cost[column]),
            "recall_goal": recall_target,
            "work_budget": budget,
        },
    )


def _booster(policy: Policy) -> Any:
    if policy._booster is None:
        lightgbm = require_lightgbm()
        try:
            policy._booster = lightgbm.Booster(model_str=policy.model_text)
        except lightgbm.basic.LightGBMError:
            raise PolicyError(
                "policy model text cannot be read by lightgbm; retrain it with annkit adapt"
            ) from None
    return policy._booster


def darth_search(engine: Engine, policy: Policy, queries: np.ndarray, k: int) -> AdaptiveResult:
    """Search with a DARTH-style policy: resume every active query to the next checkpoint,
    predict its recall, stop those at or above the threshold (all at the last)."""
    kernel = _kernel(engine)
    booster = _booster(policy)
    calibration = policy.calibration
    checkpoints = [c for c in calibration["checkpoints"] if c <= calibration["last"]]
    first, threshold = int(calibration["first"]), float(calibration["threshold"])
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_queries = int(queries.shape[0])
    started = time.perf_counter()
    state = kernel.start(queries, k, max(checkpoints))
    previous = np.full((n_queries, k), -1, dtype=np.int64)
    two_before = previous.copy()
    previous_dk = np.zeros(n_queries)
    efforts = np.zeros(n_queries, dtype=np.int64)
    active = np.arange(n_queries)
    for position, effort in enumerate(checkpoints):
        kernel.advance(state, effort, rows=active)
        efforts[active] = effort
        if position == len(checkpoints) - 1:
            break
        found = kernel.result(state, active)
        features = state_features(
            found, effort, previous[active], two_before[active], previous_dk[active], state, active
        )
        two_before[active], previous[active] = previous[active], found.ids
        previous_dk[active] = features[:, STATE_FEATURES.index("dk")]
        if effort >= first:
            predicted = np.asarray(booster.predict(features, num_threads=1))
            active = active[predicted < threshold]
        if not active.size:
            break
    found = kernel.result(state)
    seconds = time.perf_counter() - started
    zeros = np.zeros(n_queries, dtype=np.int64)
    return AdaptiveResult(
        ids=found.ids,
        distances=found.distances,
        efforts=efforts,
        second_stage=efforts > checkpoints[0],
        computations={"features": zeros, "first": zeros, "second": found.distance_computations},
        seconds=seconds,
    )
