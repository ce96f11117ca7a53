"""Derive an out-of-distribution query set from the shared 100k words dataset.

Run from the repository root (offline, a minute):

    python datasets/make_words_ood.py [-o results/.cache/words-ood.hdf5]

The queries come from regions of the embedding space that the base does not cover:

1. the source's 100,000 base vectors (``train``) are clustered into 32 k-means clusters
   (annkit's seeded k-means of a seeded sample, ``coarse_centroids``, seed 30; each vector
   assigned to its nearest centroid by cosine);
2. 3 clusters are drawn with ``default_rng(31)`` and held out: none of their vectors stays
   in the base, so the base keeps the other 29 clusters' vectors in source order;
3. 2,000 queries are drawn with ``default_rng(32)`` from the held-out vectors (sorted by
   source row).

Every query's nearest base neighbours therefore lie outside its own region: the queries
are real word embeddings, but from another distribution than the base (the setting of
text-to-image or new-topic queries). The source's own queries are not used.

Ground truth: annkit's exact ground truth, k = 100, angular (1 - cosine) in float64, ties
to the lower id. Attributes record the held-out clusters and source rows (``train_source_row``
and ``test_source_row`` datasets) so the file can be rebuilt and checked byte for byte.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from annkit.adaptive.features import coarse_centroids, metric_distances
from annkit.groundtruth import compute_ground_truth
from annkit.io import write_dataset_hdf5

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCE_FILE = SOURCE / "words-minilm-384-angular.hdf5"
CLUSTERS, HELD_OUT, QUERIES, K = 32, 3, 2000, 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("results/.cache/words-ood.hdf5"))
    parser.add_argument("--source", type=Path, default=SOURCE_FILE)
    args = parser.parse_args()
    if not args.source.is_file():
        raise SystemExit(f"{args.source}: not found (the shared words dataset, ../shared/data)")
    with h5py.File(args.source, "r") as source:
        vectors = np.asarray(source["train"], dtype=np.float32)
    centroids = coarse_centroids(vectors, "angular", CLUSTERS, seed=30)
    assign = np.concatenate(
        [
            np.argmin(metric_distances(vectors[i : i + 8192], centroids, "angular"), axis=1)
            for i in range(0, len(vectors), 8192)
        ]
    )
    held = np.sort(np.random.default_rng(31).choice(CLUSTERS, HELD_OUT, replace=False))
    outside = np.isin(assign, held)
    base_rows = np.flatnonzero(~outside)
    pool = np.flatnonzero(outside)
    query_rows = np.sort(np.random.default_rng(32).choice(pool, QUERIES, replace=False))
    base, queries = vectors[base_rows], vectors[query_rows]
    truth = compute_ground_truth(base, queries, K, "angular")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_dataset_hdf5(
        args.output,
        base=base,
        queries=queries,
        metric="angular",
        neighbors=truth.ids,
        distances=truth.distances.astype(np.float32),
    )
    with h5py.File(args.output, "a") as out:
        out.create_dataset("train_source_row", data=base_rows.astype(np.int64))
        out.create_dataset("test_source_row", data=query_rows.astype(np.int64))
        out.attrs["held_out_clusters"] = held.astype(np.int64)
    print(
        f"wrote {args.output}: base {len(base):,}, {len(queries):,} queries from held-out "
        f"clusters {held.tolist()} ({pool.size:,} vectors)"
    )


if __name__ == "__main__":
    main()
