"""``annkit adapt``: train a per-query effort policy for an index and show, on queries the
policy never trained on, its frontier beside uniform effort and the oracle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from annkit.adaptive.families import train_families
from annkit.adaptive.folds import check_query_count, fold_assignment
from annkit.adaptive.frontier import (
    ORACLE_TARGETS,
    frontier_point,
    oracle_point,
    room_bounds,
    score_policies,
    uniform_points,
)
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import (
    KINDS,
    LEARNED_KINDS,
    STOPPING_KINDS,
    FirstStage,
    Policy,
    lightgbm_available,
    query_hashes,
    require_lightgbm,
)
from annkit.adaptive.search import effort_param_of, refine_grid
from annkit.adaptive.stopping import fit_stopping, stopping_data
from annkit.adaptive.table import EffortTable, measure_table, per_query_recall
from annkit.adaptive.train import AdaptConfig, default_centroids, make_policy
from annkit.bundle import Bundle
from annkit.engines.base import Engine
from annkit.engines.hnsw_kernel import kernel_for, numba_available
from annkit.errors import InputError, ParamError
from annkit.evaluate import check_compatible, true_neighbor_distances
from annkit.slices import QueryProfile, build_profile
from annkit.types import Dataset

DEFAULT_RECALL_GOALS = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)
OPERATING_POINTS = (0.9, 0.95, 0.99)


@dataclass
class AdaptReport:
    """The trained policy, how it was scored, and the frontiers (lists of points)."""

    policy: Policy
    mode: str
    folds: int
    fold_of_query: np.ndarray | None
    train_rows: list[np.ndarray]
    scored_rows: list[np.ndarray]
    frontiers: dict[str, list[dict]]
    comparisons: list[dict]
    exact_counts: bool
    info: dict = field(default_factory=dict)
    #: per policy kind, parallel to its frontier: each point's per-query ``recall`` and
    #: ``distance_computations`` (None where the engine cannot count), in query order;
    #: not part of :meth:`to_dict`
    per_query: dict[str, list[dict]] = field(default_factory=dict)
    #: where a policy beats uniform effort (see :func:`policy_wins`); empty: nowhere
    wins: list[str] = field(default_factory=list)
    #: set when the uniform grid could not reach the target or the top operating point
    grid_note: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict: frontiers, comparisons and the fold of every scored query."""
        return {
            **self.info,
            "mode": self.mode,
            "folds": self.folds,
            "distance_computations_counted": self.exact_counts,
            "policy": {
                key: (
                    {name: v for name, v in value.items() if name != "query_hashes"}
                    if key == "training"
                    else value
                )
                for key, value in self.policy.manifest().items()
                if key not in ("index",)
            },
            "comparisons": self.comparisons,
            "frontiers": self.frontiers,
            "fold_of_query": None if self.fold_of_query is None else self.fold_of_query.tolist(),
            "wins": list(self.wins),
            "best_kinds": best_kinds(self.comparisons),
            "grid_note": self.grid_note,
        }


#: a recall-matched policy wins when it needs at most this share of uniform's work...
WIN_WORK_RATIO = 0.98
#: ...and loses no more recall than this
WIN_RECALL_SLACK = 0.001
#: a work-matched one wins by raising p5, or the tail band's recall by at least this (the
#: regression gate's recall tolerance: smaller moves are not told apart from noise there)
WIN_TAIL_GAIN = 0.005


def applicable_kinds(engine: Engine, saved: str = "learned") -> tuple[str, ...]:
    """``saved`` first, then every other kind this index supports: the LightGBM kinds when
    LightGBM is installed, the stopping rules when annkit's own resumable search can read
    the index (numba installed, an HNSW graph over flat vectors)."""
    learned = lightgbm_available()
    inside = numba_available() and kernel_for(engine) is not None
    kinds = [
        kind
        for kind in (*KINDS, *STOPPING_KINDS)
        if (kind not in LEARNED_KINDS or learned) and (kind not in STOPPING_KINDS or inside)
    ]
    return (saved, *(kind for kind in kinds if kind != saved))


