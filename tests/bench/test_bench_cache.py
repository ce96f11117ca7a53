"""The ground-truth cache: computed once, then read back for later sweeps."""

from __future__ import annotations

import numpy as np

from annkit import cache
from annkit.cache import cached_true_distances
from annkit.io import load_dataset


def test_groundtruth_is_cached_and_reused(tiny_file, tmp_path, monkeypatch):
    dataset = load_dataset(tiny_file)
    first, path, hit = cached_true_distances(tmp_path, dataset, 5)
    assert not hit and path.is_file()
    assert first.shape[0] == dataset.n_queries and first.shape[1] >= 5
    assert np.all(np.diff(first, axis=1) >= 0)

    def fail(*_args, **_kwargs):
        raise AssertionError("ground truth recomputed although it was cached")

    monkeypatch.setattr(cache, "true_neighbor_distances", fail)
    again, again_path, hit = cached_true_distances(tmp_path, dataset, 5)
    assert hit and again_path == path
    np.testing.assert_array_equal(first, again)


def test_damaged_groundtruth_cache_is_recomputed(tiny_file, tmp_path):
    dataset = load_dataset(tiny_file)
    first, path, _ = cached_true_distances(tmp_path, dataset, 5)
    path.write_bytes(path.read_bytes()[:40])
    again, _, hit = cached_true_distances(tmp_path, dataset, 5)
    assert not hit
    np.testing.assert_array_equal(first, again)
