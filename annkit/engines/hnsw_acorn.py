"""A filtered traversal of a faiss HNSW graph in the manner of ACORN (Patel et al.,
SIGMOD'24): the ``acorn`` filter strategy of annkit's own graph search.

A search with an id filter through an ordinary HNSW graph (faiss' IDSelector) walks the
whole graph and computes the distance of every node it meets, passing or not, and only
keeps the passing ones as results. When few vectors pass, most of that work is wasted, and
the passing nodes may not be connected to each other at all. ACORN's answer, used here on
the graph as faiss built it (ACORN-1: no denser graph at build time):

- only nodes that pass the filter are evaluated (a distance) and kept as candidates;
- expanding a node reads its level-0 neighbours; a neighbour that fails the filter is not
  evaluated, but its own neighbours are read in its place (two hops), so the search can
  cross failing regions;
- the evaluated list of one expansion is cut at the level-0 degree (2M), as ACORN
  truncates its expanded lists.

The upper levels are descended greedily without the filter, as in an unfiltered search;
the node reached starts level 0 even when it fails the filter (its distance is already
known), and is never a result. Level 0 is a best-first search with ``efSearch`` results
(the usual HNSW ``search_layer``): stop when the best candidate is worse than the worst of
ef results. Work is every distance computed (the descent's and the passing nodes'), so it
compares with faiss' own counter for IDSelector searches.

A filter so selective that no passing node is within two hops of where the search goes
returns fewer than k: recall shows it, per selectivity band (and ``auto`` sends such
queries to ``subset``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from annkit.engines.base import Engine, pad_result
from annkit.engines.faiss_graph import HnswGraph
from annkit.engines.flat import to_metric_distance
from annkit.engines.hnsw_kernel import (
    compiled_descent,
    compiled_distance,
    compiled_jit,
    kernel_for,
    numba_available,
)
from annkit.errors import InputError, ParamError
from annkit.faiss_util import prepare
from annkit.types import SearchResult

#: what the strategy needs, for the message refusing it
ACORN_NEEDS = "an HNSW graph over flat vectors that annkit's own search can read (and numba)"
#: efSearch when the engine's query parameters do not set one (faiss' default)
DEFAULT_EF = 16

_COMPILED: dict[str, object] = {}


def _compiled() -> object:
    """The compiled filtered traversal (numba), compiled once per process (cached on disk)."""
    if "run" in _COMPILED:
        return _COMPILED["run"]
    jit = compiled_jit()
    distance = compiled_distance()
    descend = compiled_descent()

    @jit
    def push(heap_d, heap_i, size, value, node):  # type: ignore[no-untyped-def]
        # max-heap on heap_d; returns the new size
        i = size
        heap_d[i] = value
        heap_i[i] = node
        while i > 0:
            parent = (i - 1) >> 1
            if heap_d[parent] >= heap_d[i]:
                break
            heap_d[parent], heap_d[i] = heap_d[i], heap_d[parent]
            heap_i[parent], heap_i[i] = heap_i[i], heap_i[parent]
            i = parent
        return size + 1

    @jit
    def pop(heap_d, heap_i, size):  # type: ignore[no-untyped-def]
        # drops the top of a max-heap; returns the new size
        size -= 1
        heap_d[0] = heap_d[size]
        heap_i[0] = heap_i[size]
        i = 0
        while True:
            left = 2 * i + 1
            right = left + 1
            top = i
            if left < size and heap_d[left] > heap_d[top]:
                top = left
            if right < size and heap_d[right] > heap_d[top]:
                top = right
            if top == i:
                break
            heap_d[top], heap_d[i] = heap_d[i], heap_d[top]
            heap_i[top], heap_i[i] = heap_i[i], heap_i[top]
            i = top
        return size

    @jit
    def run(  # type: ignore[no-untyped-def]
        queries,
        vectors,
        neighbors,
        offsets,
        cum,
        entry_point,
        max_level,
        inner_product,
        ef,
        allowed,
        first_stamp,
        out_ids,
        out_dis,
        ndis,
        seen,
        cand_d,
        cand_i,
        res_d,
        res_i,
        hop,
    ):
        level0 = cum[1]
        k = out_ids.shape[1]
        for q in range(queries.shape[0]):
            query = queries[q]
            stamp = first_stamp + q
            nearest, d_nearest, counted = descend(
                query, vectors, neighbors, offsets, cum, entry_point, max_level, inner_product
            )
            ndis[q] += counted
            seen[nearest] = stamp
            cand_size = push(cand_d, cand_i, 0, -d_nearest, nearest)
            res_size = 0
            if allowed[nearest]:
                res_size = push(res_d, res_i, 0, d_nearest, nearest)
            while cand_size > 0:
                best_d = -cand_d[0]
                node0 = cand_i[0]
                if res_size >= ef and best_d > res_d[0]:
                    break
                cand_size = pop(cand_d, cand_i, cand_size)
                count = 0
                begin = offsets[node0]
                for j in range(begin, begin + level0):
                    node = neighbors[j]
                    if node < 0 or count >= level0:
                        break
                    if allowed[node]:
                        if seen[node] != stamp:
                            seen[node] = stamp
                            hop[count] = node
                            count += 1
                        continue
                    second = offsets[node]
                    for j2 in range(second, second + level0):
                        other = neighbors[j2]
                        if other < 0 or count >= level0:
                            break
                        if allowed[other] and seen[other] != stamp:
                            seen[other] = stamp
                            hop[count] = other
                            count += 1
                for t in range(count):
                    node = hop[t]
                    ndis[q] += 1
                    d = distance(query, vectors, node, inner_product)
                    if res_size < ef or d < res_d[0]:
                        cand_size = push(cand_d, cand_i, cand_size, -d, node)
                        res_size = push(res_d, res_i, res_size, d, node)
                        if res_size > ef:
                            res_size = pop(res_d, res_i, res_size)
            # the k best of the ef results, ascending (ties by id)
            order = np.argsort(res_d[:res_size] + np.float32(0.0), kind="mergesort")
            width = min(k, res_size)
            for t in range(width):
                out_dis[q, t] = res_d[order[t]]
                out_ids[q, t] = res_i[order[t]]

    _COMPILED["run"] = run
    return run


class Buffers:
    """Work arrays of one graph's traversals, kept between calls: the visited stamps (a
    node is visited by the current query when its stamp is the query's) and the candidate
    heap, both one slot per node."""

    def __init__(self, count: int) -> None:
        self.seen = np.zeros(count, dtype=np.int64)
        self.cand_d = np.zeros(count + 1, dtype=np.float32)
        self.cand_i = np.zeros(count + 1, dtype=np.int64)
        self.next_stamp = 1

    def stamps(self, queries: int) -> int:
        """The first of ``queries`` fresh stamps."""
        first = self.next_stamp
        self.next_stamp += queries
        return first


def acorn_search(
    graph: HnswGraph,
    queries: np.ndarray,
    k: int,
    ef: int,
    allowed: np.ndarray,
    buffers: Buffers | None = None,
) -> SearchResult:
    """The filtered traversal of ``graph`` for ``queries`` (nq, d): the k best among the
    base ids ``allowed`` (ascending) at efSearch ``ef`` (at least k), with every distance
    computed per query. ``buffers`` (of this graph) saves allocating per call."""
    if k < 1 or ef < 1:
        raise ParamError(f"k and efSearch must be >= 1, got {k}, {ef}")
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != graph.dim:
        raise InputError(f"queries have shape {queries.shape}, the index has dimension {graph.dim}")
    allowed = np.asarray(allowed, dtype=np.int64)
    if allowed.size and (allowed[0] < 0 or allowed[-1] >= graph.count):
        raise InputError(f"filter ids must be in 0..{graph.count - 1}")
    prepared = np.ascontiguousarray(prepare(queries, graph.metric))
    nq, n, ef = int(prepared.shape[0]), graph.count, max(int(ef), int(k))
    buffers = buffers if buffers is not None else Buffers(n)
    mask = np.zeros(n, dtype=np.bool_)
    mask[allowed] = True
    ids = np.full((nq, k), -1, dtype=np.int64)
    scores = np.full((nq, k), np.inf, dtype=np.float32)
    counts = np.zeros(nq, dtype=np.int64)
    run = _compiled()
    run(  # type: ignore[operator]
        prepared,
        graph.vectors,
        graph.neighbors,
        graph.offsets,
        graph.cum,
        graph.entry_point,
        graph.max_level,
        graph.inner_product,
        ef,
        mask,
        buffers.stamps(nq),
        ids,
        scores,
        counts,
        buffers.seen,
        buffers.cand_d,
        buffers.cand_i,
        np.zeros(ef + 2, dtype=np.float32),
        np.zeros(ef + 2, dtype=np.int64),
        np.zeros(int(graph.cum[1]) + 1, dtype=np.int64),
    )
    found = ids >= 0
    raw = -scores if graph.inner_product else scores
    distances = np.where(
        found, to_metric_distance(raw, graph.metric, not graph.inner_product), np.inf
    ).astype(np.float32)
    result = pad_result(ids, distances)
    return SearchResult(ids=result.ids, distances=result.distances, distance_computations=counts)


def acorn_filter(engine: Engine) -> Callable[[np.ndarray, int, np.ndarray], SearchResult] | None:
    """The ``acorn`` filtered search of ``engine`` at its current efSearch, or None when
    annkit's own graph search cannot read its index (not an HNSW graph over flat vectors,
    or numba missing)."""
    if not numba_available():
        return None
    kernel = kernel_for(engine)
    if kernel is None:
        return None
    graph = kernel.graph
    buffers = getattr(kernel, "acorn_buffers", None)
    if buffers is None:
        buffers = Buffers(graph.count)
        kernel.acorn_buffers = buffers  # type: ignore[attr-defined]

    def search(queries: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        ef = int(engine.query.get("efSearch", DEFAULT_EF))
        return acorn_search(graph, queries, k, ef, allowed, buffers)

    return search
