"""ScaNN (Google): k-means tree + anisotropic asymmetric hashing + exact reordering.

Optional: registered only when ``import scann`` works (``pip install 'annkit[scann]'``).
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import Engine, ParamSpec, pad_result, register
from annkit.errors import EngineError, ParamError
from annkit.faiss_util import as_float32_rows, normalized_rows
from annkit.types import SearchResult

ASSETS = "scann_assets.pbtxt"
_MEASURES = {"angular": "dot_product", "ip": "dot_product", "euclidean": "squared_l2"}
# absl INFO / WARNING lines ("I0000 00:00:17.. 20220 file.cc:58] ...") and absl's notice
_ABSL_NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log "
    rb"messages before absl::InitializeLog\(\) is called)"
)


@contextmanager
def quiet_absl() -> Iterator[None]:
    """Keep ScaNN's absl INFO / WARNING lines off the terminal: file descriptor 2 goes to a
    temporary file for the block, and every other line written there meanwhile (errors, other
    code's output) is passed on to stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().splitlines(keepends=True)
                if not _ABSL_NOISE.match(line)
            ]
            if kept:
                sys.stderr.write(b"".join(kept).decode("utf-8", "replace"))
                sys.stderr.flush()


def default_num_leaves(count: int) -> int:
    """About 2 * sqrt(n) leaves, but at least 50 vectors per leaf (ScaNN's minimum)."""
    return max(1, min(round(2 * math.sqrt(count)), count // 50))


def _seeded(config: str, seed: int) -> str:
    """ScaNN's text config with its k-means and sampling seeds set."""
    config = config.replace("partitioning {", f"partitioning {{\n clustering_seed: {seed}", 1)
    return config.replace(
        "asymmetric_hash {",
        f"asymmetric_hash {{\n clustering_seed: {seed + 1}\n sampling_seed: {seed + 1}",
        1,
    )


def _check_assets(directory: Path, assets: str, dim: int, count: int) -> None:
    """Refuse ScaNN assets that name files outside the bundle or whose arrays do not match
    the manifest, before ScaNN reads them."""
    paths = re.findall(r'asset_path:\s*"([^"]*)"', assets)
    if not paths:
        raise EngineError(f"{directory / ASSETS}: lists no ScaNN assets")
    for name in paths:
        if name != os.path.basename(name) or name in ("", ".", "..") or "\\" in name:
            raise EngineError(f"{directory / ASSETS}: names an unsafe asset path {name!r}")
        if not (directory / name).is_file():
            raise EngineError(f"{directory / ASSETS}: asset {name} is missing")
        if name.endswith(".npy"):
            try:
                rows = np.load(directory / name, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise EngineError(f"{directory / name}: not a ScaNN array ({exc})") from None
            if rows.shape[0] != count or (name == "dataset.npy" and rows.shape != (count, dim)):
                raise EngineError(
                    f"{directory / name}: holds shape {rows.shape}, manifest says "
                    f"{count} vectors of dimension {dim}"
                )


class ScannEngine(Engine):
    """ScaNN: build ``num_leaves``, ``train_size``, ``seed``, ``dims_per_block``,
    ``anisotropic_quantization_threshold``; query ``leaves_to_search`` (effort) and
    ``reorder`` (candidates re-scored exactly).

    angular searches unit rows by dot product (distance 1 - dot), ip by dot product (-dot),
    euclidean by squared L2 (square-rooted here). Search is single-threaded
    (``search_batched``, not the parallel variant). ScaNN exposes no count of distance
    computations, so ``distance_computations`` is None.
    """

    #: search_batched can return other neighbours than one-query search
    batch_answers_like_single = False
    name = "scann"
    description = "ScaNN tree + anisotropic hashing + reordering (optional extra)"
    build_specs = {
        "num_leaves": ParamSpec(
            int, None, "k-means tree leaves (default ~2*sqrt(n), at most n/50)", minimum=1
        ),
        "train_size": ParamSpec(
            int,
            None,
            "training sample for the tree and the hashing (default min(n, 100000))",
            minimum=1,
        ),
        "seed": ParamSpec(int, 1234, "seed for k-means and sampling", minimum=0, maximum=2**31 - 2),
        "dims_per_block": ParamSpec(int, 2, "dimensions per hashing block", minimum=1),
        "anisotropic_quantization_threshold": ParamSpec(
            float,
            None,
            "anisotropic loss threshold (default 0.2; 0 = off; off for euclidean)",
            minimum=0.0,
            maximum=1.0,
        ),
    }
    default_query_params = {
        "leaves_to_search": ParamSpec(
            int, 32, "tree leaves searched per query", minimum=1, effort=True
        ),
        "reorder": ParamSpec(int, 100, "candidates re-scored exactly (at least k)", minimum=1),
    }
    contract_settings = ({"num_leaves": 100}, {"leaves_to_search": 40, "reorder": 200})
    small_contract_settings = ({"num_leaves": 4}, {"leaves_to_search": 4, "reorder": 200})
    max_search_threads = None  # search_batched_parallel on the searcher's own pool

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        super().__init__(metric, dim, **params)
        if self.params["anisotropic_quantization_threshold"] is None:
            self.params["anisotropic_quantization_threshold"] = (
                0.0 if metric == "euclidean" else 0.2
            )
        self._searcher: Any = None

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """leaves_to_search doubling from 1 to num_leaves."""
        leaves = self.params["num_leaves"] or default_num_leaves(n_base)
        return sorted(
            {min(leaves, 2**power) for power in range(int(math.log2(leaves)) + 1)} | {leaves}
        )

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        leaves = default_num_leaves(n_base)
        return {
            "num_leaves": sorted(
                {max(1, leaves // 2), leaves, max(1, min(2 * leaves, n_base // 50))}
            )
        }

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        return {"scann": version("scann")}

    def estimate_build_bytes(self, count: int) -> int:
        codes = count * (self.dim // self.params["dims_per_block"] + 1)
        return int(3 * count * self.dim * 4 + codes + count * 8)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        return normalized_rows(vectors) if self.metric == "angular" else as_float32_rows(vectors)

    def build_params_for(self, count: int) -> dict[str, Any]:
        """num_leaves and train_size as a build over ``count`` vectors derives them."""
        params = dict(self.params)
        if params["num_leaves"] is None:
            params["num_leaves"] = default_num_leaves(count)
        params["train_size"] = min(count, params["train_size"] or 100_000)
        return params

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        from scann.scann_ops.py import scann_ops_pybind

        count = int(base.shape[0])
        p = self.params
        if p["dims_per_block"] > self.dim:  # here, not in __init__: callers may validate
            # params with a placeholder dimension before reading the data
            raise ParamError(
                f"scann: dims_per_block={p['dims_per_block']} exceeds the dimension {self.dim}"
            )
        if p["num_leaves"] is None:
            p["num_leaves"] = default_num_leaves(count)
        if p["num_leaves"] > count:
            raise ParamError(
                f"scann: num_leaves={p['num_leaves']} exceeds the {count} base vectors"
            )
        p["train_size"] = min(count, p["train_size"] or 100_000)
        if p["train_size"] < p["num_leaves"]:
            raise ParamError(
                f"scann: train_size={p['train_size']} is smaller than num_leaves={p['num_leaves']}"
            )
        threshold = p["anisotropic_quantization_threshold"]
        data = self._prepare(base)
        builder = (
            scann_ops_pybind.builder(data, 10, _MEASURES[self.metric])
            .tree(
                num_leaves=p["num_leaves"],
                num_leaves_to_search=min(p["num_leaves"], self.query["leaves_to_search"]),
                training_sample_size=p["train_size"],
                random_init=False,
            )  # k-means++ follows clustering_seed; random init does not
            .score_ah(
                p["dims_per_block"],
                anisotropic_quantization_threshold=threshold if threshold > 0 else float("nan"),
                training_sample_size=p["train_size"],
            )
            .reorder(self.query["reorder"])
        )
        config = _seeded(builder.create_config(), p["seed"])
        try:
            with quiet_absl():
                self._searcher = scann_ops_pybind.create_searcher(
                    data, config, training_threads=max(1, threads)
                )
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"scann could not build: {str(exc).strip()[:200]}") from None
        self.count = count

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path of single-mode timing: ScaNN's own one-query ``search`` on
        each prepared row at the setting's leaves and re-order depth (the untimed
        :meth:`search` gives the results)."""
        rows = self._prepare(queries)
        search = functools.partial(
            self._searcher.search,
            final_num_neighbors=k,
            leaves_to_search=min(self.query["leaves_to_search"], self.params["num_leaves"]),
            pre_reorder_num_neighbors=max(k, self.query["reorder"]),
        )
        yield list(rows), search

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        prepared = self._prepare(queries)
        threads = self.search_threads
        if threads > 1:
            self._searcher.set_num_threads(threads)
        search = (
            self._searcher.search_batched_parallel if threads > 1 else self._searcher.search_batched
        )
        ids, scores = search(
            prepared,
            final_num_neighbors=k,
            leaves_to_search=min(self.query["leaves_to_search"], self.params["num_leaves"]),
            pre_reorder_num_neighbors=max(k, self.query["reorder"]),
        )
        ids = np.asarray(ids).astype(np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        missing = ~np.isfinite(scores)
        if self.metric == "euclidean":
            distances = np.sqrt(np.maximum(scores, 0.0), where=~missing, out=np.zeros_like(scores))
        elif self.metric == "angular":
            distances = 1.0 - scores
        else:
            distances = -scores
        ids[missing] = -1
        result = pad_result(ids, distances)
        return replace(result, distance_computations=None)

    def save(self, directory: Path) -> list[str]:
        before = set(os.listdir(directory))
        with quiet_absl():
            self._searcher.serialize(str(directory), relative_path=True)
        return sorted(set(os.listdir(directory)) - before)

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> ScannEngine:
        from scann.scann_ops.py import scann_ops_pybind

        engine = cls(metric, dim, **params)
        if engine.params["num_leaves"] is None:
            raise EngineError(f"{directory}: the manifest's build params lack num_leaves")
        assets_path = directory / ASSETS
        if not assets_path.is_file():
            raise EngineError(f"{directory}: no {ASSETS} (not a ScaNN index)")
        try:
            assets = assets_path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise EngineError(f"{assets_path}: damaged (not text)") from None
        _check_assets(directory, assets, dim, count)
        try:
            with quiet_absl():
                # built directly rather than with scann's load_searcher, which would unpickle
                # a scann_docids.pkl found in the directory
                searcher = scann_ops_pybind.ScannSearcher(
                    scann_ops_pybind.scann_pybind.ScannNumpy(str(directory), assets), None
                )
        except (RuntimeError, ValueError) as exc:
            raise EngineError(
                f"scann could not load {directory}: {str(exc).strip()[:200]}"
            ) from None
        if searcher.size() != count:
            raise EngineError(
                f"{directory}: holds {searcher.size()} vectors, manifest says {count}"
            )
        engine._searcher = searcher
        engine.count = count
        return engine


def scann_installed() -> bool:
    """True when the scann package can be found (checked without importing it: importing
    scann takes ~70 ms, which every annkit command would pay)."""
    from importlib.util import find_spec

    return find_spec("scann") is not None


AVAILABLE = scann_installed()
if AVAILABLE:  # the scann extra is optional: without it the engine is not registered
    register(ScannEngine)
