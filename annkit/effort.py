"""Minimum effort per query: the smallest value of an engine's effort parameter (e.g. an HNSW
graph's ``ef``) at which each query reaches a target recall@k.

Effort is assumed monotone per query (more effort never loses a neighbour), so each query is
bisected over the effort grid instead of scanning every value. The bisection is batched: each
round groups the still-open queries by the grid value they test next and runs one search per
distinct value over just those queries. Where a query's recall is not monotone in the effort,
the answer is *a* grid value at which it reaches the target whose predecessor does not, not
necessarily the smallest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annkit.bundle import Bundle
from annkit.engines.base import Engine, engine_names, get_engine
from annkit.errors import InputError, ParamError
from annkit.evaluate import (
    Truth,
    check_compatible,
    check_recall_rule,
    true_neighbor_distances,
    true_neighbor_ids,
)
from annkit.filtering import FilteredSearch
from annkit.hardness import HARDER_IS_HIGHER, spearman
from annkit.metrics import (
    DEFAULT_RECALL_RULE,
)
from annkit.slices import QueryProfile
from annkit.types import Dataset

HEAVY_FACTOR = 10.0
"""A query is "heavy" when it needs at least this many times the median effort."""

RECALL_TOLERANCE = 1e-9  # recall values are multiples of 1/k; absorb float rounding only


def _engine_class(engine: str | type[Engine]) -> type[Engine]:
    return get_engine(engine) if isinstance(engine, str) else engine


def effort_parameter(
    engine: str | type[Engine], build_params: Mapping[str, Any] | None = None
) -> str:
    """The effort query parameter of ``engine`` (a name or class) built with
    ``build_params`` (default: its defaults); ParamError for exact engines."""
    engine_class = _engine_class(engine)
    param = engine_class.effort_param_for(_with_defaults(engine_class, build_params))
    if param is None:
        usable = [
            name
            for name in engine_names()
            if get_engine(name).effort_param_for(_with_defaults(get_engine(name))) is not None
        ]
        raise ParamError(
            f"engine {engine_class.name} has no effort parameter (it searches exactly); "
            f"use an index of {', '.join(usable)}"
        )
    return param


def _with_defaults(
    engine_class: type[Engine], build_params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``build_params`` over the engine's build defaults."""
    merged = {name: spec.default for name, spec in engine_class.build_specs.items()}
    merged.update(build_params or {})
    return merged


def check_grid(
    engine: str | type[Engine], values: Sequence[Any], build_params: Mapping[str, Any] | None = None
) -> list[int]:
    """Validate an effort grid (coerced by the engine's spec, each >= 1); sorted, distinct."""
    engine_class = _engine_class(engine)
    param = effort_parameter(engine_class, build_params)
    spec = engine_class.query_specs(_with_defaults(engine_class, build_params))[param]
    grid = sorted({spec.coerce(param, value) for value in values})
    if not grid:
        raise ParamError(f"the {param} grid is empty")
    if grid[0] < 1:
        raise ParamError(f"{param} grid values must be >= 1, got {grid[0]}")
    return grid


@dataclass(frozen=True)
class EffortResult:
    """Per-query minimum effort over ``grid``.

    min_effort: (nq,) float64, the smallest grid value at which the query's recall@k reaches
    ``target`` (inf = not reached even at the largest value). ``searches`` counts the
    (query, setting) pairs searched; ``full_scan`` = nq * len(grid) for scanning every value.
    """

    engine: str
    param: str
    k: int
    target: float
    grid: list[int]
    min_effort: np.ndarray = field(repr=False)
    searches: int
    full_scan: int
    search_calls: int
    rounds: int
    build_params: dict = field(default_factory=dict)
    query_params: dict = field(default_factory=dict)
    dataset: str = ""

    @property
    def reached(self) -> np.ndarray:
        """(nq,) bool: the query reached the target within the grid."""
        return np.isfinite(self.min_effort)

    def to_dict(self) -> dict:
        """A JSON-ready dict (per-query values left out)."""
        return {
            "engine": self.engine,
            "param": self.param,
            "build_params": dict(self.build_params),
            "query_params": dict(self.query_params),
            "dataset": self.dataset,
            "k": self.k,
            "target": self.target,
            "grid": list(self.grid),
            "queries": int(self.min_effort.size),
            "searches": self.searches,
            "full_scan": self.full_scan,
            "search_calls": self.search_calls,
            "rounds": self.rounds,
        }


