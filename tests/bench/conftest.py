"""Fixtures for the bench tests: a tiny dataset file and the fake engines."""

from __future__ import annotations

import numpy as np
import pytest
from bench_fakes import FakeEngine

from annkit.engines.base import _REGISTRY, register
from annkit.io import write_dataset_hdf5


@pytest.fixture()
def tiny_file(tmp_path):
    """A tiny seeded euclidean dataset file: 300 x 8 base, 20 queries, no ground truth."""
    rng = np.random.default_rng(11)
    path = tmp_path / "tiny.hdf5"
    write_dataset_hdf5(
        path,
        base=rng.standard_normal((300, 8)).astype(np.float32),
        queries=rng.standard_normal((20, 8)).astype(np.float32),
        metric="euclidean",
    )
    return path


@pytest.fixture()
def fake_engines():
    """Register the fake engine for one test only."""
    register(FakeEngine)
    yield FakeEngine
    _REGISTRY.pop(FakeEngine.name, None)
