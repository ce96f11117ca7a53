"""Helpers shared by the faiss-based engines: metric mapping, threads, safe load."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.engines.base import as_float32_rows, normalized_rows
from annkit.errors import EngineError


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as faiss wants them: float32, C-contiguous, unit rows for angular."""
    return normalized_rows(vectors) if metric == "angular" else as_float32_rows(vectors)


@contextmanager
def faiss_threads(threads: int) -> Iterator[None]:
    """Run the block with faiss' OpenMP pool set to ``threads`` threads."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def write_index(index: Any, path: Path) -> None:
    """Serialise a faiss index to ``path``."""
    import faiss

    faiss.write_index(index, str(path))


def read_index(path: Path) -> Any:
    """Deserialise a faiss index; faiss errors become EngineError."""
    import faiss

    try:
        return faiss.read_index(str(path))
    except (RuntimeError, MemoryError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"faiss could not load {path}: {message}") from None


def faiss_version() -> dict[str, str]:
    """The installed faiss version."""
    import faiss

    return {"faiss": faiss.__version__}