def best_kinds(comparisons: list[dict]) -> list[dict]:
    """Per operating point, the recall-matched kind with the least work among those that
    keep uniform effort's recall and p5 (``kind`` None when none needs less work)."""
    best = []
    for entry in comparisons:
        choice: tuple[str | None, float | None] = (None, None)
        for name, point in entry.items():
            if "recall matched" not in name:
                continue
            ratio = point.get("work_ratio")
            if ratio is None and point.get("qps_ratio"):
                ratio = 1.0 / point["qps_ratio"]
            kept = (
                point.get("recall_change", 0.0) >= -WIN_RECALL_SLACK
                and point.get("p5_change", 0.0) >= 0
            )
            if (
                ratio is not None
                and kept
                and ratio < 1.0
                and (choice[1] is None or ratio < choice[1])
            ):
                choice = (name.split(" ")[0], float(ratio))
        best.append(
            {
                "operating_point": entry["operating_point"],
                "kind": choice[0],
                "work_ratio": choice[1],
            }
        )
    return best


def policy_wins(comparisons: list[dict]) -> list[str]:
    """Where a policy beats uniform effort, one line each: at an operating point, a
    recall-matched policy with at most WIN_WORK_RATIO of the work (its recall and p5 kept),
    or a work-matched one (within the 2% of equal work) raising p5 or the tail band. Work
    is distance computations; for an engine that cannot count them, the inverse QPS ratio
    (time) stands in."""
    wins = []
    for entry in comparisons:
        where = f"near recall {entry['operating_point']:g}"
        for name, point in entry.items():
            if name in ("operating_point", "uniform", "room"):
                continue
            kept = point.get("recall_change", 0.0) >= -WIN_RECALL_SLACK
            ratio = point.get("work_ratio")
            if ratio is None and point.get("qps_ratio"):  # uncounted: time is the cost
                ratio = 1.0 / point["qps_ratio"]
            if "recall matched" in name:
                if (
                    ratio is not None
                    and ratio <= WIN_WORK_RATIO
                    and kept
                    and point.get("p5_change", 0.0) >= 0
                ):
                    wins.append(f"{where}: {name} {ratio:.2f}x the cost")
            elif ratio is not None and ratio <= 1.0 + 0.02 and kept:
                tail = point.get("tail_band_change")
                p5_gain = point.get("p5_change", 0.0)
                if p5_gain > 0 or (tail is not None and tail >= WIN_TAIL_GAIN):
                    gain = f"p5 {p5_gain:+.2f}" if p5_gain > 0 else f"tail {tail:+.4f}"
                    wins.append(f"{where}: {name} {gain}")
    return wins


def extend_grid(
    engine: Engine,
    values: list[int],
    recall_at: Callable[[int], float],
    need: float,
    param: str,
) -> tuple[list[int], str | None]:
    """``values`` extended by doubling its largest value (with midpoints) until the uniform
    recall there (``recall_at(value)``) reaches ``need``, within the parameter's maximum and
    64x the original largest value; with a note when it cannot."""
    spec = engine.index_query_specs()[param]
    cap = int(spec.maximum) if spec.maximum is not None else None
    limit = values[-1] * 64
    while True:
        top = values[-1]
        recall = recall_at(top)
        if recall >= need:
            return values, None
        nxt = top * 2 if cap is None else min(top * 2, cap)
        if nxt <= top or nxt > limit:
            return values, (
                f"the uniform grid's best recall is {recall:.4f} at {param}={top}, below "
                f"{need:g}: operating points above it are not measured"
            )
        values = refine_grid([*values, nxt])


def _closest(points: list[dict], recall: float) -> int:
    return int(np.argmin([abs(point["recall"] - recall) for point in points]))


def _comparison_goals(uniform: list[dict], param: str) -> list[Goal]:
    goals: list[Goal] = []
    for recall in OPERATING_POINTS:
        value = uniform[_closest(uniform, recall)]["setting"][param]
        goals += [Goal("uniform-recall", value), Goal("uniform-budget", value)]
    return list(dict.fromkeys(goals))


def _band_recall(point: dict, band: str = "tail") -> float | None:
    entry = point["slices"].get(band)
    return None if entry is None else float(entry["recall"])


