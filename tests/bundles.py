"""Test helper: build, save and load a small index bundle (importable from any test: pytest
puts tests/ on sys.path for tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annkit.bundle import Bundle, build_index, fingerprint_vectors, load_bundle, save_bundle
from annkit.types import Dataset


def make_index(folder: Path, dataset: Dataset, engine: str, params: dict) -> Bundle:
    """Build ``engine`` with ``params`` on ``dataset``'s base (one thread), save it in
    ``folder`` and load it back."""
    built, seconds = build_index(engine, dataset.base, dataset.metric, params, threads=1)
    save_bundle(
        built,
        folder,
        build_seconds=seconds,
        dataset_fingerprint=fingerprint_vectors(dataset.base),
        dataset_name=dataset.name,
    )
    return load_bundle(folder)


def head_subset(dataset: Dataset, count: int, queries: int) -> Dataset:
    """The first ``count`` base vectors and first ``queries`` queries of ``dataset`` (no
    ground truth: it would not hold for the smaller base)."""
    return Dataset(
        name=f"words-{count}",
        metric=dataset.metric,
        base=np.ascontiguousarray(dataset.base[:count]),
        queries=np.ascontiguousarray(dataset.queries[:queries]),
    )
