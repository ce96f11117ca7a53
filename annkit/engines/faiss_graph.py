"""A faiss HNSW index's graph as plain arrays, checked once when it is read.

annkit's own compiled search (:mod:`annkit.engines.hnsw_kernel`) walks these arrays without
bounds checks, so every id and offset is checked here, at load, never in the hot loop: a
graph whose arrays do not match its vectors (count, degree, levels, entry point, neighbour
ids) is refused with one line (:class:`~annkit.errors.BundleError`).

The arrays are faiss' own (``faiss/impl/HNSW.h``): ``levels[i]`` is the number of levels
node i is on (1 = the base level only); node i's neighbours on level l are
``neighbors[offsets[i] + cum[l] : offsets[i] + cum[l + 1]]``, a list ended early by -1;
``cum`` is ``cum_nneighbor_per_level``. The vectors are those of the flat storage
(normalised for angular data, as :mod:`annkit.engines.faiss` builds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from annkit.engines.base import Engine
from annkit.engines.faiss_common import faiss_module
from annkit.errors import BundleError


@dataclass(frozen=True)
class HnswGraph:
    """One HNSW graph and its vectors, checked (see :func:`check_graph`).

    ``vectors`` (n, d) float32; ``neighbors`` int32; ``offsets`` (n + 1,) int64; ``levels``
    (n,) int32; ``cum`` int32 (``cum_nneighbor_per_level``); ``entry_point`` and
    ``max_level`` ints; ``inner_product`` True when the graph ranks by inner product (annkit's
    ip metric), False for L2 (euclidean, and angular on normalised vectors); ``metric`` is
    annkit's metric name; ``owner`` keeps the faiss index alive while ``vectors`` views its
    memory."""

    vectors: np.ndarray
    neighbors: np.ndarray
    offsets: np.ndarray
    levels: np.ndarray
    cum: np.ndarray
    entry_point: int
    max_level: int
    inner_product: bool
    metric: str
    owner: Any = None

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def check_graph(
    vectors: np.ndarray,
    neighbors: np.ndarray,
    offsets: np.ndarray,
    levels: np.ndarray,
    cum: np.ndarray,
    entry_point: int,
    max_level: int,
    where: str = "index",
) -> None:
    """BundleError (one line, naming ``where``) unless the graph arrays fit the vectors:
    one level count per vector, each list where ``offsets`` and ``cum`` put it, every
    neighbour id -1 or a vector on that level, the entry point on the top level. After this
    the search can read the arrays without bounds checks."""

    def refuse(reason: str) -> BundleError:
        return BundleError(
            f"{where}: damaged HNSW graph ({reason}); rebuild the index with annkit build"
        )

    count = int(vectors.shape[0]) if vectors.ndim == 2 else -1
    if count < 1 or vectors.dtype != np.float32 or not np.isfinite(vectors).all():
        raise refuse("no vectors, or vectors that are not finite float32")
    if levels.shape != (count,):
        raise refuse(f"{levels.size} level entries for {count} vectors")
    if offsets.shape != (count + 1,):
        raise refuse(f"{offsets.size} offsets for {count} vectors")
    if cum.ndim != 1 or cum.size < 2 or cum[0] != 0 or (np.diff(cum) < 0).any():
        raise refuse("the per-level neighbour counts are not a cumulative table")
    top = int(levels.max(initial=0))
    if int(levels.min(initial=1)) < 1 or top > cum.size - 1:
        raise refuse(f"levels outside 1..{cum.size - 1}")
    if not 0 <= int(max_level) == top - 1:
        raise refuse(f"max_level {max_level} but the highest node level is {top - 1}")
    if not 0 <= int(entry_point) < count or int(levels[int(entry_point)]) != top:
        raise refuse(f"entry point {entry_point} is not a node on the top level")
    sizes = cum[levels.astype(np.int64)].astype(np.int64)
    expected = np.concatenate([[0], np.cumsum(sizes)])
    if not np.array_equal(offsets.astype(np.int64), expected) or int(expected[-1]) != int(
        neighbors.size
    ):
        raise refuse(
            f"offsets do not match the levels and per-level degrees "
            f"({neighbors.size} neighbour slots)"
        )
    if neighbors.size and (int(neighbors.min()) < -1 or int(neighbors.max()) >= count):
        raise refuse(f"a neighbour id outside -1..{count - 1}")
    # the level of every slot: node i's slots cum[l]..cum[l+1] are on level l
    per_level = np.diff(cum).astype(np.int64)
    slot_level_of = np.repeat(np.arange(per_level.size, dtype=np.int32), per_level)
    starts = offsets[:-1].astype(np.int64)
    owner = np.repeat(np.arange(count, dtype=np.int64), sizes)
    within = np.arange(neighbors.size, dtype=np.int64) - starts[owner]
    slot_level = slot_level_of[within]
    linked = neighbors >= 0
    if (levels[neighbors[linked]] <= slot_level[linked]).any():
        raise refuse("a neighbour on a level its node is not on")


def _array(vector: Any, dtype: Any) -> np.ndarray:
    faiss = faiss_module()
    return np.asarray(faiss.vector_to_array(vector)).astype(dtype, copy=False)


def read_hnsw_graph(index: Any, metric: str, where: str = "index") -> HnswGraph:
    """The checked graph of a faiss ``IndexHNSWFlat`` (BundleError when it is damaged or is
    another kind of index). ``metric`` is annkit's metric of the index."""
    faiss = faiss_module()
    index = faiss.downcast_index(index)
    if not isinstance(index, faiss.IndexHNSW):
        raise BundleError(f"{where}: not a faiss HNSW graph ({type(index).__name__})")
    storage = faiss.downcast_index(index.storage)
    if not isinstance(storage, faiss.IndexFlat) or isinstance(storage, faiss.IndexHNSW):
        raise BundleError(
            f"{where}: annkit's own HNSW search needs flat storage (HNSWxx,Flat), not "
            f"{type(storage).__name__}"
        )
    hnsw = index.hnsw
    count, dim = int(storage.ntotal), int(storage.d)
    if count < 1:
        raise BundleError(f"{where}: the HNSW graph holds no vectors")
    if int(index.ntotal) != count or int(index.d) != dim:
        raise BundleError(
            f"{where}: damaged HNSW graph ({index.ntotal} nodes of dimension {index.d}, "
            f"{count} stored vectors of dimension {dim}); rebuild the index with annkit build"
        )
    codes = faiss.vector_to_array(storage.codes)
    if codes.size != count * dim * 4:
        raise BundleError(f"{where}: damaged HNSW graph (storage holds {codes.size} bytes)")
    vectors = codes.view(np.float32).reshape(count, dim)
    neighbors = _array(hnsw.neighbors, np.int32)
    offsets = _array(hnsw.offsets, np.int64)
    levels = _array(hnsw.levels, np.int32)
    cum = _array(hnsw.cum_nneighbor_per_level, np.int32)
    check_graph(
        vectors,
        neighbors,
        offsets,
        levels,
        cum,
        int(hnsw.entry_point),
        int(hnsw.max_level),
        where,
    )
    inner_product = int(index.metric_type) == int(faiss.METRIC_INNER_PRODUCT)
    if inner_product != (metric == "ip"):
        raise BundleError(f"{where}: the HNSW graph's metric does not match {metric!r}")
    return HnswGraph(
        vectors=vectors,
        neighbors=neighbors,
        offsets=offsets,
        levels=levels,
        cum=cum,
        entry_point=int(hnsw.entry_point),
        max_level=int(hnsw.max_level),
        inner_product=inner_product,
        metric=metric,
        owner=index,
    )


def engine_hnsw_index(engine: Engine) -> Any | None:
    """The faiss IndexHNSWFlat an engine searches with nothing around it (no refine stage,
    transform or id map), or None when the engine holds something else."""
    index = getattr(engine, "_index", None)
    if index is None or engine.name != "faiss":
        return None
    faiss = faiss_module()
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW) and isinstance(
        faiss.downcast_index(index.storage), faiss.IndexFlat
    ):
        return index
    return None
