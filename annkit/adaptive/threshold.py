"""The simple rule: after a full first stage, one first-stage feature above (or below) a
threshold picks the hard effort, else the easy one; everything fitted on the training rows.
"""

from __future__ import annotations

import numpy as np

from annkit.adaptive.calibrate import better_calibration
from annkit.adaptive.features import (
    FIRST_STAGE_FEATURES,
)
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import (
    FirstStage,
)
from annkit.adaptive.table import RECALL_TOLERANCE, EffortTable

THRESHOLD_FEATURES = ("dk_over_d1", "dk", "d1", "lid_first", "spread")


THRESHOLD_QUANTILES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def fit_threshold(
    table: EffortTable, rows: np.ndarray, goal: Goal
) -> tuple[FirstStage, dict, dict]:
    """The simple rule: one first-stage feature above (or below) a threshold (a quantile of
    its training values) picks the hard effort, else the easy one; feature, direction,
    threshold and both efforts chosen on the training ``rows`` for ``goal`` (mean recall
    for budget goals), after a full first stage. Returns (first stage, calibration,
    training stats)."""
    recall_target, budget = goal.resolve(table, rows)
    cost = table.cost()[rows]
    size = len(table.grid)
    best: tuple[FirstStage, dict, dict] | None = None
    columns = np.arange(size)
    for data in table.stages.values():
        if data.reuse is None:
            continue
        first_index = data.reuse
        effective = np.maximum(columns, first_index)
        recall_matrix = table.recall[rows][:, effective]
        work_matrix = cost[:, [first_index]] + np.where(columns > first_index, cost, 0.0)
        features = data.features
        for name in THRESHOLD_FEATURES:
            values = features[rows, FIRST_STAGE_FEATURES.index(name)]
            if np.isnan(values).all():
                continue
            for quantile in THRESHOLD_QUANTILES:
                threshold = float(np.nanquantile(values, quantile))
                for harder_above in (True, False):
                    hard = (values > threshold) if harder_above else (values < threshold)
                    hard |= np.isnan(values)
                    n = rows.size
                    mean_recall = (
                        recall_matrix[~hard].sum(axis=0)[:, None]
                        + recall_matrix[hard].sum(axis=0)[None, :]
                    ) / n
                    mean_work = (
                        work_matrix[~hard].sum(axis=0)[:, None]
                        + work_matrix[hard].sum(axis=0)[None, :]
                    ) / n
                    easy, hard_index = _choose_pair(
                        mean_recall, mean_work, first_index, recall_target, budget
                    )
                    stats = {
                        "train_recall": float(mean_recall[easy, hard_index]),
                        "train_work": float(mean_work[easy, hard_index]),
                        "train_p5_recall": float("nan"),
                        "recall_goal": recall_target,
                        "work_budget": budget,
                    }
                    calibration = {
                        "feature": name,
                        "threshold": threshold,
                        "quantile": quantile,
                        "harder_above": harder_above,
                        "easy": table.grid[max(easy, first_index)],
                        "hard": table.grid[max(hard_index, first_index)],
                    }
                    candidate = (data.stage, calibration, stats)
                    if best is None or _better_threshold(stats, best[2], recall_target, budget):
                        best = candidate
    assert best is not None
    return best


def _choose_pair(
    mean_recall: np.ndarray,
    mean_work: np.ndarray,
    first_index: int,
    recall_target: float | None,
    budget: float | None,
) -> tuple[int, int]:
    """(easy, hard) grid indices with easy <= hard, both >= first_index, best for the goal."""
    size = mean_recall.shape[0]
    easy_index, hard_index = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    valid = (easy_index >= first_index) & (hard_index >= easy_index)
    if recall_target is not None:
        ok = valid & (mean_recall >= recall_target - RECALL_TOLERANCE)
        if ok.any():
            flat = np.where(ok, mean_work, np.inf)
        else:
            flat = np.where(valid, -mean_recall, np.inf)
    else:
        assert budget is not None
        ok = valid & (mean_work <= budget)
        flat = (
            np.where(ok, -mean_recall, np.inf) if ok.any() else np.where(valid, mean_work, np.inf)
        )
    position = int(np.argmin(flat))
    return position // size, position % size


def _better_threshold(
    new: dict, old: dict, recall_target: float | None, budget: float | None
) -> bool:
    """As :func:`~annkit.adaptive.calibrate.better_calibration`; within a budget the better
    mean recall wins."""
    if recall_target is not None:
        return better_calibration(new, old, recall_target)
    assert budget is not None
    new_ok, old_ok = new["train_work"] <= budget, old["train_work"] <= budget
    if new_ok != old_ok:
        return bool(new_ok)
    if not new_ok:
        return bool(new["train_work"] < old["train_work"])
    return bool(new["train_recall"] > old["train_recall"])
