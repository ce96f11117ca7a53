"""Training one per-query effort policy: the settings (:class:`AdaptConfig`), the coarse
centroids, and a learned or threshold policy fitted on the effort table rows of training
queries only (models in :mod:`~annkit.adaptive.families`, calibration in
:mod:`~annkit.adaptive.calibrate`, the rule in :mod:`~annkit.adaptive.threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annkit.adaptive.calibrate import calibrate_learned
from annkit.adaptive.families import LearnedFamily, train_families
from annkit.adaptive.features import (
    CENTROID_FEATURES,
    coarse_centroids,
)
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import (
    Policy,
    index_identity,
)
from annkit.adaptive.table import EffortTable
from annkit.adaptive.threshold import fit_threshold


@dataclass
class AdaptConfig:
    """Settings of policy training (all seeded): cross-fitting (and inner calibration)
    ``folds``; ``n_centroids`` coarse centroids (one distance each per query); per-query
    recall ``label_targets`` the learned models predict the least effort for; candidate
    first stages (full searches at grid indices ``first_indices``, a ``probe_k`` probe, none)
    among ``stages``; LightGBM ``rounds``; policy ``kinds`` (the first one is saved)."""

    k: int = 10
    folds: int = 5
    seed: int = 0
    n_centroids: int = 32
    label_targets: tuple[float, ...] = (0.8, 0.9, 1.0)
    first_indices: tuple[int, ...] = (0, 2, 4, 6, 8)
    probe_k: int = 1
    stages: tuple[str, ...] = ("full", "probe", "none")
    rounds: int = 150
    kinds: tuple[str, ...] = ("learned", "threshold")


def make_policy(
    kind: str,
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    config: AdaptConfig,
    manifest: dict,
    param: str,
    centroids: np.ndarray,
    families: list[LearnedFamily] | None = None,
) -> Policy:
    """Fit one policy of ``kind`` on the training ``rows`` of ``table`` for ``goal``."""
    training = {"queries": int(rows.size), "goal": goal.label()}
    if kind == "learned":
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
        family, learned, stats = calibrate_learned(table, rows, families, goal)
        return Policy(
            kind="learned",
            index=index_identity(manifest),
            param=param,
            grid=list(table.grid),
            k=config.k,
            stage=table.stages[family.stage].stage,
            calibration=learned,
            centroids=centroids,
            seed=config.seed,
            target=goal.value,
            model_text=family.model_text,
            training={**training, **stats},
        )
    stage, calibration, stats = fit_threshold(table, rows, goal)
    uses_centroids = calibration["feature"] in CENTROID_FEATURES
    return Policy(
        kind="threshold",
        index=index_identity(manifest),
        param=param,
        grid=list(table.grid),
        k=config.k,
        stage=stage,
        calibration=calibration,
        centroids=centroids if uses_centroids else centroids[:0],
        seed=config.seed,
        target=goal.value,
        training={**training, **stats},
    )


def default_centroids(base: np.ndarray, metric: str, config: AdaptConfig) -> np.ndarray:
    """The policy's coarse centroids (seeded k-means of a base sample)."""
    return coarse_centroids(base, metric, config.n_centroids, config.seed)
