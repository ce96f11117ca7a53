"""Helpers shared by the faiss-based engines: metric mapping and threads (from
:mod:`annkit.faiss_util`, which ground truth uses too), safe load and save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from annkit.errors import EngineError
from annkit.faiss_util import faiss_threads, prepare

__all__ = [
    "faiss_module",
    "faiss_threads",
    "id_selector",
    "faiss_version",
    "prepare",
    "read_index",
    "write_index",
]


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


def id_selector(allowed: np.ndarray, n_ids: int, keep: list[Any]) -> Any:
    """A faiss IDSelectorBitmap admitting the ascending ids ``allowed`` of ``n_ids``; the
    bitmap is appended to ``keep`` so that it outlives faiss' use of it."""
    faiss = faiss_module()
    mask = np.zeros(n_ids, dtype=bool)
    mask[allowed] = True
    bitmap = np.packbits(mask, bitorder="little")
    keep.append(bitmap)
    selector = faiss.IDSelectorBitmap(n_ids, faiss.swig_ptr(bitmap))
    keep.append(selector)
    return selector


def faiss_module() -> Any:
    """The faiss module, untyped (its bundled stubs lag behind the library)."""
    import importlib

    return importlib.import_module("faiss")
