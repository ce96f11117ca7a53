"""annkit's own compiled search over a faiss HNSW graph: faiss' search step for step, but
resumable, and with stopping rules inside it.

The search mirrors faiss 1.15 ``HNSW::search`` with its default bounded queue
(``faiss/impl/HNSW.cpp``): a greedy descent from the entry point on the upper levels, then
``search_from_candidates`` on level 0: a candidate array of ``capacity`` slots kept as a
max-heap (faiss' ``MinimaxHeap``: an expanded candidate keeps its slot, marked -1, so the
array always holds the best ``capacity`` nodes evaluated), the best unexpanded candidate
popped by a linear scan (rightmost among ties), a k-result max-heap with faiss' tie rule on
ids, and faiss' counting (``hnsw_stats.ndis``: every neighbour distance; the entry point's
is not counted). A fresh search at efSearch ``ef`` uses ``capacity = max(ef, k)``.

**Resuming.** faiss' check ``count_below(d0) >= efSearch`` stops the level-0 search when
the best unexpanded candidate is no longer among the ``ef`` best nodes evaluated. With a
larger capacity ``C`` the array holds the C best evaluated nodes, which include the ef best,
and the pops are the same ones up to the moment that check fires: a search with capacity C
stopped by the rule of ``ef`` a is the fresh search at a (same ids, same count), and lifting
the stop to b <= C continues it to exactly the fresh search at b. Nothing is searched twice:
the visited set and both heaps are kept per query between calls (:class:`SearchState`).

**Stopping rules inside the search** (optional, per call): ``patience`` p stops a query
once more than p consecutive expansions left the k-result queue saturated (Lucene's
``HnswQueueSaturationCollector``: saturation = previous / current count of results ever
collected, saturated at >= 0.995). A query stopped by patience can be resumed too.

Floating-point sums differ from faiss' SIMD order in the last bits, so a query whose two
candidates tie to within rounding may take another path: the verification
(tests/test_hnsw_kernel.py) asks for the same ids on >= 99.9% of queries and counts within
1%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from annkit.engines.base import Engine, pad_result
from annkit.engines.faiss_graph import HnswGraph, engine_hnsw_index, read_hnsw_graph
from annkit.engines.flat import to_metric_distance
from annkit.errors import InputError, ParamError
from annkit.faiss_util import prepare
from annkit.types import SearchResult

INSTALL_HINT = "annkit's own HNSW search needs numba: pip install 'annkit[kernel]'"

#: a query's state: not started, paused by the ef rule, finished (no candidate left),
#: stopped by patience
NEW, PAUSED, DONE, PATIENT = 0, 1, 2, 3
#: Lucene's default saturation threshold
SATURATION = 0.995


def numba_available() -> bool:
    """True when numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


_COMPILED: dict[str, Any] = {}


def compiled_jit() -> Any:
    """numba's ``njit`` as annkit's compiled searches use it (cached on disk, no GIL,
    fastmath); InputError with the install hint when numba is missing."""
    try:
        import numba
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return numba.njit(cache=True, nogil=True, fastmath=True)


def compiled_distance() -> Any:
    """The compiled distance of one query to one graph node, as faiss ranks them: squared
    L2, or the negated inner product for an inner-product graph (smaller is better)."""
    if "distance" in _COMPILED:
        return _COMPILED["distance"]

    @compiled_jit()
    def distance(query, vectors, node, inner_product):  # type: ignore[no-untyped-def]
        row = vectors[node]
        total = np.float32(0.0)
        if inner_product:
            for j in range(row.shape[0]):
                total += query[j] * row[j]
            return -total
        for j in range(row.shape[0]):
            diff = query[j] - row[j]
            total += diff * diff
        return total

    _COMPILED["distance"] = distance
    return distance


