"""On-disk caches of built indexes and exact truth, shared by ``bench`` sweeps under one
results root (``<root>/.cache``) and by ``tune``:

- ``indexes/<key>/``: an ordinary index bundle per (dataset fingerprint, engine, resolved
  build params, bundle format version, metric), reused by later sweeps unless rebuilt;
- ``groundtruth/<key>.npy``: the exact true-neighbour distances (nq, depth >= k) float64 per
  dataset and k.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bundle import (
    FORMAT_VERSION,
    Bundle,
    build_index,
    fingerprint_vectors,
    load_bundle,
    read_manifest,
    save_bundle,
)
from annkit.engines.base import get_engine
from annkit.errors import AnnkitError, BundleError, EngineError
from annkit.evaluate import true_neighbor_distances
from annkit.files import atomic_write
from annkit.types import Dataset

CACHE_DIR = ".cache"


def _digest(payload: Any, length: int = 24) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def index_key(fingerprint: str, engine: str, resolved_params: dict, metric: str) -> str:
    """The cache key of one index (hex)."""
    return _digest(
        {
            "dataset": fingerprint,
            "engine": engine,
            "build_params": sorted(resolved_params.items()),
            "format_version": FORMAT_VERSION,
            "metric": metric,
        }
    )


def cache_params(engine: str, params: dict, metric: str, dim: int, count: int) -> dict:
    """The build params an index is cached under: ``params`` (defaults filled in) with the
    data-derived defaults resolved as a build over ``count`` vectors would resolve them,
    so that a sweep's default ``nlist`` and tune's explicit value of it share one index.
    Params the engine refuses are keyed as given (the build then reports the error)."""
    try:
        engine_class = get_engine(engine)
        given = {name: value for name, value in params.items() if value is not None}
        return engine_class(metric, dim, **given).build_params_for(count)
    except (AnnkitError, ValueError, TypeError):
        return dict(params)


def index_dir(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "indexes" / key


def obtain_index(
    directory: Path,
    engine: str,
    params: dict,
    dataset: Dataset,
    *,
    fingerprint: str,
    threads: int,
    rebuild: bool = False,
    memory_check: bool = True,
) -> tuple[Bundle, bool]:
    """The index bundle at ``directory``: loaded when a valid one is there (and not
    ``rebuild``), else built over ``dataset.base`` and saved there. Returns (bundle, cached).

    A damaged cached bundle is rebuilt rather than reported. Before building, the estimated
    memory need is checked (ResourceError when it cannot fit) unless not ``memory_check``."""
    if not rebuild and directory.is_dir():
        try:
            bundle = load_bundle(directory)
            manifest = bundle.manifest
            if (
                manifest.get("dataset_fingerprint") == fingerprint
                and manifest["engine"] == engine
                and manifest["count"] == dataset.n_base
            ):
                return bundle, True
        except (BundleError, EngineError):
            pass
    built, seconds = build_index(
        engine, dataset.base, dataset.metric, params, threads, memory_check=memory_check
    )
    save_bundle(
        built,
        directory,
        build_seconds=seconds,
        dataset_fingerprint=fingerprint,
        dataset_name=dataset.name,
        threads=threads,
        overwrite=True,
    )
    return Bundle(path=directory, manifest=read_manifest(directory), engine=built), False


def groundtruth_file(cache_dir: Path, dataset: Dataset, k: int) -> Path:
    """Where the exact distances of ``dataset`` at depth ``k`` are cached."""
    key = _digest(
        {
            "base": fingerprint_vectors(dataset.base),
            "queries": fingerprint_vectors(dataset.queries),
            "metric": dataset.metric,
            "k": int(k),
        }
    )
    return Path(cache_dir) / "groundtruth" / f"{key}.npy"


def cached_true_distances(
    cache_dir: Path,
    dataset: Dataset,
    k: int,
    progress: Callable[[int, int], None] | None = None,
    *,
    memory_check: bool = True,
) -> tuple[np.ndarray, Path, bool]:
    """Exact true-neighbour distances (nq, depth >= k) float64 ascending of ``dataset``
    (see ``true_neighbor_distances``), computed once and cached.

    Returns (distances, cache file, whether it came from the cache). ``memory_check`` as in
    :func:`annkit.groundtruth.compute_ground_truth`."""
    path = groundtruth_file(cache_dir, dataset, k)
    if path.is_file():
        try:
            distances = np.load(path, allow_pickle=False)
            if (
                distances.ndim == 2
                and distances.shape[0] == dataset.n_queries
                and distances.shape[1] >= k
                and distances.dtype == np.float64
            ):
                return distances, path, True
        except (OSError, ValueError):
            pass
    distances = np.ascontiguousarray(
        true_neighbor_distances(dataset, k, progress=progress, memory_check=memory_check),
        dtype=np.float64,
    )
    with atomic_write(path, make_parents=True) as tmp, open(tmp, "wb") as handle:
        np.save(handle, distances, allow_pickle=False)
    return distances, path, False
