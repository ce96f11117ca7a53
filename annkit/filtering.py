"""Filtered search: each query's filter (the AND of its labels), the strategies that answer
it, and the planner that picks one per query.

Strategies (``--filter-strategy``):

- ``native``: the library filters during its own search (an engine that can declares
  :meth:`search_filtered`: it takes the ascending ids allowed);
- ``acorn``: annkit's own traversal of an HNSW graph it can read, evaluating only the
  passing nodes and reading the neighbours of failing ones in their place
  (:mod:`annkit.engines.hnsw_acorn`), at the index's efSearch;
- ``post``: an unfiltered search that fetches more than k, drops what fails the filter and
  doubles the fetch until k pass or :data:`POST_FETCH_CAP` is reached;
- ``subset``: exact search over just the passing vectors (one distance per passing vector);
- ``auto``: per query, ``subset`` when its passing count is at most the planner's
  threshold, else ``native`` where the engine has it, else ``post``. The threshold is
  sqrt(c0 * n): ``subset`` costs one distance per passing vector, a filtered graph or
  list search about c0 / selectivity, where c0 is this index's measured cost of an
  unfiltered query (distance computations where the engine counts, else time per query in
  units of one distance), measured on seeded base vectors used as probe queries, never on
  the queries being scored.

Unfiltered queries (no labels) are searched as they are by every strategy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annkit.engines.base import Engine
from annkit.engines.hnsw_acorn import ACORN_NEEDS, acorn_filter
from annkit.errors import InputError
from annkit.filtered import subset_ground_truth
from annkit.labels import Filter, Labels, group_by_filter, passing_ids, postings
from annkit.measure import FILTER_STRATEGIES
from annkit.types import SearchResult

STRATEGIES = FILTER_STRATEGIES
#: the largest fetch ``post`` grows to (and never more than the base)
POST_FETCH_CAP = 4096
#: base vectors searched as probe queries to measure an index's unfiltered cost
PROBE_QUERIES = 64
#: selectivity band edges (share passing): < 0.1%, 0.1-1%, 1-10%, >= 10%, and unfiltered
SELECTIVITY_CUTS = (0.001, 0.01, 0.1)


def selectivity_band(share: float, filtered: bool) -> str:
    """The band name of a query whose filter passes ``share`` of the base."""
    if not filtered:
        return "unfiltered"
    if share < SELECTIVITY_CUTS[0]:
        return "sel<0.1%"
    if share < SELECTIVITY_CUTS[1]:
        return "sel0.1-1%"
    if share < SELECTIVITY_CUTS[2]:
        return "sel1-10%"
    return "sel>=10%"


SELECTIVITY_BAND_NAMES = ("sel<0.1%", "sel0.1-1%", "sel1-10%", "sel>=10%", "unfiltered")


def check_strategy(strategy: str, engine: Engine | None = None) -> str:
    """``strategy`` when annkit knows it and ``engine`` (when given) can run it."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown filter strategy {strategy!r}: use {', '.join(STRATEGIES)}")
    if strategy == "native" and engine is not None and not has_native_filter(engine):
        raise InputError(
            f"engine {engine.name} cannot filter during its search (no native strategy): "
            "use --filter-strategy post, subset or auto"
        )
    if strategy == "acorn" and engine is not None and acorn_filter(engine) is None:
        raise InputError(
            f"the acorn strategy needs {ACORN_NEEDS}; engine {engine.name} {engine.params} "
            "has none: use native, post, subset or auto"
        )
    return strategy


def has_native_filter(engine: Engine) -> bool:
    """True when the engine declares a native filtered search."""
    return callable(getattr(engine, "search_filtered", None))


