"""Per-query effort through the ordinary engine interface.

Queries are grouped by their effort value; each group is one ``set_query_params`` plus one
``search`` call, so this works for every engine with an effort parameter and never names
one. Distance computations are summed per query when the engine counts them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from annkit.engines.base import Engine, engine_names, get_engine
from annkit.errors import ParamError
from annkit.types import SearchResult


def effort_param_of(engine: Engine) -> str:
    """The engine's effort parameter; ParamError (one line) for engines without one."""
    param = engine.effort_param
    if param is None:
        usable = []
        for name in engine_names():
            engine_class = get_engine(name)
            defaults = {key: spec.default for key, spec in engine_class.build_specs.items()}
            if engine_class.effort_param_for(defaults) is not None:
                usable.append(name)
        raise ParamError(
            f"engine {engine.name} has no per-query effort parameter (it searches exactly); "
            f"adaptive effort needs an index of {', '.join(usable)}"
        )
    return str(param)


def refine_grid(grid: Sequence[int], steps: int = 4, maximum: float | None = None) -> list[int]:
    """Insert geometric midpoints into a doubling grid (``steps`` values per doubling),
    rounded to integers, distinct, ascending; values above ``maximum`` are dropped."""
    values = sorted({int(v) for v in grid})
    out: set[int] = set(values)
    for low, high in zip(values, values[1:], strict=False):
        for step in range(1, steps):
            out.add(int(round(low * (high / low) ** (step / steps))))
    refined = sorted(v for v in out if v >= 1)
    if maximum is not None:
        refined = [v for v in refined if v <= maximum] or refined[:1]
    return refined


def search_with_efforts(
    engine: Engine, queries: np.ndarray, k: int, efforts: np.ndarray, param: str | None = None
) -> SearchResult:
    """Search each query of ``queries`` (nq, d) at its own effort ``efforts`` (nq,) ints.

    Queries sharing an effort are searched together with one call. The engine's query
    params are restored afterwards. ``distance_computations`` is the per-query count
    (None when the engine cannot count for any group).
    """
    param = param or effort_param_of(engine)
    efforts = np.asarray(efforts)
    n_queries = int(queries.shape[0])
    if efforts.shape != (n_queries,):
        raise ParamError(f"need one effort per query: {n_queries} queries, {efforts.shape} efforts")
    ids = np.full((n_queries, k), -1, dtype=np.int64)
    distances = np.full((n_queries, k), np.inf, dtype=np.float32)
    counts: np.ndarray | None = np.zeros(n_queries, dtype=np.int64)
    saved = dict(engine.query)
    try:
        for value in np.unique(efforts):
            rows = np.flatnonzero(efforts == value)
            engine.set_query_params(**{param: int(value)})
            result = engine.search(queries[rows], k)
            ids[rows] = result.ids
            distances[rows] = result.distances
            if result.distance_computations is None:
                counts = None
            elif counts is not None:
                counts[rows] = result.distance_computations
    finally:
        engine.set_query_params(**saved)
    return SearchResult(ids=ids, distances=distances, distance_computations=counts)


def snap_up(values: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """Index (nq,) of the smallest grid value >= each value (the last index when above)."""
    grid_array = np.asarray(grid, dtype=np.float64)
    index = np.searchsorted(grid_array, np.asarray(values, dtype=np.float64) - 1e-9, side="left")
    return np.minimum(index, len(grid_array) - 1)


def is_finite_number(value: Any) -> bool:
    """True for a finite int/float (not bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