def compiled_descent() -> Any:
    """The compiled greedy descent of the upper levels (faiss' ``greedy_update_nearest``):
    from the entry point, the nearest node reached above level 0, its distance, and how many
    neighbour distances it computed (the entry point's is not counted, as in faiss)."""
    if "descent" in _COMPILED:
        return _COMPILED["descent"]
    distance = compiled_distance()

    @compiled_jit()
    def descend(  # type: ignore[no-untyped-def]
        query, vectors, neighbors, offsets, cum, entry_point, max_level, inner_product
    ):
        nearest = entry_point
        d_nearest = distance(query, vectors, nearest, inner_product)
        counted = 0
        for level in range(max_level, 0, -1):
            while True:
                previous_nearest = nearest
                begin = offsets[nearest] + cum[level]
                end = offsets[nearest] + cum[level + 1]
                for j in range(begin, end):
                    node = neighbors[j]
                    if node < 0:
                        break
                    counted += 1
                    d = distance(query, vectors, node, inner_product)
                    if d < d_nearest:
                        nearest = node
                        d_nearest = d
                if nearest == previous_nearest:
                    break
        return nearest, d_nearest, counted

    _COMPILED["descent"] = descend
    return descend


def _compiled() -> object:
    """The compiled batch search (numba), compiled once per process (cached on disk)."""
    if "run" in _COMPILED:
        return _COMPILED["run"]
    jit = compiled_jit()
    distance = compiled_distance()
    descend = compiled_descent()

    @jit
    def before(a, b, ida, idb, tie):  # type: ignore[no-untyped-def]
        # faiss' cmp2 of a max-heap: (a > b) or (a == b and id a > id b); for inner product
        # (stored negated) faiss' min-heap breaks ties the other way
        return a > b or (a == b and tie * ida > tie * idb)

    @jit
    def heap_push(size, dis, ids, value, node, tie):  # type: ignore[no-untyped-def]
        # faiss::heap_push (1-based positions); ``size`` is the new size
        i = size
        while i > 1:
            father = i >> 1
            if not before(value, dis[father - 1], node, ids[father - 1], tie):
                break
            dis[i - 1] = dis[father - 1]
            ids[i - 1] = ids[father - 1]
            i = father
        dis[i - 1] = value
        ids[i - 1] = node

    @jit
    def heap_sift(size, dis, ids, value, node, tie):  # type: ignore[no-untyped-def]
        # the descent shared by faiss::heap_pop (value = last element) and heap_replace_top
        i = 1
        while True:
            i1 = i << 1
            i2 = i1 + 1
            if i1 > size:
                break
            if i2 == size + 1 or before(dis[i1 - 1], dis[i2 - 1], ids[i1 - 1], ids[i2 - 1], tie):
                if before(value, dis[i1 - 1], node, ids[i1 - 1], tie):
                    break
                dis[i - 1] = dis[i1 - 1]
                ids[i - 1] = ids[i1 - 1]
                i = i1
            else:
                if before(value, dis[i2 - 1], node, ids[i2 - 1], tie):
                    break
                dis[i - 1] = dis[i2 - 1]
                ids[i - 1] = ids[i2 - 1]
                i = i2
        dis[i - 1] = value
        ids[i - 1] = node

    @jit
    def run(  # type: ignore[no-untyped-def]
        queries,
        rows,
        vectors,
        neighbors,
        offsets,
        cum,
        entry_point,
        max_level,
        inner_product,
        stop,
        patience,
        saturation,
        cand_ids,
        cand_dis,
        cand_size,
        cand_valid,
        res_ids,
        res_dis,
        visited,
        shared_visited,
        ndis,
        nstep,
        status,
        collected,
        previous,
        saturated,
    ):
        tie = -1 if inner_product else 1
        capacity = cand_ids.shape[1]
        k = res_ids.shape[1]
        level0 = cum[1]
        for position in range(queries.shape[0]):
            q = rows[position]
            if status[q] == DONE:
                continue
            query = queries[position]
            vrow = 0 if shared_visited else q
            seen = visited[vrow]
            cids = cand_ids[q]
            cdis = cand_dis[q]
            rids = res_ids[q]
            rdis = res_dis[q]
            if status[q] == NEW:
                nearest, d_nearest, counted = descend(
                    query, vectors, neighbors, offsets, cum, entry_point, max_level, inner_product
                )
                ndis[q] += counted
                for j in range(k):
                    rids[j] = -1
                    rdis[j] = np.inf
                cids[0] = nearest
                cdis[0] = d_nearest
                cand_size[q] = 1
                cand_valid[q] = 1
                if d_nearest < rdis[0]:
                    heap_sift(k, rdis, rids, d_nearest, nearest, tie)
                    collected[q] += 1
                seen[nearest >> 3] |= np.uint8(1 << (nearest & 7))
            limit = stop[position]
            wait = patience[position]
            status[q] = DONE
            while cand_valid[q] > 0:
                size = cand_size[q]
                # the best unexpanded candidate, rightmost among ties (faiss' pop_min)
                best = -1
                best_d = np.float32(0.0)
                for i in range(size - 1, -1, -1):
                    if cids[i] != -1 and (best == -1 or cdis[i] < best_d):
                        best = i
                        best_d = cdis[i]
                if size > limit:
                    below = 0
                    for i in range(size):
                        if cdis[i] < best_d or (cdis[i] == best_d and i != best):
                            below += 1
                    if below >= limit:
                        status[q] = PAUSED
                        break
                if wait >= 0 and saturated[q] > wait:
                    status[q] = PATIENT
                    break
                node0 = cids[best]
                cids[best] = -1
                cand_valid[q] -= 1
                begin = offsets[node0]
                end = begin + level0
                threshold = rdis[0]
                for j in range(begin, end):
                    node = neighbors[j]
                    if node < 0:
                        break
                    byte = node >> 3
                    bit = np.uint8(1 << (node & 7))
                    if seen[byte] & bit:
                        continue
                    seen[byte] |= bit
                    ndis[q] += 1
                    d = distance(query, vectors, node, inner_product)
                    if d < threshold:
                        heap_sift(k, rdis, rids, d, node, tie)
                        threshold = rdis[0]
                        collected[q] += 1
                    # MinimaxHeap.push
                    if cand_size[q] == capacity:
                        if not cdis[0] > d:
                            continue
                        if cids[0] != -1:
                            cand_valid[q] -= 1
                        last = cand_size[q]
                        heap_sift(last - 1, cdis, cids, cdis[last - 1], cids[last - 1], tie)
                        cand_size[q] -= 1
                    cand_size[q] += 1
                    heap_push(cand_size[q], cdis, cids, d, node, tie)
                    cand_valid[q] += 1
                nstep[q] += 1
                # Lucene's queue saturation, after each expanded candidate
                current = collected[q]
                ratio = min(current, previous[q]) / current if current > 0 else 0.0
                previous[q] = current
                if ratio >= saturation:
                    saturated[q] += 1
                else:
                    saturated[q] = 0
            if shared_visited:
                seen[:] = 0

    _COMPILED["run"] = run
    return run