@dataclass(frozen=True, eq=False)
class Workload:
    """The filters of a query set over a labelled base: each query's filter group, the
    passing ids of every distinct filter (ascending int64), passing counts (nq,) and
    selectivity (nq,); ``filtered`` (nq,) bool is False for queries without labels."""

    n_base: int
    groups: dict[Filter, np.ndarray]
    passing: dict[Filter, np.ndarray]
    counts: np.ndarray
    filtered: np.ndarray
    group_of: np.ndarray = field(repr=False)
    filters: list[Filter] = field(repr=False)

    @classmethod
    def of(cls, base_labels: Labels, query_labels: Labels) -> Workload:
        """The workload of ``query_labels`` over ``base_labels`` (one row per vector)."""
        index = postings(base_labels)
        groups = group_by_filter(query_labels)
        passing = {key: passing_ids(index, key) for key in groups}
        n_queries = query_labels.n_rows
        counts = np.empty(n_queries, dtype=np.int64)
        filtered = np.zeros(n_queries, dtype=bool)
        group_of = np.empty(n_queries, dtype=np.int64)
        filters = list(groups)
        for number, (key, rows) in enumerate(groups.items()):
            counts[rows] = passing[key].size
            filtered[rows] = bool(key)
            group_of[rows] = number
        return cls(
            n_base=base_labels.n_rows,
            groups=groups,
            passing=passing,
            counts=counts,
            filtered=filtered,
            group_of=group_of,
            filters=filters,
        )

    @property
    def selectivity(self) -> np.ndarray:
        """(nq,) float64 share of the base passing each query's filter (1.0 unfiltered)."""
        if self.n_base == 0:
            return np.ones(self.counts.shape, dtype=np.float64)
        return self.counts / float(self.n_base)

    def bands(self) -> np.ndarray:
        """(nq,) the selectivity band of every query (see :func:`selectivity_band`)."""
        return np.asarray(
            [
                selectivity_band(float(share), bool(flag))
                for share, flag in zip(self.selectivity, self.filtered, strict=True)
            ],
            dtype=object,
        )

    def passes(self, rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(len(rows), k) bool: whether each id returned for query ``rows[i]`` passes its
        filter (-1 never passes)."""
        out = np.zeros(ids.shape, dtype=bool)
        for position, row in enumerate(rows.tolist()):
            allowed = self.passing[self.filters[int(self.group_of[row])]]
            found = ids[position]
            valid = found >= 0
            if self.filtered[row]:
                out[position] = valid & np.isin(found, allowed, assume_unique=False)
            else:
                out[position] = valid
        return out


def filtered_recall(
    true_distances: np.ndarray,
    found_ids: np.ndarray,
    found_distances: np.ndarray,
    passes: np.ndarray,
    counts: np.ndarray,
    k: int,
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query filtered recall@k and short-result flags.

    A returned neighbour counts when it passes the query's filter and its exact distance
    is within the m-th true distance + ``epsilon``, m = min(k, passing count); recall is the
    count (at most m) over m, and 1.0 when nothing passes (m = 0: the empty result is
    right). A result is short when it holds fewer valid, passing, distinct ids than m.
    ``true_distances`` (nq, >= k) ascending, +inf past the passing vectors."""
    ids = np.asarray(found_ids[:, :k], dtype=np.int64)
    dist = np.array(found_distances[:, :k], dtype=np.float64)
    ok = np.asarray(passes[:, :k], dtype=bool) & (ids >= 0)
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    repeated = np.zeros_like(ok)
    repeated[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    duplicate = np.zeros_like(ok)
    np.put_along_axis(duplicate, order, repeated, axis=1)
    ok &= ~duplicate
    dist[~ok] = np.inf
    depth = np.minimum(np.asarray(counts, dtype=np.int64), k)
    column = np.maximum(depth - 1, 0)
    threshold = true_distances[np.arange(len(ids)), column] + epsilon
    hits = np.count_nonzero(dist <= threshold[:, None], axis=1)
    recall = np.where(depth > 0, np.minimum(hits, depth) / np.maximum(depth, 1), 1.0)
    short = np.count_nonzero(ok, axis=1) < depth
    return recall.astype(np.float64), short


# ----------------------------------------------------------------------- the strategies


@dataclass
class FilteredSearch:
    """Answers filtered queries on one index: ``search(rows)`` gives the k results of the
    query rows ``rows`` under ``strategy``, with the distance computations of everything
    it did (None where the engine cannot count) and each query's strategy."""

    engine: Engine
    #: the base vectors (None: unknown, so no ``subset`` strategy)
    base: np.ndarray | None
    queries: np.ndarray
    metric: str
    workload: Workload
    strategy: str
    k: int
    threshold: float | None = None
    choices: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        check_strategy(self.strategy, self.engine)
        self.choices = self.plan()

    def plan(self) -> np.ndarray:
        """(nq,) the strategy each query uses ("none" for unfiltered queries)."""
        workload = self.workload
        n_queries = len(workload.counts)
        fallback = "native" if has_native_filter(self.engine) else "post"
        if self.strategy != "auto":
            chosen = np.full(n_queries, self.strategy, dtype=object)
        else:
            if self.threshold is None:
                if self.base is None:
                    raise InputError("the auto strategy needs the base vectors: none given")
                self.threshold = subset_threshold(self.engine, self.base, self.k)
            chosen = np.where(workload.counts <= self.threshold, "subset", fallback)
            chosen = chosen.astype(object)
        chosen[~workload.filtered] = "none"
        return chosen

    def search(self, rows: np.ndarray) -> SearchResult:
        """Search the query ``rows`` (ascending int64), grouped by filter and strategy."""
        k = self.k
        ids = np.full((len(rows), k), -1, dtype=np.int64)
        distances = np.full((len(rows), k), np.inf, dtype=np.float32)
        counts: np.ndarray | None = np.zeros(len(rows), dtype=np.int64)
        position = {int(row): i for i, row in enumerate(rows.tolist())}
        workload = self.workload
        keys = workload.group_of[rows]
        for group in np.unique(keys):
            key = workload.filters[int(group)]
            allowed = workload.passing[key]
            members = rows[keys == group]
            for choice in np.unique(self.choices[members]):
                chosen = members[self.choices[members] == choice]
                result = self._run(str(choice), self.queries[chosen], allowed)
                at = [position[int(row)] for row in chosen.tolist()]
                width = min(k, result.ids.shape[1])
                ids[at, :width] = result.ids[:, :width]
                distances[at, :width] = result.distances[:, :width]
                if counts is not None:
                    if result.distance_computations is None:
                        counts = None
                    else:
                        counts[at] = result.distance_computations
        return SearchResult(ids=ids, distances=distances, distance_computations=counts)

    def _run(self, choice: str, queries: np.ndarray, allowed: np.ndarray) -> SearchResult:
        engine, k = self.engine, self.k
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if choice == "none":
            return engine.search(queries, k)
        if allowed.size == 0:  # nothing passes: the empty result, at no cost
            empty = np.full((len(queries), k), -1, dtype=np.int64)
            return SearchResult(
                ids=empty,
                distances=np.full((len(queries), k), np.inf, dtype=np.float32),
                distance_computations=np.zeros(len(queries), dtype=np.int64),
            )
        if choice == "subset":
            if self.base is None:
                raise InputError("the subset strategy searches the base vectors: none given")
            return subset_search(self.base, queries, allowed, k, self.metric)
        if choice == "acorn":
            acorn = acorn_filter(engine)
            assert acorn is not None  # checked with the strategy
            return acorn(queries, k, allowed)
        if choice == "native":
            native: Any = getattr(engine, "search_filtered")  # noqa: B009 - optional method
            return native(queries, k, allowed)
        return post_filter_search(engine, queries, k, allowed, self.workload.n_base)


def subset_search(
    base: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int, metric: str
) -> SearchResult:
    """Exact top-k of ``queries`` among the base rows ``allowed`` (ascending ids, not
    empty): float64 re-rank, ties to the lower id (as the filtered ground truth does); one
    distance computation per allowed vector and query."""
    truth = subset_ground_truth(base, queries, allowed, k, metric)
    width = truth.ids.shape[1]
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    distances = np.full((len(queries), k), np.inf, dtype=np.float32)
    ids[:, :width] = truth.ids
    distances[:, :width] = truth.distances
    return SearchResult(
        ids=ids,
        distances=distances,
        distance_computations=np.full(len(queries), len(allowed), dtype=np.int64),
    )


def post_filter_search(
    engine: Engine, queries: np.ndarray, k: int, allowed: np.ndarray, n_base: int
) -> SearchResult:
    """Unfiltered search fetching ``k / selectivity`` (at least k), dropping what fails the
    filter; queries short of k passing are searched again at twice the fetch until the
    fetch reaches min(POST_FETCH_CAP, n_base). Distance computations add up over rounds."""
    cap = max(k, min(POST_FETCH_CAP, n_base))
    share = max(len(allowed) / max(n_base, 1), 1e-9)
    fetch = min(cap, max(k, int(math.ceil(k / share))))
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    distances = np.full((len(queries), k), np.inf, dtype=np.float32)
    counts: np.ndarray | None = np.zeros(len(queries), dtype=np.int64)
    pending = np.arange(len(queries))
    while pending.size:
        result = engine.search(np.ascontiguousarray(queries[pending]), fetch)
        if counts is not None:
            if result.distance_computations is None:
                counts = None
            else:
                counts[pending] += result.distance_computations
        keep = (result.ids >= 0) & np.isin(result.ids, allowed)
        done = []
        for i, row in enumerate(pending.tolist()):
            found = result.ids[i][keep[i]][:k]
            ids[row, : len(found)] = found
            distances[row, : len(found)] = result.distances[i][keep[i]][:k]
            if len(found) >= min(k, len(allowed)) or fetch >= cap:
                done.append(i)
        pending = np.delete(pending, done)
        fetch = min(cap, fetch * 2)
    return SearchResult(ids=ids, distances=distances, distance_computations=counts)


def subset_threshold(engine: Engine, base: np.ndarray, k: int, seed: int = 0) -> float:
    """The planner's passing count below which ``subset`` is cheaper: sqrt(c0 * n), c0
    being the index's cost of one unfiltered query at its current settings, measured on
    :data:`PROBE_QUERIES` seeded base vectors (distance computations where the engine
    counts, else its time per query over the time of one exact distance)."""
    n_base = int(base.shape[0])
    rng = np.random.default_rng(seed)
    probe_rows = np.sort(rng.choice(n_base, size=min(PROBE_QUERIES, n_base), replace=False))
    probes = np.ascontiguousarray(base[probe_rows], dtype=np.float32)
    counts = engine.count_distances(probes, k) if engine.counts_distances else None
    if counts is not None:
        cost = float(np.mean(counts))
    else:
        started = time.perf_counter()
        engine.search(probes, k)
        per_query = (time.perf_counter() - started) / len(probes)
        started = time.perf_counter()
        block = np.asarray(base[: min(n_base, 4096)], dtype=np.float32)
        _ = probes @ block.T
        per_distance = (time.perf_counter() - started) / (len(probes) * len(block))
        cost = per_query / max(per_distance, 1e-12)
    return math.sqrt(max(cost, 1.0) * n_base)
