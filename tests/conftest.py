"""Shared fixtures: the bundled real dataset, the shared 100k dataset (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annkit.bundle import Bundle
from annkit.io import load_dataset
from annkit.types import Dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "words-minilm-384-angular.hdf5"


@pytest.fixture(scope="session")
def words10k() -> Dataset:
    """The bundled real dataset (10,000 x 384 angular, 1,000 queries, weights)."""
    return load_dataset("words-10k")


@pytest.fixture(scope="session")
def hnsw_words10k(words10k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """One hnsw bundle of words-10k (M=8, ef_construction=64, one thread: deterministic),
    built once per session and shared: tests set query params per call, never rebuild it."""
    from bundles import make_index

    folder = tmp_path_factory.mktemp("hnsw-words10k") / "hnsw"
    return make_index(folder, words10k, "hnsw", {"M": 8, "ef_construction": 64})


@pytest.fixture()
def shared_words(request: pytest.FixtureRequest) -> Path:
    """Path of the shared 100k dataset; skips where ../shared is absent (a user's clone).

    Tests on it are slow: each must carry ``@pytest.mark.slow`` and ``@pytest.mark.shared``
    itself (the quick loop, ``-m "not slow"``, must never reach this data)."""
    missing = [mark for mark in ("slow", "shared") if request.node.get_closest_marker(mark) is None]
    if missing:
        pytest.fail(f"{request.node.nodeid} uses shared_words: mark it {' and '.join(missing)}")
    if not SHARED_DATA.is_file():
        pytest.skip(f"shared dataset not found at {SHARED_DATA} (only on development machines)")
    return SHARED_DATA


@pytest.fixture()
def tiny_dataset() -> Dataset:
    """A tiny seeded euclidean dataset for fast unit tests."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((600, 16)).astype(np.float32)
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    return Dataset(name="tiny", metric="euclidean", base=base, queries=queries)
