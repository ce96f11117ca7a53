"""The learned models: LightGBM families per (first stage, label target), an effort model
(log2 of the least effort reaching the label target) and a risk model (the chance that a full
first stage's own result misses it), each with out-of-fold predictions for calibrating.
Fitted on table rows of training queries only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annkit.adaptive.features import (
    CENTROID_FEATURES,
    FIRST_STAGE_FEATURES,
    feature_names,
)
from annkit.adaptive.folds import fold_assignment
from annkit.adaptive.policy import (
    require_lightgbm,
)
from annkit.adaptive.table import RECALL_TOLERANCE, EffortTable, least_effort_index


@dataclass
class LearnedFamily:
    """LightGBM models for one (first stage, label target) on some training rows: the model
    on all of them and out-of-fold predictions (n,) for calibrating. ``model`` ``effort``:
    log2 of the least effort reaching ``label_target``; ``risk``: the probability that the
    (full) first stage's own result has recall below ``label_target``."""

    stage: str
    label_target: float
    model_text: str
    oof: np.ndarray
    model: str = "effort"
    #: calibration outcomes on training rows, computed once and shared by every goal (see
    #: annkit.adaptive.calibrate.family_outcomes); not part of the model
    outcomes: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


def _booster_params(seed: int, objective: str = "regression") -> dict:
    return {
        "objective": objective,
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
        "force_row_wise": True,
    }


def _train_text(
    features: np.ndarray, labels: np.ndarray, seed: int, rounds: int, objective: str = "regression"
) -> str:
    lightgbm = require_lightgbm()
    names = feature_names(features.shape[1] - len(FIRST_STAGE_FEATURES) - len(CENTROID_FEATURES))
    data = lightgbm.Dataset(features, label=labels, feature_name=names, free_raw_data=False)
    booster = lightgbm.train(_booster_params(seed, objective), data, num_boost_round=rounds)
    return str(booster.model_to_string())


def _predict(model_text: str, features: np.ndarray) -> np.ndarray:
    lightgbm = require_lightgbm()
    return np.asarray(lightgbm.Booster(model_str=model_text).predict(features, num_threads=1))


def _family(
    stage: str,
    label_target: float,
    model: str,
    features: np.ndarray,
    labels: np.ndarray,
    inner: np.ndarray,
    seed: int,
    rounds: int,
) -> LearnedFamily:
    """Fit one family: out-of-fold predictions over the ``inner`` folds, then all rows."""
    objective = "binary" if model == "risk" else "regression"
    oof = np.zeros(labels.size)
    for fold in np.unique(inner):
        held = inner == fold
        text = _train_text(features[~held], labels[~held], seed, rounds, objective)
        oof[held] = _predict(text, features[held])
    return LearnedFamily(
        stage,
        float(label_target),
        _train_text(features, labels, seed, rounds, objective),
        oof,
        model,
    )


def train_families(
    table: EffortTable,
    rows: np.ndarray,
    stages: Sequence[str],
    label_targets: Sequence[float],
    inner_folds: int,
    seed: int,
    rounds: int = 150,
) -> list[LearnedFamily]:
    """Train the families on the training ``rows`` only: an effort model per (first stage,
    label target) and, after each full first stage, a risk model per label target (when
    both outcomes occur on the training rows)."""
    grid = np.asarray(table.grid, dtype=np.float64)
    inner = fold_assignment(rows.size, inner_folds, seed + 1)
    families = []
    for stage in stages:
        features = table.features(stage)[rows]
        reuse = table.stages[stage].reuse
        for label_target in label_targets:
            index = least_effort_index(table.recall[rows], label_target)
            labels = np.log2(
                np.where(index < grid.size, grid[np.minimum(index, grid.size - 1)], 2.0 * grid[-1])
            )
            families.append(
                _family(stage, label_target, "effort", features, labels, inner, seed, rounds)
            )
            if reuse is None:
                continue
            missed = (table.recall[rows, reuse] < label_target - RECALL_TOLERANCE).astype(float)
            if 0 < missed.sum() < missed.size:
                families.append(
                    _family(stage, label_target, "risk", features, missed, inner, seed, rounds)
                )
    return families
