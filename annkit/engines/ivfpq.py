"""Inverted file with product quantisation (faiss IndexIVFPQ), optional exact re-ranking."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, pad_result, register
from annkit.engines.faiss_common import (
    faiss_threads,
    faiss_version,
    prepare,
    read_index,
    write_index,
)
from annkit.engines.flat import to_metric_distance
from annkit.errors import EngineError, ParamError
from annkit.types import SearchResult

PAYLOAD = "ivfpq.faiss"
MIN_POINTS_PER_CENTROID = 39  # faiss warns below this many training points per centroid


def default_nlist(count: int) -> int:
    """About 4 * sqrt(n) lists, but no more than n / 39 so k-means has enough points."""
    return max(1, min(round(4 * math.sqrt(count)), count // MIN_POINTS_PER_CENTROID))


def default_m(dim: int) -> int:
    """The divisor of ``dim`` closest to dim / 8 (about 8 dimensions per sub-quantizer)."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(dim / m - 8), -m))


def default_nbits(count: int) -> int:
    """8 bits per code, fewer when there are too few points to train 256 centroids."""
    return max(1, min(8, int(math.log2(max(2, count // MIN_POINTS_PER_CENTROID)))))


@register
class IvfPqEngine(Engine):
    """faiss IVF-PQ: build nlist / m / nbits, query nprobe and rerank (k-factor, 0 = off)."""

    name = "ivfpq"
    description = "inverted file + product quantisation (faiss IndexIVFPQ)"
    build_specs = {
        "nlist": ParamSpec(int, None, "inverted lists (default ~4*sqrt(n))", minimum=1),
        "m": ParamSpec(int, None, "PQ sub-quantizers, must divide dim (default ~dim/8)", minimum=1),
        "nbits": ParamSpec(int, None, "bits per PQ code (default 8)", minimum=1, maximum=16),
        "refine": ParamSpec(bool, True, "store exact vectors so queries can re-rank"),
        "train_size": ParamSpec(int, None, "training sample (default min(n, 64*nlist))", minimum=1),
        "seed": ParamSpec(int, 1234, "seed for training sample and k-means", minimum=0),
    }
    default_query_params = {
        "nprobe": ParamSpec(int, 16, "inverted lists visited per query", minimum=1, effort=True),
        "rerank": ParamSpec(
            int, 0, "re-rank rerank*k candidates exactly (0 = off)", minimum=0, maximum=1000
        ),
    }
    contract_settings = ({"nlist": 64}, {"nprobe": 64, "rerank": 10})
    small_contract_settings = ({"nlist": 4, "m": 4, "nbits": 4}, {"nprobe": 4, "rerank": 100})
    max_search_threads = None  # faiss OpenMP threads over the batch

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        self._index: Any = None

    def build_params_for(self, count: int) -> dict[str, Any]:
        """nlist, m, nbits and train_size as a build over ``count`` vectors derives them."""
        self._resolve_defaults(count)
        return dict(self.params)

    def _resolve_defaults(self, count: int) -> None:
        params = self.params
        if params["nlist"] is None:
            params["nlist"] = default_nlist(count)
        if params["m"] is None:
            params["m"] = default_m(self.dim)
        if params["nbits"] is None:
            params["nbits"] = default_nbits(count)
        if params["train_size"] is None:
            params["train_size"] = min(count, max(64 * params["nlist"], 64 * 2 ** params["nbits"]))
        if self.dim % params["m"]:
            raise ParamError(f"ivfpq: m={params['m']} must divide the dimension {self.dim}")
        if params["nlist"] > count:
            raise ParamError(f"ivfpq: nlist={params['nlist']} exceeds the {count} base vectors")
        if 2 ** params["nbits"] > count:
            raise ParamError(
                f"ivfpq: nbits={params['nbits']} needs at least {2 ** params['nbits']} base "
                f"vectors to train, have {count}"
            )
        params["train_size"] = min(params["train_size"], count)
        if params["train_size"] < max(params["nlist"], 2 ** params["nbits"]):
            raise ParamError(
                f"ivfpq: train_size={params['train_size']} is smaller than nlist or 2**nbits"
            )

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """nprobe 1, 2, 4, .. below nlist, then nlist (every list)."""
        nlist = int(self.params["nlist"] or default_nlist(n_base))
        grid = [2**i for i in range(max(1, math.ceil(math.log2(max(nlist, 1))))) if 2**i < nlist]
        return grid + [nlist]

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        """nlist at 1/4, 1/2 and 1x its data-derived default."""
        nlist = default_nlist(n_base)
        return {"nlist": sorted({max(1, nlist // 4), max(1, nlist // 2), nlist})}

    def estimate_build_bytes(self, count: int) -> int:
        nlist = self.params["nlist"] or default_nlist(count)
        m = self.params["m"] or default_m(self.dim)
        nbits = self.params["nbits"] or default_nbits(count)
        train = self.params["train_size"] or min(count, max(64 * nlist, 64 * 2**nbits))
        codes = count * (m * nbits // 8 + 1 + 8)
        refine = count * self.dim * 4 if self.params["refine"] else 0
        return int(
            min(train, count) * self.dim * 4 * 2
            + codes
            + refine
            + nlist * self.dim * 4
            + 131_072 * self.dim * 4
        )

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        import faiss

        count = int(base.shape[0])
        self._resolve_defaults(count)
        p = self.params
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        quantizer = (
            faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        )
        ivf = faiss.IndexIVFPQ(quantizer, self.dim, p["nlist"], p["m"], p["nbits"], faiss_metric)
        ivf.cp.seed = p["seed"]
        ivf.pq.cp.seed = p["seed"]
        ivf.cp.verbose = False
        rng = np.random.default_rng(p["seed"])
        sample = np.sort(rng.choice(count, size=p["train_size"], replace=False))
        with faiss_threads(threads):
            ivf.train(prepare(base[sample], self.metric))
            index = faiss.IndexRefineFlat(ivf) if p["refine"] else ivf
            block = 131_072
            for start in range(0, count, block):
                index.add(prepare(base[start : start + block], self.metric))
        self._index = index
        self.count = count
        self._keep_quantizer = quantizer

    def _ivf(self) -> Any:
        import faiss

        return faiss.extract_index_ivf(self._index)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        import faiss

        rerank = self.query["rerank"]
        if rerank and not self.params["refine"]:
            raise ParamError("ivfpq: rerank needs an index built with refine=1")
        ivf = self._ivf()
        ivf.nprobe = min(self.query["nprobe"], ivf.nlist)
        prepared = prepare(queries, self.metric)
        with faiss_threads(self.search_threads):
            if rerank and self.params["refine"]:
                params = faiss.IndexRefineSearchParameters()
                params.k_factor = float(rerank)
                scores, ids = self._index.search(prepared, k, params=params)
            else:
                scores, ids = ivf.search(prepared, k)
        squared_l2 = self.metric != "ip"
        return pad_result(ids, to_metric_distance(scores, self.metric, squared_l2))

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing as a bare faiss call: nprobe (and the
        re-rank's SearchParameters) set once, the queries prepared once, faiss' OpenMP pool
        set once around the loop (the untimed :meth:`search` gives the results)."""
        import faiss

        rerank = self.query["rerank"]
        if rerank and not self.params["refine"]:
            raise ParamError("ivfpq: rerank needs an index built with refine=1")
        ivf = self._ivf()
        ivf.nprobe = min(self.query["nprobe"], ivf.nlist)
        prepared = prepare(queries, self.metric)
        if rerank:
            params = faiss.IndexRefineSearchParameters()
            params.k_factor = float(rerank)
            search = functools.partial(self._index.search, k=k, params=params)
        else:
            search = functools.partial(ivf.search, k=k)
        with faiss_threads(self.search_threads):
            yield [prepared[row : row + 1] for row in range(len(prepared))], search

    def save(self, directory: Path) -> list[str]:
        write_index(self._index, directory / PAYLOAD)
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> IvfPqEngine:
        engine = cls(metric, dim, **params)
        index = read_index(directory / PAYLOAD)
        if index.d != dim or index.ntotal != count:
            raise EngineError(f"{directory / PAYLOAD}: does not match its manifest")
        engine._index = index
        engine.count = count
        engine._ivf()  # fails clearly if the payload is not an IVF index
        return engine

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return faiss_version()