@dataclass
class SearchState:
    """The kept state of a batch of queries between calls (one row each): the candidate
    array (``capacity`` slots), the k-result heap, the visited bitset, the distance
    computations and expansions so far, and the status (NEW, PAUSED, DONE, PATIENT)."""

    queries: np.ndarray
    k: int
    cand_ids: np.ndarray
    cand_dis: np.ndarray
    cand_size: np.ndarray
    cand_valid: np.ndarray
    res_ids: np.ndarray
    res_dis: np.ndarray
    visited: np.ndarray
    ndis: np.ndarray
    nstep: np.ndarray
    status: np.ndarray
    collected: np.ndarray
    previous: np.ndarray
    saturated: np.ndarray

    @property
    def capacity(self) -> int:
        return int(self.cand_ids.shape[1])


class HnswKernel:
    """annkit's compiled search over one checked :class:`HnswGraph` (one thread)."""

    def __init__(self, graph: HnswGraph) -> None:
        self.graph = graph
        self._run = _compiled()

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.graph.dim:
            raise InputError(
                f"queries have shape {queries.shape}, the index has dimension {self.graph.dim}"
            )
        return np.ascontiguousarray(prepare(queries, self.graph.metric))

    def start(self, queries: np.ndarray, k: int, capacity: int) -> SearchState:
        """A new state for ``queries`` (nq, d) whose searches may go up to efSearch
        ``capacity`` (the candidate array's size; at least k)."""
        if k < 1 or capacity < 1:
            raise ParamError(f"k and the candidate capacity must be >= 1, got {k}, {capacity}")
        prepared = self._prepare(queries)
        nq, capacity = int(prepared.shape[0]), max(int(capacity), int(k))
        return SearchState(
            queries=prepared,
            k=int(k),
            cand_ids=np.full((nq, capacity), -1, dtype=np.int32),
            cand_dis=np.zeros((nq, capacity), dtype=np.float32),
            cand_size=np.zeros(nq, dtype=np.int64),
            cand_valid=np.zeros(nq, dtype=np.int64),
            res_ids=np.full((nq, k), -1, dtype=np.int64),
            res_dis=np.full((nq, k), np.inf, dtype=np.float32),
            visited=np.zeros((nq, (self.graph.count + 7) // 8), dtype=np.uint8),
            ndis=np.zeros(nq, dtype=np.int64),
            nstep=np.zeros(nq, dtype=np.int64),
            status=np.zeros(nq, dtype=np.int8),
            collected=np.zeros(nq, dtype=np.int64),
            previous=np.zeros(nq, dtype=np.int64),
            saturated=np.zeros(nq, dtype=np.int64),
        )

    def advance(
        self,
        state: SearchState,
        ef: int | np.ndarray,
        patience: int | np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        """Search (or resume) the queries ``rows`` of ``state`` (default all) until faiss'
        rule for efSearch ``ef`` (per query or one value, at most the state's capacity)
        stops them, their candidates run out, or (``patience`` >= 0) more than ``patience``
        consecutive expansions leave the k-result queue saturated."""
        rows = (
            np.arange(state.queries.shape[0], dtype=np.int64)
            if rows is None
            else np.asarray(rows, dtype=np.int64)
        )
        stop = np.broadcast_to(np.asarray(ef, dtype=np.int64), rows.shape).copy()
        if stop.size and (stop.min() < 1 or stop.max() > state.capacity):
            raise ParamError(f"efSearch must be in 1..{state.capacity} for this search state")
        stop = np.maximum(stop, 1)
        wait = np.broadcast_to(
            np.asarray(-1 if patience is None else patience, dtype=np.int64), rows.shape
        ).copy()
        self._call(state, rows, stop, wait, shared=False)

    def _call(
        self,
        state: SearchState,
        rows: np.ndarray,
        stop: np.ndarray,
        wait: np.ndarray,
        shared: bool,
    ) -> None:
        graph = self.graph
        self._run(  # type: ignore[operator]
            state.queries[rows],
            rows,
            graph.vectors,
            graph.neighbors,
            graph.offsets,
            graph.cum,
            graph.entry_point,
            graph.max_level,
            graph.inner_product,
            stop,
            wait,
            SATURATION,
            state.cand_ids,
            state.cand_dis,
            state.cand_size,
            state.cand_valid,
            state.res_ids,
            state.res_dis,
            state.visited,
            shared,
            state.ndis,
            state.nstep,
            state.status,
            state.collected,
            state.previous,
            state.saturated,
        )

    def result(self, state: SearchState, rows: np.ndarray | None = None) -> SearchResult:
        """The k best found so far for ``rows`` (default all), sorted as faiss sorts them,
        distances in annkit's convention, with the distance computations so far."""
        rows = (
            np.arange(state.queries.shape[0], dtype=np.int64)
            if rows is None
            else np.asarray(rows, dtype=np.int64)
        )
        distances = state.res_dis[rows]
        ids = state.res_ids[rows]
        tie = -1 if self.graph.inner_product else 1
        # faiss' heap_reorder: ascending distance, ties by id (descending for inner product)
        order = np.lexsort((tie * ids, distances), axis=1) if ids.size else ids
        ids = np.take_along_axis(ids, order, axis=1)
        distances = np.take_along_axis(distances, order, axis=1)
        scores = -distances if self.graph.inner_product else distances
        result = pad_result(
            ids,
            to_metric_distance(scores, self.graph.metric, not self.graph.inner_product),
        )
        return SearchResult(
            ids=result.ids,
            distances=result.distances,
            distance_computations=state.ndis[rows].copy(),
        )

    def search(
        self, queries: np.ndarray, k: int, ef: int, patience: int | None = None
    ) -> SearchResult:
        """A fresh search at efSearch ``ef`` (faiss' own search, counted), stopped earlier
        by ``patience`` when given: ids, distances and distance computations per query. One
        visited table serves the whole batch."""
        prepared = self._prepare(queries)
        nq = int(prepared.shape[0])
        capacity = max(int(ef), int(k))
        state = SearchState(
            queries=prepared,
            k=int(k),
            cand_ids=np.full((nq, capacity), -1, dtype=np.int32),
            cand_dis=np.zeros((nq, capacity), dtype=np.float32),
            cand_size=np.zeros(nq, dtype=np.int64),
            cand_valid=np.zeros(nq, dtype=np.int64),
            res_ids=np.full((nq, k), -1, dtype=np.int64),
            res_dis=np.full((nq, k), np.inf, dtype=np.float32),
            visited=np.zeros((1, (self.graph.count + 7) // 8), dtype=np.uint8),
            ndis=np.zeros(nq, dtype=np.int64),
            nstep=np.zeros(nq, dtype=np.int64),
            status=np.zeros(nq, dtype=np.int8),
            collected=np.zeros(nq, dtype=np.int64),
            previous=np.zeros(nq, dtype=np.int64),
            saturated=np.zeros(nq, dtype=np.int64),
        )
        rows = np.arange(nq, dtype=np.int64)
        wait = -1 if patience is None else int(patience)
        self._call(
            state, rows, np.full(nq, int(ef), np.int64), np.full(nq, wait, np.int64), shared=True
        )
        return self.result(state)


def kernel_for(engine: Engine) -> HnswKernel | None:
    """annkit's own search over ``engine``'s index when it is an HNSW graph over flat
    storage that annkit can read (the graph checked once, here), else None. BundleError
    for a damaged graph, InputError when numba is missing."""
    # cached per engine index object (a downcast wrapper is a new object at every call)
    held = getattr(engine, "_index", None)
    cached = getattr(engine, "_annkit_kernel", None)
    if cached is not None and cached[0] is held and cached[1].graph.count == held.ntotal:
        return cached[1]  # type: ignore[no-any-return]
    index = engine_hnsw_index(engine)
    if index is None:
        return None
    kernel = HnswKernel(read_hnsw_graph(index, engine.metric, f"{engine.name} index"))
    engine._annkit_kernel = (held, kernel)  # type: ignore[attr-defined]
    return kernel


def require_kernel(engine: Engine, what: str) -> HnswKernel:
    """:func:`kernel_for`, or a one-line ParamError saying that ``what`` needs annkit's own
    graph search (an HNSW graph over flat vectors: a faiss ``HNSW<M>,Flat`` index)."""
    kernel = kernel_for(engine)
    if kernel is None:
        raise ParamError(
            f"{what} runs inside annkit's own graph search, which needs a faiss HNSW<M>,Flat "
            f"index; this index is {engine.name} {engine.params}"
        )
    return kernel
