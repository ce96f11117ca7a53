"""Ada-ef's idea: a query's effort from where its first results sit in the distribution of
its distances to the whole base (Zhang & Miller, SIGMOD'26), built on annkit's own
resumable search.

In high dimension the distances from one query to all base vectors are close to Gaussian,
and that Gaussian's mean and variance follow from the base's mean and covariance alone. A
query whose first-stage neighbours lie far out in the lower tail (a large z-score) is well
separated and needs little effort; one whose neighbours sit near the bulk is hard.

- **Offline** (the base only, never the queries that score it): the mean and covariance of
  a seeded base sample, in the form each metric's distance is linear in (angular: the
  unit vectors; ip: the vectors; euclidean: the vectors and their squared norms, so the
  squared distance is linear). The covariance is kept as its ``RANK`` leading directions
  plus the mean variance of the rest, so a query's variance costs ``RANK`` + 1 dot
  products, counted as that many distance computations.
- **Per query**: a first stage at a grid effort (a full search, then resumed), its k-th
  distance's z-score, a score bin (quantile edges of the training queries' scores), and
  the bin's effort.
- **Calibration**: for a per-bin recall target t, each bin gets the least grid effort at
  which its training queries reach mean recall t (Ada-ef's per-score table); the (first
  stage, t) pair that best meets the goal on the training queries is kept, by the chooser
  every kind uses. A query resumed from the first stage to its bin's effort costs exactly
  one search at that effort, which is what the training outcomes count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from annkit.adaptive.calibrate import Outcomes, choose
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import AdaptiveResult, FirstStage, Policy, index_identity
from annkit.adaptive.table import EffortTable
from annkit.engines.base import Engine
from annkit.engines.hnsw_kernel import require_kernel

#: leading covariance directions kept (each costs one dot product per query)
RANK = 16
#: score bins (quantiles of the training queries' scores)
BINS = 8
#: base vectors sampled for the mean and covariance
SAMPLE = 20_000
#: per-bin recall targets tried in calibration
BIN_TARGETS = np.unique(np.concatenate([np.linspace(0.5, 0.9, 9), np.linspace(0.9, 1.0, 51)]))
#: the score of a query whose first stage found fewer than k results (the hardest bin)
LOWEST_SCORE = 1e9
#: the k-th distance's column in the first-stage features (see features.FIRST_STAGE_FEATURES)
DK_COLUMN = 1


@dataclass(frozen=True)
class DistanceModel:
    """The Gaussian of one query's distances to the base: distance = c(q) + a(q) . y(x),
    with y(x) in R^(d+1); ``mean`` of y, the ``RANK`` leading ``axes`` of its covariance
    with their ``variances``, and the mean variance of the other directions."""

    metric: str
    mean: np.ndarray
    axes: np.ndarray
    variances: np.ndarray
    residual: float

    @property
    def cost(self) -> int:
        """Dot products per query (the mean and each axis), counted as distance computations."""
        return 1 + int(self.axes.shape[0])

    @classmethod
    def fit(cls, base: np.ndarray, metric: str, seed: int = 0, rank: int = RANK) -> DistanceModel:
        """The model of a seeded sample of ``base`` (at most ``SAMPLE`` rows)."""
        n_base = int(base.shape[0])
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n_base, size=min(SAMPLE, n_base), replace=False))
        lifted = _lift_base(np.asarray(base[rows], dtype=np.float64), metric)
        mean = lifted.mean(axis=0)
        centred = lifted - mean
        covariance = centred.T @ centred / max(1, lifted.shape[0] - 1)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1]
        values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
        rank = min(rank, values.size)
        rest = values[rank:]
        return cls(
            metric=metric,
            mean=mean,
            axes=vectors[:, :rank].T.copy(),
            variances=values[:rank].copy(),
            residual=float(rest.mean()) if rest.size else 0.0,
        )

    def moments(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per query (nq,): the mean and standard deviation of its distances to the base,
        in the model's convention (squared L2 for euclidean, else the metric's)."""
        offset, weights = _lift_query(np.asarray(queries, dtype=np.float64), self.metric)
        mean = offset + weights @ self.mean
        along = weights @ self.axes.T
        rest = np.maximum((weights * weights).sum(axis=1) - (along * along).sum(axis=1), 0.0)
        variance = (along * along) @ self.variances + self.residual * rest
        return mean, np.sqrt(np.maximum(variance, 1e-30))

    def scores(self, queries: np.ndarray, kth: np.ndarray) -> np.ndarray:
        """z-score (nq,) of each query's k-th found distance (the metric's convention) in
        its distance Gaussian: how far below the bulk its neighbours sit."""
        mean, std = self.moments(queries)
        found = np.asarray(kth, dtype=np.float64)
        if self.metric == "euclidean":
            found = found * found
        # a query with fewer than k results found is as hard as a score can say
        return np.where(np.isfinite(found), (mean - found) / std, -LOWEST_SCORE)

    def to_dict(self) -> dict:
        return {
            "mean": [float(x) for x in self.mean],
            "axes": [[float(x) for x in row] for row in self.axes],
            "variances": [float(x) for x in self.variances],
            "residual": float(self.residual),
        }

    @classmethod
    def from_dict(cls, data: dict, metric: str, dim: int) -> DistanceModel:
        """The model saved by :meth:`to_dict`; ValueError when its shapes do not fit ``dim``."""
        mean = np.asarray(data["mean"], dtype=np.float64)
        axes = np.asarray(data["axes"], dtype=np.float64)
        variances = np.asarray(data["variances"], dtype=np.float64)
        residual = float(data["residual"])
        if (
            mean.shape != (dim + 1,)
            or axes.ndim != 2
            or axes.shape[1] != dim + 1
            or variances.shape != (axes.shape[0],)
            or not (np.isfinite(mean).all() and np.isfinite(axes).all())
            or not (np.isfinite(variances).all() and np.all(variances >= 0))
            or not (np.isfinite(residual) and residual >= 0)
        ):
            raise ValueError("distance model shapes or values")
        return cls(metric, mean, axes, variances, residual)


