"""Vector preparation and faiss thread control, shared by exact ground truth
(:mod:`annkit.groundtruth`) and the faiss engines; below both in the layers, so neither
imports the other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def as_float32_rows(vectors: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 2-D array (copies only when needed)."""
    return np.ascontiguousarray(vectors, dtype=np.float32)


def normalized_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32 copy of ``vectors`` with unit-length rows (zero rows stay zero)."""
    out = np.array(vectors, dtype=np.float32, copy=True, order="C")
    # np.linalg.norm's own arithmetic (bit for bit), without its per-call overhead
    norms = np.sqrt(np.add.reduce(out * out, axis=1, keepdims=True))
    norms[norms == 0] = 1.0  # zero rows stay zero
    out /= norms
    return out


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as faiss wants them: float32, C-contiguous, unit rows for angular."""
    return normalized_rows(vectors) if metric == "angular" else as_float32_rows(vectors)


@contextmanager
def faiss_threads(threads: int) -> Iterator[None]:
    """Run the block with faiss' OpenMP pool set to ``threads`` threads."""
    import faiss

    previous = faiss.omp_get_max_threads()
    wanted = max(1, threads)
    if previous == wanted:  # nothing to change (every single-query call of a timed loop)
        yield
        return
    faiss.omp_set_num_threads(wanted)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)