def _check_target(target: float) -> float:
    if not 0.0 < float(target) <= 1.0:
        raise InputError(f"target recall must be in (0, 1], got {target}")
    return float(target)


def minimum_effort(
    bundle: Bundle,
    dataset: Dataset,
    k: int = 10,
    target: float = 0.9,
    grid: Sequence[Any] | None = None,
    truth: np.ndarray | None = None,
    *,
    query_params: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    recall_rule: str = DEFAULT_RECALL_RULE,
    filter_strategy: str = "auto",
    true_ids: np.ndarray | None = None,
) -> EffortResult:
    """For every query of ``dataset``, the smallest effort-grid value at which ``bundle``'s
    index reaches recall@k >= ``target`` for that query, by batched per-query bisection.

    ``grid`` defaults to the engine's ``effort_grid``; ``truth`` (nq, >=k) exact neighbour
    distances ascending (computed when None); ``query_params`` fixes the other query params
    (e.g. a re-ranking depth); ``progress(round, max_rounds)`` is called after each round.
    ``recall_rule`` "strict" scores id overlap with ``true_ids`` (nq, >=k; computed when None).
    Queries with filters (labels) are searched by ``filter_strategy`` (annkit.filtering) and
    scored by the filtered rule.
    The engine's query params are restored afterwards.
    """
    engine = bundle.engine
    param = effort_parameter(type(engine), engine.params)
    target = _check_target(target)
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    check_compatible(bundle, dataset)
    if k > dataset.n_base:
        raise InputError(f"k={k} exceeds the {dataset.n_base} base vectors")
    fixed = dict(query_params or {})
    if param in fixed:
        raise ParamError(f"{param} is the effort parameter searched over; give it as the grid")
    build_params = dict(bundle.manifest["build_params"])
    values = check_grid(
        type(engine),
        grid if grid is not None else engine.effort_grid(k, dataset.n_base),
        engine.params,
    )
    if truth is None:
        truth = true_neighbor_distances(dataset, k)
    if check_recall_rule(recall_rule) == "strict" and true_ids is None:
        true_ids = true_neighbor_ids(dataset, k)
    exact = Truth(dataset, k, truth, true_ids)
    if truth.shape[0] != dataset.n_queries or truth.shape[1] < k:
        raise InputError(
            f"true distances have shape {truth.shape}, need ({dataset.n_queries}, >= {k})"
        )
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    n_queries, size = dataset.n_queries, len(values)
    low = np.zeros(n_queries, dtype=np.int64)  # first grid index not yet ruled out
    high = np.full(n_queries, size, dtype=np.int64)  # first index known to reach (size = none)
    max_rounds = math.ceil(math.log2(size + 1))
    saved = dict(engine.query)
    searches = calls = rounds = 0
    try:
        engine.set_query_params(**fixed)
        others = {name: value for name, value in engine.query.items() if name != param}
        while True:
            still_open = np.flatnonzero(low < high)
            if still_open.size == 0:
                break
            middle = (low[still_open] + high[still_open]) // 2
            for index in np.unique(middle):
                rows = still_open[middle == index]
                engine.set_query_params(**{param: values[index]})
                if exact.workload is None:
                    result = engine.search(queries[rows], k)
                else:  # each query with its filter, planned at this effort
                    result = FilteredSearch(
                        engine,
                        dataset.base,
                        queries,
                        dataset.metric,
                        exact.workload,
                        filter_strategy,
                        k,
                    ).search(rows)
                recall = exact.recall(result.ids, recall_rule, rows)
                meets = recall >= target - RECALL_TOLERANCE
                high[rows[meets]] = index
                low[rows[~meets]] = index + 1
                searches += int(rows.size)
                calls += 1
            rounds += 1
            if progress is not None:
                progress(rounds, max_rounds)
    finally:
        engine.set_query_params(**saved)
    grid_values = np.asarray(values + [np.inf], dtype=np.float64)
    return EffortResult(
        engine=engine.name,
        param=param,
        k=k,
        target=target,
        grid=values,
        min_effort=grid_values[high],
        searches=searches,
        full_scan=n_queries * size,
        search_calls=calls,
        rounds=rounds,
        build_params=build_params,
        query_params=others,
        dataset=dataset.name,
    )