def _lift_base(vectors: np.ndarray, metric: str) -> np.ndarray:
    """y(x) (n, d+1): the coordinates each metric's distance is linear in."""
    if metric == "angular":
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    extra = (vectors * vectors).sum(axis=1) if metric == "euclidean" else np.zeros(len(vectors))
    return np.column_stack([vectors, extra])


def _lift_query(queries: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(c(q) (nq,), a(q) (nq, d+1)) with distance(q, x) = c(q) + a(q) . y(x)."""
    n_queries = int(queries.shape[0])
    if metric == "euclidean":
        weights = np.column_stack([-2.0 * queries, np.ones(n_queries)])
        return (queries * queries).sum(axis=1), weights
    if metric == "angular":
        unit = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        return np.ones(n_queries), np.column_stack([-unit, np.zeros(n_queries)])
    return np.zeros(n_queries), np.column_stack([-queries, np.zeros(n_queries)])


@dataclass
class AdaEfData:
    """What the kind is fitted on beyond the effort table: the distance model (of the base)
    and the training queries' moments under it."""

    model: DistanceModel
    queries: np.ndarray


def ada_ef_data(base: np.ndarray, queries: np.ndarray, metric: str, seed: int) -> AdaEfData:
    return AdaEfData(DistanceModel.fit(base, metric, seed), np.asarray(queries, dtype=np.float32))


def bin_efforts(
    score_bins: np.ndarray, recall: np.ndarray, first: int, target: float, bins: int
) -> np.ndarray:
    """Per bin: the least grid index >= ``first`` at which the bin's rows reach mean recall
    ``target`` (the last index when none does; ``first`` for an empty bin)."""
    size = recall.shape[1]
    chosen = np.full(bins, first, dtype=np.int64)
    for b in range(bins):
        rows = score_bins == b
        if not rows.any():
            continue
        means = recall[rows, first:].mean(axis=0)
        meets = np.flatnonzero(means >= target - 1e-9)
        chosen[b] = first + (int(meets[0]) if meets.size else size - 1 - first)
    return chosen


def fit_ada_ef(
    data: AdaEfData,
    table: EffortTable,
    rows: np.ndarray,
    goal: Goal,
    manifest: dict,
    param: str,
    k: int,
    dim: int,
    seed: int = 0,
) -> Policy:
    """The (first stage, per-bin target) pair best meeting ``goal`` on the training
    ``rows``; bins are quantiles of those rows' scores."""
    if table.computations is None:
        raise ValueError("ada-ef needs exact distance counts")
    recall_target, budget = goal.resolve(table, rows)
    p5_floor = goal.p5_floor(table, rows)
    work = table.computations[rows].astype(np.float64) + data.model.cost
    recall = table.recall[rows]
    candidates: list[tuple[int, list[float], np.ndarray]] = []
    columns_recall, columns_work = [], []
    for stage in table.stages.values():
        if stage.reuse is None:
            continue
        scores = data.model.scores(data.queries[rows], stage.features[rows, DK_COLUMN])
        edges = np.unique(np.quantile(scores, np.linspace(0, 1, BINS + 1)[1:-1]))
        score_bins = np.searchsorted(edges, scores, side="right")
        for target in BIN_TARGETS:
            efforts = bin_efforts(score_bins, recall, stage.reuse, float(target), edges.size + 1)
            final = efforts[score_bins]
            columns_recall.append(recall[np.arange(rows.size), final])
            columns_work.append(work[np.arange(rows.size), final])
            candidates.append((stage.reuse, [float(e) for e in edges], efforts))
    if not candidates:
        raise ValueError("ada-ef needs a full first stage in the table")
    outcomes = Outcomes(np.column_stack(columns_recall), np.column_stack(columns_work))
    column = choose(outcomes, recall_target, budget, p5_floor)
    first, chosen_edges, chosen_efforts = candidates[column]
    return Policy(
        kind="ada-ef",
        index=index_identity(manifest),
        param=param,
        grid=list(table.grid),
        k=k,
        stage=FirstStage("full", int(table.grid[first]), k),
        calibration={
            "edges": chosen_edges,
            "efforts": [int(table.grid[i]) for i in chosen_efforts],
            "distribution": data.model.to_dict(),
        },
        centroids=np.zeros((0, dim), dtype=np.float32),
        seed=seed,
        target=goal.value,
        training={
            "queries": int(rows.size),
            "goal": goal.label(),
            "bin_target": float(BIN_TARGETS[column % BIN_TARGETS.size]),
            "train_recall": float(outcomes.mean_recall[column]),
            "train_p5_recall": float(outcomes.p5[column]),
            "train_work": float(outcomes.mean_cost[column]),
            "recall_goal": recall_target,
            "work_budget": budget,
        },
    )


def check_ada_ef(policy: Policy) -> str | None:
    """Why an ada-ef policy's calibration cannot be used (None when it can)."""
    calibration = policy.calibration
    edges, efforts = calibration.get("edges"), calibration.get("efforts")
    if policy.stage.kind != "full":
        return "an ada-ef policy needs a full first stage"
    if not isinstance(edges, list) or not isinstance(efforts, list):
        return "an ada-ef policy needs score edges and per-bin efforts"
    if len(efforts) != len(edges) + 1 or any(e not in policy.grid for e in efforts):
        return "an ada-ef policy needs one grid effort per score bin"
    if any(not isinstance(e, (int, float)) or not np.isfinite(e) for e in edges) or any(
        b < a for a, b in zip(edges, edges[1:], strict=False)
    ):
        return "an ada-ef policy's score edges must be finite and increasing"
    if any(e < policy.stage.effort for e in efforts):
        return "an ada-ef policy's efforts must not be below its first stage"
    try:
        DistanceModel.from_dict(
            calibration.get("distribution", {}), "euclidean", int(policy.index["dim"])
        )
    except (KeyError, TypeError, ValueError):
        return "an ada-ef policy's distance model does not fit the index's dimension"
    return None


def ada_ef_search(engine: Engine, policy: Policy, queries: np.ndarray, k: int) -> AdaptiveResult:
    """Search ``queries`` with an ada-ef policy in annkit's own graph search: the first
    stage, each query's score and bin, then the queries whose bin asks for more resumed."""
    kernel = require_kernel(engine, "policy kind 'ada-ef'")
    model = DistanceModel.from_dict(
        policy.calibration["distribution"], engine.metric, int(policy.index["dim"])
    )
    edges = np.asarray(policy.calibration["edges"], dtype=np.float64)
    bin_effort = np.asarray(policy.calibration["efforts"], dtype=np.int64)
    first_effort = int(policy.stage.effort)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    start = time.perf_counter()
    state = kernel.start(queries, k, max(first_effort, int(bin_effort.max())))
    kernel.advance(state, first_effort)
    first = kernel.result(state)
    kth = first.distances.max(axis=1)  # +inf where fewer than k were found
    scores = model.scores(queries, kth)
    efforts = bin_effort[np.searchsorted(edges, scores, side="right")]
    rows = np.flatnonzero(efforts > first_effort)
    if rows.size:
        kernel.advance(state, efforts[rows], rows=rows)
    found = kernel.result(state)
    seconds = time.perf_counter() - start
    return AdaptiveResult.resumed(first, found, efforts, first_effort, model.cost, seconds)
