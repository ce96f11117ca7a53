"""Derive the bundled ``words-10k`` dataset from the shared 100k words dataset.

Run from the repository root:

    python datasets/make_words_10k.py ../shared/data/words-minilm-384-angular.hdf5

Exactly what it does (seed 0, numpy default_rng):
1. base: 10,000 rows of ``train`` drawn uniformly without replacement, kept in source order;
2. queries: 1,000 rows of ``test``: 200 from the head band (rank 1-5,000), 400 from the torso
   (5,001-50,000) and 400 from the tail (50,001-), drawn without replacement per band, kept in
   source order, with their ``test_weights``, ``test_rank`` and ``test_text``;
3. ground truth recomputed on the subset in float64: the 100 base rows of smallest angular
   distance (1 - cosine similarity), best first, exact ties to the lower index.
"""

from __future__ import annotations

import os
import sys

import h5py
import numpy as np

N_BASE = 10_000
BANDS = ((1, 5_000, 200), (5_001, 50_000, 400), (50_001, 10**9, 400))
DEPTH = 100


def exact_angular(
    base: np.ndarray, queries: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``depth`` ids and 1-cos distances in float64, ties to the lower index."""
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    dist = np.maximum(1.0 - q @ b.T, 0.0)
    order = np.argsort(dist, axis=1, kind="stable")[:, :depth]
    return order, np.take_along_axis(dist, order, axis=1)


def main(source: str, out: str) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(source, "r") as src:
        n_train = src["train"].shape[0]
        base_rows = np.sort(rng.choice(n_train, size=N_BASE, replace=False))
        ranks = src["test_rank"][:]
        query_rows = []
        for low, high, count in BANDS:
            band = np.flatnonzero((ranks >= low) & (ranks <= high))
            query_rows.append(rng.choice(band, size=count, replace=False))
        query_rows = np.sort(np.concatenate(query_rows))
        base = src["train"][:][base_rows]
        queries = src["test"][:][query_rows]
        fields = {
            "train_text": src["train_text"][:][base_rows],
            "train_rank": src["train_rank"][:][base_rows],
            "test_text": src["test_text"][:][query_rows],
            "test_rank": ranks[query_rows],
            "test_weights": src["test_weights"][:][query_rows],
        }
    ids, dist = exact_angular(base, queries, DEPTH)
    tmp = out + ".tmp"
    with h5py.File(tmp, "w") as dst:
        dst.create_dataset("train", data=base.astype(np.float32))
        dst.create_dataset("test", data=queries.astype(np.float32))
        dst.create_dataset("neighbors", data=ids.astype(np.int32))
        dst.create_dataset("distances", data=dist.astype(np.float32))
        for name, values in fields.items():
            dst.create_dataset(name, data=values)
        dst.create_dataset("train_source_row", data=base_rows.astype(np.int32))
        dst.create_dataset("test_source_row", data=query_rows.astype(np.int32))
        dst.attrs["distance"] = "angular"
        dst.attrs["point_type"] = "float"
        dst.attrs["derivation"] = (
            "datasets/make_words_10k.py from words-minilm-384-angular.hdf5, seed 0: "
            "10,000 random train rows; 200 head / 400 torso / 400 tail test rows; "
            "exact float64 angular ground truth, depth 100, ties to lower index"
        )
    os.replace(tmp, out)


if __name__ == "__main__":
    source = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/words-minilm-384-angular.hdf5"
    out = (
        sys.argv[2]
        if len(sys.argv) > 2
        else os.path.join(os.path.dirname(__file__), "words-10k.hdf5")
    )
    main(source, out)