def compare_at_operating_points(
    frontiers: dict[str, list[dict]], param: str, table: EffortTable | None = None
) -> list[dict]:
    """For the uniform settings closest to mean recall 0.9 / 0.95 / 0.99: each policy's
    point calibrated (on training queries) to the same recall (learned: and p5) and to the
    same work (within 2%), and
    (given the effort ``table`` of the scored queries) the room perfect knowledge would have
    there (``room``: see :func:`room_bounds`)."""
    uniform = frontiers["uniform"]
    out = []
    for recall in OPERATING_POINTS:
        column = _closest(uniform, recall)
        base = uniform[column]
        value = base["setting"][param]
        entry: dict = {"operating_point": recall, "uniform": _summary(base, None)}
        if table is not None:
            entry["room"] = room_bounds(table, column)
        for kind in (*KINDS, *STOPPING_KINDS):
            for goal_kind in ("uniform-recall", "uniform-budget"):
                label = Goal(goal_kind, value).label()
                match = [p for p in frontiers.get(kind, []) if p["setting"].get("goal") == label]
                if match:
                    matched = "recall" if goal_kind == "uniform-recall" else "work"
                    entry[f"{kind} ({matched} matched)"] = _summary(match[0], base)
        out.append(entry)
    return out


def _summary(point: dict, base: dict | None) -> dict:
    summary = {
        "setting": point["setting"],
        "recall": point["recall"],
        "p5_recall": point["p5_recall"],
        "tail_band_recall": _band_recall(point),
        "distance_computations": point["distance_computations"],
        "qps": point["qps"],
    }
    if base is not None:
        work, base_work = point["distance_computations"], base["distance_computations"]
        summary["work_ratio"] = None if work is None or not base_work else work / base_work
        summary["qps_ratio"] = point["qps"] / base["qps"] if base["qps"] else None
        summary["recall_change"] = point["recall"] - base["recall"]
        summary["p5_change"] = point["p5_recall"] - base["p5_recall"]
        mine, theirs = _band_recall(point), _band_recall(base)
        summary["tail_band_change"] = None if mine is None or theirs is None else mine - theirs
    return summary


def _uniform_recall(
    engine: Engine, param: str, dataset: Dataset, truth: np.ndarray, k: int, value: int
) -> float:
    """Mean recall@k of every query of ``dataset`` searched at ``param`` = ``value``."""
    saved = dict(engine.query)
    try:
        engine.set_query_params(**{param: int(value)})
        with engine.uncounted():
            ids = engine.search(np.ascontiguousarray(dataset.queries, dtype=np.float32), k).ids
    finally:
        engine.set_query_params(**saved)
    return float(
        per_query_recall(dataset.base, dataset.queries, dataset.metric, truth, ids, k).mean()
    )


def probe_stage(engine: Engine, param: str, config: AdaptConfig) -> FirstStage:
    """The probe: ``config.probe_k`` neighbours at the effort parameter's smallest value."""
    spec = engine.index_query_specs()[param]
    return FirstStage("probe", max(1, int(spec.minimum or 1)), int(config.probe_k))


def training_dataset(dataset: Dataset, queries: np.ndarray, name: str) -> Dataset:
    """A dataset of training ``queries`` (n, d) over ``dataset``'s base vectors."""
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] != dataset.dim:
        raise InputError(
            f"training queries {name} have shape {queries.shape}, need (n, "
            f"{dataset.dim}) like the base vectors"
        )
    return Dataset(
        name=name,
        metric=dataset.metric,
        base=dataset.base,
        queries=np.ascontiguousarray(queries, dtype=np.float32),
    )


