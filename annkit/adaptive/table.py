"""The effort table: every query searched at every value of the effort grid (one timed
batch per value), its recall@k and distance computations, and the candidate first stages
(full searches at some grid values, a probe, none) with their features and work. Without
exact counts (hnswlib, annoy) the effort value itself stands for the cost of a search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from annkit.adaptive.features import (
    centroid_features,
    first_stage_features,
    no_first_stage,
)
from annkit.adaptive.policy import (
    FirstStage,
)
from annkit.adaptive.search import effort_param_of
from annkit.engines.base import Engine
from annkit.metrics import exact_distances, recall_per_query

RECALL_TOLERANCE = 1e-9


@dataclass
class StageData:
    """One candidate first stage measured on every query: its features (nq, F1), its work
    (nq,) (distance computations, or effort units when not counted) and, for a full first
    stage, the grid index whose result it is (``reuse``; None for a probe or no stage)."""

    stage: FirstStage
    features: np.ndarray
    cost: np.ndarray
    reuse: int | None


@dataclass
class EffortTable:
    """Per query (nq) and grid value (G): recall (nq, G), distance computations (nq, G)
    int64 or None, the batch search seconds per grid value (G,), the candidate first stages
    and the centroid features (nq, 3 + m) of m centroids."""

    grid: list[int]
    recall: np.ndarray
    computations: np.ndarray | None
    seconds: np.ndarray
    stages: dict[str, StageData]
    centroid_features: np.ndarray
    n_centroids: int

    @property
    def exact(self) -> bool:
        return self.computations is not None

    def cost(self) -> np.ndarray:
        """(nq, G) float64: distance computations, or the effort value when not counted."""
        if self.computations is not None:
            return self.computations.astype(np.float64)
        return np.broadcast_to(np.asarray(self.grid, dtype=np.float64), self.recall.shape).copy()

    def features(self, stage: str) -> np.ndarray:
        return np.hstack([self.stages[stage].features, self.centroid_features])


def per_query_recall(
    base: np.ndarray, queries: np.ndarray, metric: str, truth: np.ndarray, ids: np.ndarray, k: int
) -> np.ndarray:
    """recall@k (nq,) of found ``ids`` against exact distances ``truth`` (nq, >=k)."""
    found = exact_distances(base, queries, ids, metric)
    return recall_per_query(truth, ids, found, k)


def stage_key(stage: FirstStage) -> str:
    return stage.kind if stage.kind != "full" else f"full@{stage.effort}"


def measure_table(
    engine: Engine,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    truth: np.ndarray,
    k: int,
    grid: Sequence[int],
    first_indices: Sequence[int],
    centroids: np.ndarray,
    probe: FirstStage | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EffortTable:
    """Search all ``queries`` at every grid value (one timed batch each) and record each
    query's recall and distance computations; candidate first stages: full searches at the
    grid indices ``first_indices``, the ``probe`` (when given) and none."""
    param = effort_param_of(engine)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_queries, size = int(queries.shape[0]), len(grid)
    recall = np.zeros((n_queries, size))
    counts: np.ndarray | None = np.zeros((n_queries, size), dtype=np.int64)
    seconds = np.zeros(size)
    full_features: dict[int, np.ndarray] = {}
    probe_result = None
    saved = dict(engine.query)
    try:
        for column, value in enumerate(grid):
            engine.set_query_params(**{param: int(value)})
            with engine.uncounted():
                start = time.perf_counter()
                result = engine.search(queries, k)
                seconds[column] = time.perf_counter() - start
            recall[:, column] = per_query_recall(base, queries, metric, truth, result.ids, k)
            column_counts = engine.count_distances(queries, k)
            if column_counts is None:
                counts = None
            elif counts is not None:
                counts[:, column] = column_counts
            if column in first_indices:
                full_features[column] = first_stage_features(result)
            if progress is not None:
                progress(column + 1, size)
        if probe is not None:
            engine.set_query_params(**{param: int(probe.effort)})
            probe_result = engine.search(queries, probe.k)
    finally:
        engine.set_query_params(**saved)
    cost = (
        counts.astype(np.float64)
        if counts is not None
        else np.broadcast_to(np.asarray(grid, dtype=np.float64), recall.shape)
    )
    stages: dict[str, StageData] = {
        "none": StageData(FirstStage("none"), no_first_stage(n_queries), np.zeros(n_queries), None)
    }
    for column, features in full_features.items():
        stage = FirstStage("full", int(grid[column]), k)
        stages[stage_key(stage)] = StageData(stage, features, cost[:, column].copy(), column)
    if probe is not None and probe_result is not None:
        probe_cost = (
            np.full(n_queries, float(probe.effort))
            if probe_result.distance_computations is None or counts is None
            else probe_result.distance_computations.astype(np.float64)
        )
        stages["probe"] = StageData(probe, first_stage_features(probe_result), probe_cost, None)
    return EffortTable(
        grid=[int(v) for v in grid],
        recall=recall,
        computations=counts,
        seconds=seconds,
        stages=stages,
        centroid_features=centroid_features(queries, centroids, metric),
        n_centroids=int(centroids.shape[0]),
    )


def least_effort_index(recall: np.ndarray, target: float) -> np.ndarray:
    """Per row of ``recall`` (n, G): the first grid index reaching ``target`` (G = never),
    the same definition as ``annkit effort``'s minimum effort on a full scan."""
    meets = recall >= target - RECALL_TOLERANCE
    return np.where(meets.any(axis=1), np.argmax(meets, axis=1), recall.shape[1])
