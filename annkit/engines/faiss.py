"""Any faiss index described by an ``index_factory`` string ("IVF1024,PQ48x4fs,RFlat",
"HNSW32,Flat", "OPQ48_192,IVF4096,PQ48", "IVF1024,SQ8", "Flat", ...).

The query knobs follow from the factory string (:func:`factory_query_specs`): ``nprobe`` for
an inverted file, ``efSearch`` for an HNSW graph, ``quantizer_efSearch`` for an HNSW coarse
quantizer (``IVF4096_HNSW32``), ``k_factor`` for a refine stage (``RFlat`` / ``Refine(...)``).
Every search passes faiss' own SearchParameters objects, so no setting leaks into the next.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, pad_result, register
from annkit.engines.faiss_common import faiss_module as _faiss
from annkit.engines.faiss_common import (
    faiss_threads,
    faiss_version,
    id_selector,
    prepare,
    read_index,
    write_index,
)
from annkit.engines.faiss_factory_string import (
    FactoryShape,
    check_factory,
    check_factory_syntax,
    check_training_size,
    factory_nlist,
    factory_query_specs,
    faiss_reason,
    parse_factory,
)
from annkit.engines.flat import to_metric_distance
from annkit.errors import EngineError, ParamError
from annkit.types import SearchResult

PAYLOAD = "index.faiss"
_ADD_BLOCK = 131_072


def _downcast(index: Any) -> Any:
    faiss = _faiss()

    return faiss.downcast_index(index)


@register
class FaissFactoryEngine(Engine):
    """A faiss index from an ``index_factory`` string; build ``factory``, ``train_size``,
    ``seed``, ``efConstruction`` (HNSW only).

    Angular vectors are normalised and searched with L2 (faiss' usual choice for quantizers);
    ip uses faiss' inner product; distances come back in annkit's convention.

    Distance computations (``SearchResult.distance_computations``), exact per query:
    an inverted file costs ``nlist`` for its flat coarse quantizer (or the HNSW quantizer's
    own count) plus the size of every list it scans (faiss' ``indexIVF_stats.ndis``; for
    fast-scan codes too: every code in a probed list is compared); an HNSW graph costs faiss'
    ``hnsw_stats.ndis``; a flat, SQ or PQ scan costs ``n``; a refine stage adds one exact
    distance per candidate the base index returned (at most ``k_factor * k``). Transforms
    (OPQ, PCA, ...) are matrix products, not distance computations. Index kinds outside this
    list (IMI, NSG, LSH, residual quantizers, ...) report None.

    faiss' counters are process-wide totals per search call, never per query. An inverted
    file with a flat quantizer is counted from one extra batched quantizer search (the same
    call faiss makes inside the batch search, so the same probed lists). Where a graph is
    searched (HNSW, or an HNSW quantizer), a one-query search reads the counters around that
    very call (reset before it; one thread, so nothing else moves them); a batch is searched
    untouched and then counted in a separate pass, one query per call with the counters
    reset. Single-threaded search is deterministic, so the counting pass does exactly what
    the batch did. Counting that costs work beyond the search is skipped inside
    :meth:`uncounted` (timed passes); :meth:`count_distances` then searches again, counting.
    Not
    counted
    (None): a refine stage over an HNSW graph (faiss does not say how many candidates the
    graph returned).
    """

    name = "faiss"
    description = "any faiss index_factory string (IVF, PQ fast-scan, HNSW, OPQ, SQ, refine)"
    build_specs = {
        "factory": ParamSpec(str, "HNSW32,Flat", "faiss index_factory string"),
        "train_size": ParamSpec(
            int, None, "training sample size (default min(n, max(65536, 64*nlist)))", minimum=1
        ),
        "seed": ParamSpec(
            int, 1234, "seed for the training sample, k-means and HNSW levels", minimum=0
        ),
        "efConstruction": ParamSpec(
            int, None, "HNSW candidate list while building (faiss default 40)", minimum=1
        ),
    }
    counts_distances = True
    contract_settings = ({"factory": "IVF64,Flat"}, {"nprobe": 32})
    small_contract_settings = ({"factory": "IVF4,PQ4x4fs,RFlat"}, {"nprobe": 4, "k_factor": 100})
    max_search_threads = None  # faiss OpenMP threads over the batch
    #: an inverted file takes ids and remove_ids itself, a flat / SQ / PQ scan through an
    #: id map (IndexIDMap); an HNSW graph or a refine stage only inserts (changes_for)
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        # only what holds for any dimension: callers may validate params with a placeholder
        # dimension before reading the data; build() checks the real one
        check_factory_syntax(self.params["factory"])
        self._shape = parse_factory(self.params["factory"])
        if self.params["efConstruction"] is not None and self._shape.kind != "hnsw":
            raise ParamError(
                f"faiss: efConstruction applies to HNSW graphs only, not to "
                f"{self.params['factory']!r}"
            )
        self._index: Any = None
        self._layout_of: tuple[Any, tuple[bool, Any, str | None]] | None = None
        #: (index, query params, SearchParameters, the objects they hold): built once per
        #: index and setting, so a single-query search is a bare faiss call
        self._params_of: tuple[Any, tuple, Any, list[Any]] | None = None

    def built_params(self) -> dict[str, Any]:
        """Build params as built: efConstruction resolved for HNSW graphs, left out for the
        other kinds (it does not apply to them)."""
        params = dict(self.params)
        if params["efConstruction"] is None:
            del params["efConstruction"]
        return params

    @classmethod
    def query_specs(cls, build_params: Any) -> dict[str, ParamSpec]:
        factory = str(build_params.get("factory") or cls.build_specs["factory"].default)
        check_factory_syntax(factory)  # a string faiss cannot parse has no knobs to name
        return factory_query_specs(factory)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """nprobe 1..nlist doubling, or efSearch from k to 32k doubling."""
        if self._shape.kind == "ivf":
            nlist = self._nlist()
            values = {min(nlist, 2**p) for p in range(0, max(1, int(math.log2(nlist))) + 1)}
            return sorted(values | {nlist})
        if self._shape.kind == "hnsw":
            return sorted({min(max(k, 8) * 2**p, max(n_base, k)) for p in range(0, 6)})
        return super().effort_grid(k, n_base)

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        nlist = max(1, min(4 * round(math.sqrt(n_base)), n_base // 39))
        return {"factory": [f"IVF{nlist},Flat", "HNSW32,Flat"]}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return faiss_version()

    def _nlist(self) -> int:
        faiss = _faiss()

        if self._index is not None:
            return int(faiss.extract_index_ivf(self._index).nlist)
        return factory_nlist(self.params["factory"])

    def estimate_build_bytes(self, count: int) -> int:
        train = min(count, self.params["train_size"] or max(65_536, 64 * self._nlist()))
        vectors = count * self.dim * 4  # upper bound: Flat storage, or a refine copy
        graph = count * 32 * 2 * 4 if "HNSW" in self.params["factory"] else 0
        return int(
            vectors + graph + 2 * train * self.dim * 4 + min(count, _ADD_BLOCK) * self.dim * 4
        )

    # ------------------------------------------------------------------ build

    def _faiss_metric(self) -> int:
        faiss = _faiss()

        return faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2

    def _seed_everything(self, index: Any, seed: int) -> None:
        """Seed every k-means and level generator reachable from ``index``."""
        faiss = _faiss()

        index = _downcast(index)
        if hasattr(index, "cp"):
            index.cp.seed = seed
        if hasattr(index, "pq"):
            index.pq.cp.seed = seed
        if hasattr(index, "hnsw"):
            index.hnsw.rng = faiss.RandomGenerator(seed)
            if self.params["efConstruction"] is not None:
                index.hnsw.efConstruction = self.params["efConstruction"]
        for attribute in ("quantizer", "base_index", "index"):
            if hasattr(index, attribute) and getattr(index, attribute) is not None:
                self._seed_everything(getattr(index, attribute), seed)

    def _trained_index(self, vectors: np.ndarray, threads: int) -> Any:
        """A new faiss index of the factory string, seeded and trained on a seeded sample of
        at most ``train_size`` of ``vectors`` (empty: nothing added yet)."""
        faiss = _faiss()

        count = int(vectors.shape[0])
        p = self.params
        check_factory(p["factory"], self.dim)
        train = min(count, p["train_size"] or max(65_536, 64 * self._nlist()))
        p["train_size"] = train
        check_training_size(p["factory"], count, train)
        try:
            index = faiss.index_factory(self.dim, p["factory"], self._faiss_metric())
        except RuntimeError as exc:
            raise ParamError(
                f"faiss rejects index_factory string {p['factory']!r}: {faiss_reason(exc)}"
            ) from None
        self._seed_everything(index, p["seed"])
        try:
            with faiss_threads(threads):
                if not index.is_trained:
                    rng = np.random.default_rng(p["seed"])
                    sample = np.sort(rng.choice(count, size=train, replace=False))
                    index.train(prepare(vectors[sample], self.metric))
        except RuntimeError as exc:
            raise EngineError(
                f"faiss could not build {p['factory']!r}: {faiss_reason(exc)}"
            ) from None
        return index

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        count = int(base.shape[0])
        index = self._trained_index(base, threads)
        try:
            with faiss_threads(threads):
                for start in range(0, count, _ADD_BLOCK):
                    index.add(prepare(base[start : start + _ADD_BLOCK], self.metric))
        except RuntimeError as exc:
            raise EngineError(
                f"faiss could not build {self.params['factory']!r}: {faiss_reason(exc)}"
            ) from None
        self._index = index
        self.count = count
        if self._shape.kind == "hnsw":
            self.params["efConstruction"] = int(self._layout()[1].hnsw.efConstruction)

    # ------------------------------------------------------------------ changes

    @classmethod
    def changes_for(cls, build_params: Any) -> tuple[tuple[str, ...], str]:
        """An HNSW graph and a refine stage cannot delete (faiss has no remove_ids for
        them): they take inserts only."""
        factory = str(build_params.get("factory") or cls.build_specs["factory"].default)
        shape = parse_factory(factory)
        if shape.kind == "hnsw":
            return ("insert",), f"a faiss HNSW graph ({factory}) cannot delete"
        if shape.refine:
            return ("insert",), f"a faiss refine stage ({factory}) cannot delete"
        return cls.changes, ""

    def build_changeable(
        self, vectors: np.ndarray, ids: np.ndarray, capacity: int, threads: int = 1
    ) -> None:
        """Train on ``vectors`` (a seeded sample of at most ``train_size``), then add them
        under ``ids``: an inverted file keeps the ids itself, any other index sits in an
        IndexIDMap."""
        faiss = _faiss()

        index = self._trained_index(vectors, threads)
        if self._shape.kind != "ivf":
            index = faiss.IndexIDMap(index)
        self._index = index
        self.count = 0
        if self._shape.kind == "hnsw":
            self.params["efConstruction"] = int(self._layout()[1].hnsw.efConstruction)
        self.insert(vectors, ids, threads)

    def insert(self, vectors: np.ndarray, ids: np.ndarray, threads: int = 1) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        try:
            with faiss_threads(threads):
                for start in range(0, len(ids), _ADD_BLOCK):
                    rows = prepare(vectors[start : start + _ADD_BLOCK], self.metric)
                    self._index.add_with_ids(rows, ids[start : start + len(rows)])
        except RuntimeError as exc:
            raise EngineError(f"faiss could not insert: {faiss_reason(exc)}") from None
        self.count = int(self._index.ntotal)

    def delete(self, ids: np.ndarray) -> None:
        if self.changes_for(self.params)[0] == ("insert",):
            raise EngineError(f"engine {self.name}: {self.changes_for(self.params)[1]}")
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        try:
            removed = int(self._index.remove_ids(ids))
        except RuntimeError as exc:
            raise EngineError(f"faiss could not delete: {faiss_reason(exc)}") from None
        if removed != len(ids):
            raise EngineError(f"faiss removed {removed} of {len(ids)} ids (some were not live)")
        self.count = int(self._index.ntotal)

    def index_memory_bytes(self) -> int | None:
        """The size of faiss' serialisation of the index (vectors or codes, lists, ids)."""
        if self._index is None:
            return None
        return int(_faiss().serialize_index(self._index).nbytes)

    # ------------------------------------------------------------------ search

    def _search_params(self, index: Any, keep: list[Any]) -> Any:
        """faiss SearchParameters for ``index`` from ``self.query`` (``keep`` holds every
        object created, so none is freed while faiss uses it)."""
        faiss = _faiss()

        index = _downcast(index)
        params: Any = None
        if isinstance(index, faiss.IndexRefine):
            params = faiss.IndexRefineSearchParameters(k_factor=float(self.query["k_factor"]))
            base = self._search_params(index.base_index, keep)
            if base is not None:
                params.base_index_params = base
        elif isinstance(index, faiss.IndexIDMap):  # a changeable index's id map
            params = self._search_params(index.index, keep)
        elif isinstance(index, faiss.IndexPreTransform):
            inner = self._search_params(index.index, keep)
            if inner is not None:
                params = faiss.SearchParametersPreTransform()
                params.index_params = inner
        elif isinstance(index, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(nprobe=min(self.query["nprobe"], index.nlist))
            quantizer = _downcast(index.quantizer)
            if isinstance(quantizer, faiss.IndexHNSW) and "quantizer_efSearch" in self.query:
                quantizer_params = faiss.SearchParametersHNSW(
                    efSearch=self.query["quantizer_efSearch"]
                )
                keep.append(quantizer_params)
                params.quantizer_params = quantizer_params
        elif isinstance(index, faiss.IndexHNSW) and "efSearch" in self.query:
            params = faiss.SearchParametersHNSW(efSearch=self.query["efSearch"])
        if params is not None:
            keep.append(params)
        return params

    def _layout(self) -> tuple[bool, Any, str | None]:
        """(has a refine stage, the index under refine and transforms, how to count it):
        "scan" (every vector), "ivf" (flat coarse quantizer: counted from the probed
        lists), "per_call" (HNSW graph or HNSW quantizer: faiss' counters, one query per
        call) or None (faiss cannot count this kind). Worked out once per index."""
        if self._layout_of is not None and self._layout_of[0] is self._index:
            return self._layout_of[1]
        faiss = _faiss()

        index = _downcast(self._index)
        if isinstance(index, faiss.IndexIDMap):  # a changeable index's id map
            index = _downcast(index.index)
        refine = isinstance(index, faiss.IndexRefine)
        if refine:
            index = _downcast(index.base_index)
        while isinstance(index, faiss.IndexPreTransform):
            index = _downcast(index.index)
        how: str | None = None
        if isinstance(index, faiss.IndexIVF) and not isinstance(index, faiss.IndexIVFFlatDedup):
            quantizer = _downcast(index.quantizer)
            if isinstance(quantizer, faiss.IndexFlat):
                how = "ivf"
            elif isinstance(quantizer, faiss.IndexHNSW):
                how = "per_call"
        elif isinstance(index, faiss.IndexHNSW):
            how = None if refine else "per_call"  # faiss does not say how many candidates
        elif isinstance(
            index, faiss.IndexFlat | faiss.IndexScalarQuantizer | faiss.IndexPQFastScan
        ) or (isinstance(index, faiss.IndexPQ) and index.search_type == faiss.IndexPQ.ST_PQ):
            how = "scan"
        self._layout_of = (self._index, (refine, index, how))
        return refine, index, how

    def work_unit(self) -> str:
        """``PQ code distances`` when the scanned index (under a refine stage and
        transforms, see :meth:`_layout`) compares product-quantizer codes: PQ, IVF-PQ, their
        fast-scan forms (4-bit codes compared 32 at a time) and an HNSW graph over PQ
        storage; ``code distances`` for other fast-scan codes; else plain distance
        computations (flat, SQ, IVF-flat, HNSW-flat). The count also holds the coarse
        quantizer's and a refine stage's exact distances, few beside the codes."""
        faiss = _faiss()
        index = self._layout()[1]
        if isinstance(index, faiss.IndexHNSW):
            index = _downcast(index.storage)
        if isinstance(index, faiss.IndexIVFPQ | faiss.IndexPQ) or (
            isinstance(index, faiss.IndexFastScan | faiss.IndexIVFFastScan) and hasattr(index, "pq")
        ):
            return "PQ code distances"
        if isinstance(index, faiss.IndexFastScan | faiss.IndexIVFFastScan):
            return "code distances"
        return super().work_unit()

    def _setting_params(self) -> Any:
        """faiss SearchParameters of the current index and query params, built on first
        use and kept (with every object they hold) until either changes."""
        setting = tuple(sorted(self.query.items()))
        cached = self._params_of
        if cached is None or cached[0] is not self._index or cached[1] != setting:
            keep: list[Any] = []
            params = self._search_params(self._index, keep)
            cached = (self._index, setting, params, keep)
            self._params_of = cached
        return cached[2]

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        prepared = prepare(queries, self.metric)
        params = self._setting_params()
        refine, inner, how = self._layout()
        k_base = int(k * float(self.query["k_factor"])) if refine else k
        counts: np.ndarray | None = None
        with faiss_threads(self.search_threads):
            if how == "per_call" and len(prepared) == 1 and self.counting:
                scores, ids, counts = self._search_counted(prepared, k, params, refine, k_base)
            else:
                scores, ids = self._index.search(prepared, k, params=params)
                if how == "scan" or (how is not None and self.counting):
                    counts = self._counts(prepared, k, params, how)
        result = pad_result(ids, to_metric_distance(scores, self.metric, self.metric != "ip"))
        return replace(result, distance_computations=counts)

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing as a bare faiss call: the queries
        prepared once (float32, unit rows for angular), the setting's SearchParameters built
        once, faiss' OpenMP pool set once around the loop; no counting, no conversion (the
        untimed :meth:`search` gives results and counts)."""
        if type(self).search is not FaissFactoryEngine.search:  # a subclass searches its way
            with super().single_queries(queries, k) as path:
                yield path
            return
        prepared = prepare(queries, self.metric)
        search = functools.partial(self._index.search, k=k, params=self._setting_params())
        with faiss_threads(self.search_threads):
            yield [prepared[row : row + 1] for row in range(len(prepared))], search

    def search_filtered(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        """The native filtered strategy: faiss' own search with an IDSelector admitting the
        ``allowed`` ids (ascending) in its SearchParameters (HNSW, IVF including fast-scan,
        flat). Counted one query per call from faiss' counters where the index can be
        counted (every distance faiss computed, the ones to vectors that fail included)."""
        prepared = prepare(queries, self.metric)
        keep: list[Any] = []
        selector = id_selector(allowed, int(self._index.ntotal), keep)
        params = _with_selector(self._search_params(self._index, keep), selector, keep)
        refine, inner, how = self._layout()
        k_base = int(k * float(self.query["k_factor"])) if refine else k
        counts: np.ndarray | None = None
        with faiss_threads(self.search_threads):
            if how == "per_call" and self.counting:
                scores, ids, counts = self._search_counted(prepared, k, params, refine, k_base)
            else:
                scores, ids = self._index.search(prepared, k, params=params)
        if how == "scan":  # the selector skips failing vectors before their distance
            counts = np.full(len(prepared), len(allowed), dtype=np.int64)
            counts += min(k_base, len(allowed)) if refine else 0
        elif how == "ivf" and self.counting:
            counts = self._count_ivf_filtered(inner, prepared, allowed, k_base, refine)
        result = pad_result(ids, to_metric_distance(scores, self.metric, self.metric != "ip"))
        return replace(result, distance_computations=counts)

    def _count_ivf_filtered(
        self, ivf: Any, prepared: np.ndarray, allowed: np.ndarray, k_base: int, refine: bool
    ) -> np.ndarray:
        """Per query: nlist (the coarse quantizer) + the allowed entries of the probed lists
        (faiss skips the others before computing their distance) + a refine stage's
        re-ranked candidates."""
        faiss = _faiss()

        lists = self._probed_lists(ivf, prepared, refine)
        mask = np.zeros(int(ivf.ntotal), dtype=bool)
        mask[allowed] = True
        passing = np.zeros(ivf.nlist, dtype=np.int64)
        for number in np.unique(lists[lists >= 0]).tolist():
            size = ivf.invlists.list_size(number)
            if size:
                ids = faiss.rev_swig_ptr(ivf.invlists.get_ids(number), size)
                passing[number] = np.count_nonzero(mask[np.asarray(ids, dtype=np.int64)])
        scanned = np.where(lists >= 0, passing[np.maximum(lists, 0)], 0).sum(axis=1)
        counts = scanned + ivf.nlist
        if refine:
            counts += np.minimum(scanned, k_base)
        return counts.astype(np.int64)

    def count_distances(self, queries: np.ndarray, k: int) -> np.ndarray | None:
        """The exact per-query counts alone: faiss' counters (one query per call) or the
        probed list sizes, without the batch search :meth:`search` would make first (its
        results are not needed: the counts are what that search does). A subclass that
        searches differently is counted through its own :meth:`search`."""
        if type(self).search is not FaissFactoryEngine.search:
            return super().count_distances(queries, k)
        _, _, how = self._layout()
        if how is None:
            return None
        with faiss_threads(self.search_threads):
            return self._counts(prepare(queries, self.metric), k, self._setting_params(), how)

    def _counts(self, prepared: np.ndarray, k: int, params: Any, how: str) -> np.ndarray:
        """Per-query distance computations of searching ``prepared`` the way ``how`` says
        (per_call: one counted query per call; ivf: the probed list sizes; scan: n)."""
        refine, inner, _ = self._layout()
        k_base = int(k * float(self.query["k_factor"])) if refine else k
        if how == "per_call":
            return self._search_counted(prepared, k, params, refine, k_base)[2]
        if how == "ivf":
            return self._count_ivf(inner, prepared, k_base, refine)
        counts = np.full(len(prepared), inner.ntotal, dtype=np.int64)
        if refine:
            counts += min(k_base, inner.ntotal)
        return counts

    def _search_counted(
        self, prepared: np.ndarray, k: int, params: Any, refine: bool, k_base: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Search one query per call, reading faiss' process-wide counters (reset before
        each call) after it: (scores, ids, exact count per query)."""
        faiss = _faiss()

        ivf_stats, hnsw_stats = faiss.cvar.indexIVF_stats, faiss.cvar.hnsw_stats
        nq = len(prepared)
        scores = np.empty((nq, k), dtype=np.float32)
        ids = np.empty((nq, k), dtype=np.int64)
        counts = np.empty(nq, dtype=np.int64)
        search = self._index.search
        for row in range(nq):
            ivf_stats.reset()
            hnsw_stats.reset()
            row_scores, row_ids = search(prepared[row : row + 1], k, params=params)
            scores[row], ids[row] = row_scores[0], row_ids[0]
            scanned = int(ivf_stats.ndis)
            # a refine stage re-ranks every candidate the inverted file found (at most k_base)
            counts[row] = scanned + int(hnsw_stats.ndis) + (min(k_base, scanned) if refine else 0)
        return scores, ids, counts

    def _probed_lists(self, ivf: Any, prepared: np.ndarray, refine: bool) -> np.ndarray:
        """(nq, nprobe) the inverted lists each query probes: one batched quantizer search
        (after the index's transforms), the same call faiss makes inside its search."""
        faiss = _faiss()

        transformed = prepared
        index = _downcast(self._index)
        if refine:
            index = _downcast(index.base_index)
        while isinstance(index, faiss.IndexPreTransform):
            for position in range(index.chain.size()):
                transformed = index.chain.at(position).apply(transformed)
            index = _downcast(index.index)
        _, lists = ivf.quantizer.search(transformed, min(self.query["nprobe"], ivf.nlist))
        return np.asarray(lists)

    def _count_ivf(self, ivf: Any, prepared: np.ndarray, k_base: int, refine: bool) -> np.ndarray:
        """Per query: nlist (the flat coarse quantizer) + the sizes of the probed lists
        (+ the candidates a refine stage re-ranks). The probed lists come from one batched
        quantizer search, the same call faiss makes inside the batch search."""
        lists = self._probed_lists(ivf, prepared, refine)
        sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)], dtype=np.int64)
        scanned = np.where(lists >= 0, sizes[np.maximum(lists, 0)], 0).sum(axis=1)
        counts = scanned + ivf.nlist
        if refine:
            counts += np.minimum(scanned, k_base)
        return counts.astype(np.int64)

    # ------------------------------------------------------------------ files

    def save(self, directory: Path) -> list[str]:
        write_index(self._index, directory / PAYLOAD)
        return [PAYLOAD]

    @classmethod
    def load(
        cls, directory: Path, metric: str, dim: int, count: int, params: dict
    ) -> FaissFactoryEngine:
        engine = cls(metric, dim, **params)
        index = read_index(directory / PAYLOAD)
        if index.d != dim or index.ntotal != count:
            raise EngineError(
                f"{directory / PAYLOAD}: holds {index.ntotal} vectors of "
                f"dimension {index.d}, manifest says {count} of dimension {dim}"
            )
        engine._index = index
        engine.count = count
        engine._check_structure(directory / PAYLOAD)
        return engine

    def _check_structure(self, path: Path) -> None:
        """Refuse a payload whose structure differs from its factory string (its query
        knobs would not fit)."""
        faiss = _faiss()
        refine, inner, _ = self._layout()
        actual = (
            "ivf"
            if isinstance(inner, faiss.IndexIVF)
            else "hnsw"
            if isinstance(inner, faiss.IndexHNSW)
            else "other"
        )
        quantizer = (
            isinstance(_downcast(inner.quantizer), faiss.IndexHNSW) if actual == "ivf" else False
        )
        if FactoryShape(actual, quantizer, refine) != self._shape:
            raise EngineError(
                f"{path}: holds a faiss {type(inner).__name__}"
                f"{' with refine' if refine else ''}, not what the manifest's "
                f"factory {self.params['factory']!r} builds"
            )


def _with_selector(params: Any, selector: Any, keep: list[Any]) -> Any:
    """``params`` with ``selector`` set where the filtering happens: the index under a
    refine stage or a transform, else the index itself (a new SearchParameters when the
    index had none)."""
    faiss = _faiss()
    if params is None:
        params = faiss.SearchParameters()
        keep.append(params)
    elif isinstance(params, faiss.IndexRefineSearchParameters):
        params.base_index_params = _with_selector(params.base_index_params, selector, keep)
        return params
    elif isinstance(params, faiss.SearchParametersPreTransform):
        params.index_params = _with_selector(params.index_params, selector, keep)
        return params
    params.sel = selector
    return params