def _ranked_effort(min_effort: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """Effort with not-reached queries set above the largest grid value (for ranking)."""
    return np.where(np.isfinite(min_effort), min_effort, 2.0 * float(max(grid)))


def _distribution(effort: np.ndarray, heavy: np.ndarray) -> dict:
    """median / p90 / p99 (nearest rank; inf = not reached) and shares of one slice."""
    median, p90, p99 = np.percentile(effort, [50.0, 90.0, 99.0], method="inverted_cdf")
    not_reached = int(np.count_nonzero(~np.isfinite(effort)))
    return {
        "queries": int(effort.size),
        "median": float(median),
        "p90": float(p90),
        "p99": float(p99),
        "not_reached": not_reached,
        "share_not_reached": not_reached / effort.size,
        "share_heavy": float(np.count_nonzero(heavy)) / effort.size,
    }


def effort_report(
    result: EffortResult, profile: QueryProfile | None, heavy_factor: float = HEAVY_FACTOR
) -> dict:
    """The distribution of minimum effort overall (``all``) and per slice of ``profile``,
    the heavy queries (effort >= ``heavy_factor`` x the overall median; not-reached queries
    count as heavy) and the Spearman correlation of effort with the query weight and each
    hardness measure (not-reached queries rank as the largest effort).

    Efforts are grid values; ``inf`` means not reached (JSON writers turn it into null).
    """
    effort = result.min_effort
    median = float(np.percentile(effort, 50.0, method="inverted_cdf"))
    threshold = heavy_factor * median
    heavy = effort >= threshold
    distribution = {"all": _distribution(effort, heavy)}
    if profile is not None:
        for name, mask in profile.masks.items():
            if mask.any():
                distribution[name] = _distribution(effort[mask], heavy[mask])
    ranked = _ranked_effort(effort, result.grid)
    correlation: dict[str, dict] = {}
    if profile is not None and profile.weights is not None:
        correlation["weight"] = {
            "spearman": spearman(ranked, profile.weights),
            "harder_is_higher": None,
        }
    for measure, values in profile.hardness.items() if profile is not None else ():
        correlation[measure] = {
            "spearman": spearman(ranked, values),
            "harder_is_higher": HARDER_IS_HIGHER.get(measure),
        }
    indices = np.flatnonzero(heavy)
    return {
        **result.to_dict(),
        "saved_share": 1.0 - result.searches / result.full_scan if result.full_scan else 0.0,
        "distribution": distribution,
        "heavy": {
            "factor": heavy_factor,
            "threshold": threshold,
            "count": int(indices.size),
            "share": float(indices.size) / effort.size,
            "indices": indices.tolist(),
        },
        "spearman": correlation,
    }


def per_query_columns(
    result: EffortResult, profile: QueryProfile | None, text: Sequence[str] | None = None
) -> dict[str, Sequence | np.ndarray]:
    """Columns of the per-query effort table: query, [text], min_effort ('' when not
    reached), reached, weight, band and the hardness measures (when known)."""
    effort = result.min_effort
    columns: dict[str, Sequence | np.ndarray] = {"query": list(range(effort.size))}
    if text is not None and len(text) == effort.size:
        columns["text"] = list(text)
    columns["min_effort"] = [int(value) if math.isfinite(value) else "" for value in effort]
    columns["reached"] = [bool(value) for value in np.isfinite(effort)]
    if profile is not None:
        if profile.weights is not None:
            columns["weight"] = profile.weights
        if profile.bands is not None:
            columns["band"] = profile.bands.tolist()
        for measure in ("lid", "rc", "expansion", "ood"):
            if measure in profile.hardness:
                columns[measure] = profile.hardness[measure]
    return columns
