"""Training and scoring per-query effort policies.

The effort table holds, for every query and every value of the effort grid, the query's
recall@k and distance computations (one batched search per grid value). Labels (the least
grid effort reaching a per-query recall), calibration and the threshold rule are fitted on
table rows of training queries only; scoring runs the real adaptive search on queries the
policy never saw. Without exact counts (hnswlib, annoy) the fitting uses the effort value
itself as the cost of a search, and reported distance computations are None.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from annkit.adaptive.features import (
    CENTROID_FEATURES,
    FIRST_STAGE_FEATURES,
    centroid_features,
    coarse_centroids,
    feature_names,
    first_stage_features,
    no_first_stage,
)
from annkit.adaptive.policy import (
    FirstStage,
    Policy,
    adaptive_search,
    index_identity,
    require_lightgbm,
)
from annkit.adaptive.search import effort_param_of, search_with_efforts, snap_up
from annkit.engines.base import Engine
from annkit.errors import InputError
from annkit.metrics import exact_distances, recall_per_query
from annkit.slices import QueryProfile, summarize

RECALL_TOLERANCE = 1e-9
#: "equal work" as the comparisons define it: a work-matched policy may use 2% more
EQUAL_WORK = 0.02
MULTIPLIERS = 2.0 ** np.arange(-4.0, 6.0 + 1e-9, 1.0 / 16.0)
THRESHOLD_FEATURES = ("dk_over_d1", "dk", "d1", "lid_first", "spread")
THRESHOLD_QUANTILES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
MIN_QUERIES_PER_FOLD = 20
ORACLE_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


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


def fold_assignment(n_queries: int, folds: int, seed: int) -> np.ndarray:
    """Fold number (n,) of each query: a seeded permutation dealt round-robin."""
    order = np.random.default_rng(seed).permutation(n_queries)
    assignment = np.empty(n_queries, dtype=np.int64)
    assignment[order] = np.arange(n_queries) % folds
    return assignment


def check_query_count(n_queries: int, folds: int) -> None:
    """InputError saying how many queries ``folds`` folds need."""
    needed = folds * MIN_QUERIES_PER_FOLD
    if n_queries < needed:
        raise InputError(
            f"adapt needs at least {needed} training queries for {folds} folds "
            f"({MIN_QUERIES_PER_FOLD} per fold), got {n_queries}; give more queries, fewer "
            "--folds, or --train-queries FILE"
        )


@dataclass(frozen=True)
class Goal:
    """What calibration aims at on the training queries: ``recall`` (least mean work with
    mean recall >= value), ``budget`` (best p5 then mean recall with mean work <= value),
    or, measured on the training queries for uniform effort at the grid value ``value``:
    ``uniform-recall`` (its mean recall and, for learned policies, its p5 recall) or
    ``uniform-budget`` (its mean work, within EQUAL_WORK like the comparisons)."""

    kind: str
    value: float

    def resolve(self, table: EffortTable, rows: np.ndarray) -> tuple[float | None, float | None]:
        """(recall target, work budget) on the training ``rows``; one of them is None."""
        if self.kind == "recall":
            return self.value, None
        if self.kind == "budget":
            return None, self.value
        column = table.grid.index(int(self.value))
        if self.kind == "uniform-recall":
            return float(table.recall[rows, column].mean()), None
        return None, float(table.cost()[rows, column].mean()) * (1.0 + EQUAL_WORK)

    def p5_floor(self, table: EffortTable, rows: np.ndarray) -> float | None:
        """``uniform-recall``: the uniform setting's p5 recall on the training ``rows``."""
        if self.kind != "uniform-recall":
            return None
        column = table.grid.index(int(self.value))
        return float(np.percentile(table.recall[rows, column], 5.0))

    def label(self) -> str:
        if self.kind in ("recall", "budget"):
            return f"{self.kind} {self.value:g}"
        return f"{self.kind} at {int(self.value)}"


def _choose(
    recall: np.ndarray,
    cost: np.ndarray,
    recall_target: float | None,
    budget: float | None,
    p5_floor: float | None = None,
) -> int:
    """Column of (n, M) outcome matrices that best meets the goal: least mean work with
    mean recall >= ``recall_target`` (and p5 recall >= ``p5_floor`` when given; failing
    that, the best p5 among those meeting the recall), or, within ``budget``, the best p5
    recall, then the fewest queries at or below it, then the best mean recall."""
    mean_recall, mean_cost = recall.mean(axis=0), cost.mean(axis=0)
    if recall_target is not None:
        ok = mean_recall >= recall_target - RECALL_TOLERANCE
        if not ok.any():
            return int(np.argmax(mean_recall))
        if p5_floor is not None:
            candidates = np.flatnonzero(ok)
            p5 = np.percentile(recall[:, candidates], 5.0, axis=0)
            meets = p5 >= p5_floor - RECALL_TOLERANCE
            if not meets.any():
                order = np.lexsort((mean_cost[candidates], -p5))
                return int(candidates[order[0]])
            ok = np.zeros_like(ok)
            ok[candidates[meets]] = True
        return int(np.flatnonzero(ok)[np.argmin(mean_cost[ok])])
    assert budget is not None
    ok = mean_cost <= budget
    if not ok.any():
        return int(np.argmin(mean_cost))
    candidates = np.flatnonzero(ok)
    p5 = np.percentile(recall[:, candidates], 5.0, axis=0)
    # among equal p5, fewer queries at or below it is closer to raising it
    at_or_below = (recall[:, candidates] <= p5[None, :] + RECALL_TOLERANCE).mean(axis=0)
    order = np.lexsort((-mean_recall[candidates], at_or_below, -p5))
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


RISK_QUANTILES = np.linspace(0.0, 1.0, 101)


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
        stage = table.stages[family.stage]
        if family.model == "risk":
            recall, work, pairs = _risk_outcomes(table, cost, rows, stage, family, feature_cost)
        else:
            final = snap_up(np.exp2(family.oof)[:, None] * MULTIPLIERS[None, :], table.grid)
            recall, work = _outcome(table, cost, rows, stage, final, feature_cost)
        column = _choose(recall, work, recall_target, budget, p5_floor)
        if family.model == "risk":
            threshold, hard = pairs[column]
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
        p5 = float(np.percentile(recall[:, column], 5.0))
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
        if best is None or _better(stats, best[2], recall_target, budget):
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


def _better(new: dict, old: dict, recall_target: float | None, budget: float | None = None) -> bool:
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
    """As :func:`_better`; within a budget the better mean recall wins."""
    if recall_target is not None:
        return _better(new, old, recall_target)
    assert budget is not None
    new_ok, old_ok = new["train_work"] <= budget, old["train_work"] <= budget
    if new_ok != old_ok:
        return bool(new_ok)
    if not new_ok:
        return bool(new["train_work"] < old["train_work"])
    return bool(new["train_recall"] > old["train_recall"])


# --------------------------------------------------------------------------- policies


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


def default_centroids(base: np.ndarray, metric: str, config: AdaptConfig) -> np.ndarray:
    """The policy's coarse centroids (seeded k-means of a base sample)."""
    return coarse_centroids(base, metric, config.n_centroids, config.seed)
