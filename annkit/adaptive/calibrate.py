"""Calibrating a learned policy on the training queries' out-of-fold predictions: the
outcome (recall, work) of every candidate calibration, the one that best meets the goal,
and how two calibrated candidates compare.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from annkit.adaptive.families import LearnedFamily
from annkit.adaptive.goal import Goal
from annkit.adaptive.search import snap_up
from annkit.adaptive.table import RECALL_TOLERANCE, EffortTable, StageData

MULTIPLIERS = 2.0 ** np.arange(-4.0, 6.0 + 1e-9, 1.0 / 16.0)


RISK_QUANTILES = np.linspace(0.0, 1.0, 101)


@dataclass
class Outcomes:
    """The (n, M) recall and work of M candidate calibrations on n training rows, with the
    per-column statistics the goal is chosen by (computed once, shared by every goal)."""

    recall: np.ndarray
    work: np.ndarray
    pairs: list[tuple[float, int]] | None = None
    mean_recall: np.ndarray = field(init=False)
    mean_cost: np.ndarray = field(init=False)
    p5: np.ndarray = field(init=False)
    at_or_below: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mean_recall = self.recall.mean(axis=0)
        self.mean_cost = self.work.mean(axis=0)
        self.p5 = np.percentile(self.recall, 5.0, axis=0)
        # among equal p5, fewer queries at or below it is closer to raising it
        self.at_or_below = (self.recall <= self.p5[None, :] + RECALL_TOLERANCE).mean(axis=0)


def _choose(
    recall: np.ndarray,
    cost: np.ndarray,
    recall_target: float | None,
    budget: float | None,
    p5_floor: float | None = None,
) -> int:
    """Column of (n, M) outcome matrices that best meets the goal (see :func:`choose`)."""
    return choose(Outcomes(recall, cost), recall_target, budget, p5_floor)


def choose(
    outcomes: Outcomes,
    recall_target: float | None,
    budget: float | None,
    p5_floor: float | None = None,
) -> int:
    """Column that best meets the goal: least mean work with mean recall >= ``recall_target``
    (and p5 recall >= ``p5_floor`` when given; failing that, the best p5 among those meeting
    the recall), or, within ``budget``, the best p5 recall, then the fewest queries at or
    below it, then the best mean recall."""
    mean_recall, mean_cost, p5 = outcomes.mean_recall, outcomes.mean_cost, outcomes.p5
    if recall_target is not None:
        ok = mean_recall >= recall_target - RECALL_TOLERANCE
        if not ok.any():
            return int(np.argmax(mean_recall))
        if p5_floor is not None:
            candidates = np.flatnonzero(ok)
            meets = p5[candidates] >= p5_floor - RECALL_TOLERANCE
            if not meets.any():
                order = np.lexsort((mean_cost[candidates], -p5[candidates]))
                return int(candidates[order[0]])
            ok = np.zeros_like(ok)
            ok[candidates[meets]] = True
        return int(np.flatnonzero(ok)[np.argmin(mean_cost[ok])])
    assert budget is not None
    ok = mean_cost <= budget
    if not ok.any():
        return int(np.argmin(mean_cost))
    candidates = np.flatnonzero(ok)
    order = np.lexsort(
        (-mean_recall[candidates], outcomes.at_or_below[candidates], -p5[candidates])
    )
    return int(candidates[order[0]])


def _outcome(
    table: EffortTable,
    cost: np.ndarray,
    rows: np.ndarray,
    stage: StageData,
    final_index: np.ndarray,
    feature_cost: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and work (n, M) of rows after ``stage`` and a search at ``final_index``
    (n, M); a full first stage's result stands when the final index is not larger."""
    recall_rows, cost_rows = table.recall[rows], cost[rows]
    stage_cost = stage.cost[rows][:, None]
    if stage.reuse is None:
        recall = np.take_along_axis(recall_rows, final_index, axis=1)
        return recall, feature_cost + stage_cost + np.take_along_axis(
            cost_rows, final_index, axis=1
        )
    effective = np.maximum(final_index, stage.reuse)
    recall = np.take_along_axis(recall_rows, effective, axis=1)
    second = np.where(
        final_index > stage.reuse, np.take_along_axis(cost_rows, final_index, axis=1), 0.0
    )
    return recall, feature_cost + stage_cost + second


def _risk_outcomes(
    table: EffortTable,
    cost: np.ndarray,
    rows: np.ndarray,
    stage: StageData,
    family: LearnedFamily,
    feature_cost: float,
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, int]]]:
    """Recall and work (n, M) of the risk rule over M (threshold, hard index) pairs: queries
    whose out-of-fold risk exceeds the threshold are searched again at the hard effort."""
    assert stage.reuse is not None
    thresholds = np.unique(np.quantile(family.oof, RISK_QUANTILES))
    hard_indices = np.arange(stage.reuse + 1, len(table.grid))
    recall_rows, cost_rows = table.recall[rows], cost[rows]
    base_recall = recall_rows[:, stage.reuse][:, None]
    base_work = feature_cost + stage.cost[rows][:, None]
    risky = family.oof[:, None] > thresholds[None, :]  # (n, T)
    recalls, works, pairs = [], [], []
    for hard in hard_indices:
        recalls.append(np.where(risky, recall_rows[:, [hard]], base_recall))
        works.append(base_work + np.where(risky, cost_rows[:, [hard]], 0.0))
        pairs += [(float(t), int(hard)) for t in thresholds]
    if not pairs:
        return base_recall, base_work, [(float(np.max(family.oof)), int(stage.reuse))]
    return np.hstack(recalls), np.hstack(works), pairs