def adapt(
    bundle: Bundle,
    dataset: Dataset,
    k: int = 10,
    target: float = 0.9,
    *,
    train: Dataset | None = None,
    config: AdaptConfig | None = None,
    goals: Sequence[Goal] | None = None,
    oracle_targets: Sequence[float] = ORACLE_TARGETS,
    grid: Sequence[int] | None = None,
    truth: np.ndarray | None = None,
    profile: QueryProfile | None = None,
    progress: Callable[[str], None] | None = None,
    steps: Callable[[int, int], None] | None = None,
) -> AdaptReport:
    """Train a per-query effort policy for ``bundle`` meeting mean recall@k ``target`` and
    score the uniform, policy and oracle frontiers on ``dataset``'s queries.

    Without ``train`` the policies are cross-fitted: queries are dealt into ``config.folds``
    seeded folds and each fold is scored by policies fitted on the other folds only. With
    ``train`` (a dataset with the same base), policies are fitted on its queries and all of
    ``dataset``'s queries are scored. The returned policy is fitted on all training queries.

    ``progress(message)`` names each step; ``steps(done, total)`` counts them (the effort
    table, each kind's training data, each (kind, goal) policy, the oracle, the final fit).
    """
    config = config or AdaptConfig(k=k)
    if config.k != k:
        config = AdaptConfig(**{**config.__dict__, "k": k})
    if not 0.0 < float(target) <= 1.0:
        raise InputError(f"target recall must be in (0, 1], got {target}")
    unknown = [kind for kind in config.kinds if kind not in (*KINDS, *STOPPING_KINDS)]
    if unknown:
        known = ", ".join((*KINDS, *STOPPING_KINDS))
        raise ParamError(f"unknown policy kind {unknown[0]!r} (known: {known})")
    engine = bundle.engine
    param = effort_param_of(engine)
    if any(kind in LEARNED_KINDS for kind in config.kinds):
        require_lightgbm()
    check_compatible(bundle, dataset)
    if train is not None:
        check_compatible(bundle, train)
    if k > dataset.n_base:
        raise InputError(f"k={k} exceeds the {dataset.n_base} base vectors")
    n_train = train.n_queries if train is not None else dataset.n_queries
    check_query_count(n_train, config.folds)

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    counted = [0, 0]  # done, total (known once the goals are)

    def step() -> None:
        counted[0] += 1
        if steps is not None and counted[1]:
            steps(counted[0], counted[1])

    base, metric = dataset.base, dataset.metric
    if truth is None:
        say("exact neighbours of the queries")
        truth = true_neighbor_distances(dataset, k)
    if profile is None:
        profile = build_profile(dataset, truth, k)
    values = (
        sorted({int(v) for v in grid})
        if grid is not None
        else refine_grid(engine.effort_grid(k, dataset.n_base))
    )
    grid_note = None
    if grid is None:  # a given grid is the user's; the default one grows to what it must reach
        need = max(float(target), max(OPERATING_POINTS))
        values, grid_note = extend_grid(
            engine,
            values,
            lambda value: _uniform_recall(engine, param, dataset, truth, k, value),
            need,
            param,
        )
        if grid_note is not None:
            say(grid_note)
    first_indices = (
        [index for index in config.first_indices if index < len(values)]
        if "full" in config.stages
        else []
    )
    probe = probe_stage(engine, param, config) if "probe" in config.stages else None
    centroids = default_centroids(base, metric, config)
    say(f"searching every query at {len(values)} {param} values")
    table = measure_table(
        engine, base, dataset.queries, metric, truth, k, values, first_indices, centroids, probe
    )
    if "none" not in config.stages:
        del table.stages["none"]
    uniform = uniform_points(table, param, profile)
    goal_list = (
        list(goals)
        if goals is not None
        else (
            [Goal("recall", r) for r in sorted(set(DEFAULT_RECALL_GOALS) | {float(target)})]
            + _comparison_goals(uniform, param)
        )
    )
    scored_queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    stopping_kinds = [kind for kind in config.kinds if kind in STOPPING_KINDS]
    counted[1] = 1 + len(stopping_kinds) + len(config.kinds) * len(goal_list) + 2
    step()  # the effort table

    if train is None:
        fold_of_query = fold_assignment(dataset.n_queries, config.folds, config.seed)
        fit_queries, fit_truth = dataset.queries, truth
        scored_rows = [np.flatnonzero(fold_of_query == f) for f in range(config.folds)]
        train_rows = [np.flatnonzero(fold_of_query != f) for f in range(config.folds)]
        fit_table = table
        mode = (
            f"cross-fitted over {config.folds} folds: each query is scored by a policy "
            "trained on the other folds only"
        )
    else:
        fold_of_query = None
        say("exact neighbours of the training queries")
        train_truth = true_neighbor_distances(train, k)
        fit_queries, fit_truth = train.queries, train_truth
        say(f"searching every training query at {len(values)} {param} values")
        fit_table = measure_table(
            engine,
            base,
            train.queries,
            metric,
            train_truth,
            k,
            values,
            first_indices,
            centroids,
            probe,
        )
        if "none" not in config.stages:
            del fit_table.stages["none"]
        scored_rows = [np.arange(dataset.n_queries)]
        train_rows = [np.arange(train.n_queries)]
        mode = (
            f"trained on {train.n_queries} training queries ({train.name}), scored on "
            f"{dataset.n_queries} other queries"
        )

    frontiers: dict[str, list[dict]] = {"uniform": uniform}
    per_query: dict[str, list[dict]] = {}
    stopping = {}
    for kind in stopping_kinds:
        stopping[kind] = stopping_data(
            kind, engine, base, fit_queries, metric, fit_truth, k, values, say, config.seed
        )
        step()
    learned_families: list = []  # per fold, shared by the learned kinds
    for kind in config.kinds:
        families = []
        if kind in LEARNED_KINDS and learned_families:
            families = learned_families
        elif kind in LEARNED_KINDS:
            learned_families = families
            for fold, rows in enumerate(train_rows, start=1):
                say(f"learned: training LightGBM models, fold {fold}/{len(train_rows)}")
                families.append(
                    train_families(
                        fit_table,
                        rows,
                        list(fit_table.stages),
                        config.label_targets,
                        config.folds,
                        config.seed,
                        config.rounds,
                    )
                )
        points, rows_of_points = [], []
        for number, goal in enumerate(goal_list, start=1):
            say(
                f"{kind} policy {number}/{len(goal_list)}: {goal.label()} "
                f"({len(train_rows)} fold(s))"
            )
            policies = (
                [
                    fit_stopping(
                        kind,
                        stopping[kind],
                        fit_table,
                        rows,
                        goal,
                        config,
                        bundle.manifest,
                        param,
                        centroids,
                        families[i] if families else None,
                    )
                    for i, rows in enumerate(train_rows)
                ]
                if kind in STOPPING_KINDS
                else [
                    make_policy(
                        kind,
                        fit_table,
                        rows,
                        goal,
                        config,
                        bundle.manifest,
                        param,
                        centroids,
                        families[i] if families else None,
                    )
                    for i, rows in enumerate(train_rows)
                ]
            )
            scored = score_policies(
                engine, policies, scored_rows, base, scored_queries, metric, truth, k
            )
            points.append(
                frontier_point(
                    {"goal": goal.label()},
                    scored.recall,
                    scored.computations,
                    scored.seconds,
                    profile,
                    stage_computations=scored.stage_means,
                    mean_effort=float(scored.efforts.mean()),
                    second_stage_share=float(scored.second_stage.mean()),
                    folds=[
                        {
                            "first_stage": p.stage.to_dict(),
                            "calibration": p.calibration,
                            "training": p.training,
                        }
                        for p in policies
                    ],
                )
            )
            rows_of_points.append(
                {"recall": scored.recall, "distance_computations": scored.computations}
            )
            step()
        frontiers[kind] = points
        per_query[kind] = rows_of_points
    say("oracle")
    frontiers["oracle"] = [
        oracle_point(engine, table, base, scored_queries, metric, truth, k, t, profile)
        for t in oracle_targets
    ]
    step()
    all_rows = np.arange(n_train)
    final_kind = config.kinds[0]
    say(f"final {final_kind} policy on all {n_train} training queries")
    training_queries = train.queries if train is not None else dataset.queries
    policy = (
        fit_stopping(
            final_kind,
            stopping[final_kind],
            fit_table,
            all_rows,
            Goal("recall", float(target)),
            config,
            bundle.manifest,
            param,
            centroids,
        )
        if final_kind in STOPPING_KINDS
        else make_policy(
            final_kind,
            fit_table,
            all_rows,
            Goal("recall", float(target)),
            config,
            bundle.manifest,
            param,
            centroids,
        )
    )
    policy.training["query_hashes"] = query_hashes(training_queries)
    step()
    comparisons = compare_at_operating_points(frontiers, param, table)
    info = {
        "engine": engine.name,
        "param": param,
        "grid": values,
        "k": k,
        "target": float(target),
        "queries": dataset.n_queries,
        "training_queries": n_train,
        "dataset": dataset.name,
        "build_params": dict(bundle.manifest["build_params"]),
    }
    return AdaptReport(
        policy=policy,
        mode=mode,
        folds=config.folds if train is None else 1,
        fold_of_query=fold_of_query,
        train_rows=train_rows,
        scored_rows=scored_rows,
        frontiers=frontiers,
        comparisons=comparisons,
        exact_counts=table.exact,
        info=info,
        per_query=per_query,
        wins=policy_wins(comparisons),
        grid_note=grid_note,
    )
