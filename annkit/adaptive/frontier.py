"""Scoring on queries a policy never saw: frontier points (recall, p5, tail, slices, work,
qps), the real adaptive search of each fold's policy, the uniform frontier, and the bounds
that use the ground truth (the per-query oracle, the room perfect knowledge would leave).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from annkit.adaptive.policy import (
    Policy,
    adaptive_search,
)
from annkit.adaptive.search import search_with_efforts
from annkit.adaptive.table import (
    RECALL_TOLERANCE,
    EffortTable,
    least_effort_index,
    per_query_recall,
)
from annkit.engines.base import Engine
from annkit.slices import QueryProfile, summarize

ORACLE_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def frontier_point(
    setting: dict,
    recall: np.ndarray,
    computations: np.ndarray | None,
    seconds: float,
    profile: QueryProfile | None,
    **extra: object,
) -> dict:
    """One frontier point: recall, p5_recall, tail, slices, distance computations (mean per
    query, None when not counted; the tail and each slice also get their work tail, as in
    evaluate) and qps."""
    tail, slices, weighted = summarize(recall, profile, computations)
    return {
        "setting": setting,
        "recall": float(recall.mean()),
        "p5_recall": float(np.percentile(recall, 5.0)),
        "tail": tail.to_dict(),
        "slices": {name: entry.to_dict() for name, entry in slices.items()},
        "weighted_recall": weighted,
        "distance_computations": None if computations is None else float(computations.mean()),
        "qps": float(recall.size / seconds) if seconds > 0 else float("inf"),
        **extra,
    }


@dataclass
class Scored:
    """The per-query outcome of one policy setting over all scored queries."""

    recall: np.ndarray
    computations: np.ndarray | None
    efforts: np.ndarray
    second_stage: np.ndarray
    seconds: float
    stage_means: dict = field(default_factory=dict)


def score_policies(
    engine: Engine,
    policies: Sequence[Policy],
    groups: Sequence[np.ndarray],
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    truth: np.ndarray,
    k: int,
) -> Scored:
    """Run ``policies[i]`` on the queries ``groups[i]`` (disjoint) with the real adaptive
    search; per-query recall and computations in query order."""
    n_queries = int(queries.shape[0])
    recall = np.zeros(n_queries)
    efforts = np.zeros(n_queries, dtype=np.int64)
    second = np.zeros(n_queries, dtype=bool)
    counts: np.ndarray | None = np.zeros(n_queries, dtype=np.int64)
    stages: dict[str, np.ndarray | None] = {}
    seconds = 0.0
    for policy, rows in zip(policies, groups, strict=True):
        result = adaptive_search(engine, policy, queries[rows], k)
        seconds += result.seconds
        recall[rows] = per_query_recall(base, queries[rows], metric, truth[rows], result.ids, k)
        efforts[rows], second[rows] = result.efforts, result.second_stage
        total = result.distance_computations
        if total is None or counts is None:
            counts = None
        else:
            counts[rows] = total
        for stage, values in result.computations.items():
            if stage not in stages:
                stages[stage] = np.zeros(n_queries, dtype=np.int64)
            if values is None or stages[stage] is None:
                stages[stage] = None
            else:
                stages[stage][rows] = values  # type: ignore[index]
    means = {
        stage: None if values is None else float(values.mean()) for stage, values in stages.items()
    }
    return Scored(recall, counts, efforts, second, seconds, means)


def oracle_point(
    engine: Engine,
    table: EffortTable,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    truth: np.ndarray,
    k: int,
    target: float,
    profile: QueryProfile | None,
) -> dict:
    """Each query searched at its own least grid effort reaching ``target`` (the largest
    grid value when never): uses the ground truth, so a bound, never a policy."""
    index = np.minimum(least_effort_index(table.recall, target), len(table.grid) - 1)
    efforts = np.asarray(table.grid, dtype=np.int64)[index]
    with engine.uncounted():
        start = time.perf_counter()
        result = search_with_efforts(engine, queries, k, efforts)
        seconds = time.perf_counter() - start
    counts = (
        search_with_efforts(engine, queries, k, efforts).distance_computations
        if engine.counts_distances
        else None
    )
    recall = per_query_recall(base, queries, metric, truth, result.ids, k)
    return frontier_point(
        {"per_query_target": target},
        recall,
        counts,
        seconds,
        profile,
        uses_ground_truth=True,
        mean_effort=float(efforts.mean()),
    )


def least_work_for_recall(
    recall: np.ndarray, cost: np.ndarray, goal: float
) -> tuple[float, np.ndarray] | None:
    """Least mean work to reach mean recall ``goal`` when each query (row) picks one of its
    options (columns: recall (n, m), work (n, m)): the greedy on each query's upper convex
    hull of (work, recall), best recall per work first. That is the linear relaxation's
    optimum (a lower bound on the least work) rounded up to the step that reaches the goal,
    so with many queries it is the least work to within one option step. Returns (mean work,
    per-query recall (n,) of the chosen options), or None when unreachable."""
    n_rows = recall.shape[0]
    rows = np.arange(n_rows)
    choice = np.zeros(n_rows, dtype=np.int64)
    gains, works, owners, targets = [], [], [], []
    for row in range(n_rows):
        # cheapest first (best recall among equally cheap), then the upper convex hull
        order = np.lexsort((-recall[row], cost[row]))
        hull = [int(order[0])]
        for option in order[1:]:
            if recall[row, option] <= recall[row, hull[-1]]:
                continue
            while len(hull) >= 2:
                a, b = hull[-2], hull[-1]
                left = (recall[row, b] - recall[row, a]) * (cost[row, option] - cost[row, a])
                right = (recall[row, option] - recall[row, a]) * (cost[row, b] - cost[row, a])
                if left <= right:
                    hull.pop()
                else:
                    break
            hull.append(int(option))
        choice[row] = hull[0]
        for a, b in zip(hull, hull[1:], strict=False):
            gains.append(recall[row, b] - recall[row, a])
            works.append(max(cost[row, b] - cost[row, a], 1e-12))
            owners.append(row)
            targets.append(b)
    total = float(recall[rows, choice].sum())
    needed = goal * n_rows - RECALL_TOLERANCE
    if total >= needed:
        return float(cost[rows, choice].mean()), recall[rows, choice]
    order = np.argsort(-(np.asarray(gains) / np.asarray(works)), kind="stable")
    for step in order:
        choice[owners[step]] = targets[step]
        total += gains[step]
        if total >= needed:
            return float(cost[rows, choice].mean()), recall[rows, choice]
    return None


def room_bounds(table: EffortTable, column: int) -> dict:
    """How much work perfect knowledge would save at the uniform grid ``column``: the least
    mean work (from the table) reaching its mean recall when every query is searched at the
    grid effort it is best given (``oracle``), and when a full first stage at some grid
    effort is followed, for the queries chosen, by one search again from scratch
    (``two_stage_oracle``: the best any policy of that kind can do). Both use the ground
    truth: bounds, not policies; the p5 recall of each bound's choice is reported beside it.
    Work ratios are in the table's unit (distance computations, or effort when the engine
    cannot count)."""
    cost, recall = table.cost(), table.recall
    goal = float(recall[:, column].mean())
    base = float(cost[:, column].mean())
    oracle = least_work_for_recall(recall, cost, goal)
    two_stage: tuple[float, np.ndarray, int] | None = None
    for first in range(column + 1):
        options_recall = np.column_stack([recall[:, first], recall])
        options_cost = np.column_stack([cost[:, first], cost[:, [first]] + cost])
        found = least_work_for_recall(options_recall, options_cost, goal)
        if found is not None and (two_stage is None or found[0] < two_stage[0]):
            two_stage = (found[0], found[1], int(table.grid[first]))

    def ratio(work: float) -> float | None:
        return work / base if base else None

    return {
        "uses_ground_truth": True,
        "recall": goal,
        "oracle_work_ratio": None if oracle is None else ratio(oracle[0]),
        "oracle_p5_recall": None if oracle is None else float(np.percentile(oracle[1], 5.0)),
        "two_stage_oracle_work_ratio": None if two_stage is None else ratio(two_stage[0]),
        "two_stage_oracle_p5_recall": None
        if two_stage is None
        else float(np.percentile(two_stage[1], 5.0)),
        "two_stage_first_effort": None if two_stage is None else two_stage[2],
        "work_unit": "distance computations" if table.exact else "effort",
    }


def uniform_points(table: EffortTable, param: str, profile: QueryProfile | None) -> list[dict]:
    """The uniform frontier: every query at the same grid value, from the table."""
    points = []
    for column, value in enumerate(table.grid):
        computations = None if table.computations is None else table.computations[:, column]
        points.append(
            frontier_point(
                {param: value},
                table.recall[:, column],
                computations,
                float(table.seconds[column]),
                profile,
            )
        )
    return points