def family_outcomes(
    table: EffortTable,
    cost: np.ndarray,
    rows: np.ndarray,
    family: LearnedFamily,
    feature_cost: float,
) -> Outcomes:
    """Every candidate calibration's outcome for ``family`` on the training ``rows``: the
    same for every goal, so it is computed once per (family, rows) and kept on the family."""
    key = (hashlib.blake2b(np.ascontiguousarray(rows).tobytes()).hexdigest(), feature_cost)
    cached = family.outcomes.get(key)
    if cached is not None:
        return cached
    stage = table.stages[family.stage]
    if family.model == "risk":
        recall, work, pairs = _risk_outcomes(table, cost, rows, stage, family, feature_cost)
        outcomes = Outcomes(recall, work, pairs)
    else:
        final = snap_up(np.exp2(family.oof)[:, None] * MULTIPLIERS[None, :], table.grid)
        outcomes = Outcomes(*_outcome(table, cost, rows, stage, final, feature_cost))
    family.outcomes[key] = outcomes
    return outcomes


def calibrate_learned(
    table: EffortTable, rows: np.ndarray, families: list[LearnedFamily], goal: Goal
) -> tuple[LearnedFamily, dict, dict]:
    """The family and calibration whose out-of-fold predictions on the training ``rows``
    best meet ``goal``: an effort model's multiplier (1/16 .. 64 in 2^(1/16) steps) or a
    risk model's threshold (a percentile of its predictions) and hard effort. Returns
    (family, calibration, training stats)."""
    recall_target, budget = goal.resolve(table, rows)
    p5_floor = goal.p5_floor(table, rows)
    cost = table.cost()
    # centroid distances are distance computations; without counts the work is in effort
    # units, where they have no exact equivalent, so they are left out of the fitting
    feature_cost = float(table.n_centroids) if table.exact else 0.0
    best: tuple[LearnedFamily, dict, dict] | None = None
    for family in families:
        outcomes = family_outcomes(table, cost, rows, family, feature_cost)
        recall, work = outcomes.recall, outcomes.work
        column = choose(outcomes, recall_target, budget, p5_floor)
        if family.model == "risk":
            assert outcomes.pairs is not None
            threshold, hard = outcomes.pairs[column]
            calibration = {
                "model": "risk",
                "threshold": threshold,
                "hard": int(table.grid[hard]),
                "label_target": family.label_target,
            }
        else:
            calibration = {
                "model": "effort",
                "multiplier": float(MULTIPLIERS[column]),
                "label_target": family.label_target,
            }
        p5 = float(outcomes.p5[column])
        stats = {
            "train_recall": float(recall[:, column].mean()),
            "train_p5_recall": p5,
            "train_share_at_or_below_p5": float(
                np.mean(recall[:, column] <= p5 + RECALL_TOLERANCE)
            ),
            "train_work": float(work[:, column].mean()),
            "recall_goal": recall_target,
            "work_budget": budget,
            "p5_floor": p5_floor,
        }
        if best is None or better_calibration(stats, best[2], recall_target, budget):
            best = (family, calibration, stats)
    assert best is not None
    return best


def _meets(stats: dict, recall_target: float) -> bool:
    """Training stats meet a recall goal (and its p5 floor, when it has one)."""
    floor = stats.get("p5_floor")
    return bool(
        stats["train_recall"] >= recall_target - RECALL_TOLERANCE
        and (floor is None or stats["train_p5_recall"] >= floor - RECALL_TOLERANCE)
    )


def better_calibration(
    new: dict, old: dict, recall_target: float | None, budget: float | None = None
) -> bool:
    """Compare calibrated candidates: meet the goal first (recall >= target, or work <=
    budget); then less work (recall goal) or better p5, fewer queries at or below it and
    better recall (budget goal); a candidate missing the goal loses to one meeting it and,
    between two missing it, the closer one wins."""
    if recall_target is not None:
        new_ok = _meets(new, recall_target)
        old_ok = _meets(old, recall_target)
        if new_ok != old_ok:
            return new_ok
        if not new_ok:

            def closeness(stats: dict) -> tuple:
                p5 = float(np.nan_to_num(stats["train_p5_recall"], nan=0.0))
                return (
                    stats["train_recall"] >= recall_target - RECALL_TOLERANCE,
                    p5,
                    stats["train_recall"],
                )

            return bool(closeness(new) > closeness(old))
        return bool(new["train_work"] < old["train_work"])
    assert budget is not None
    new_ok, old_ok = new["train_work"] <= budget, old["train_work"] <= budget
    if new_ok != old_ok:
        return bool(new_ok)
    if not new_ok:
        return bool(new["train_work"] < old["train_work"])
    return bool(
        (new["train_p5_recall"], -new["train_share_at_or_below_p5"], new["train_recall"])
        > (old["train_p5_recall"], -old["train_share_at_or_below_p5"], old["train_recall"])
    )
