"""Crash-safe file writes: a temporary name in the target's folder, fsync, then os.replace."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (same folder, so os.replace is atomic)."""
    return target.parent / f".{target.name}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed onto ``target``.

    On any error the temporary file is removed and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    """Atomically replace ``target`` with ``text`` (UTF-8)."""
    write_bytes(target, text.encode("utf-8"))


def write_bytes(target: str | Path, data: bytes) -> None:
    """Atomically replace ``target`` with ``data``."""
    with replacing(target) as tmp:
        tmp.write_bytes(data)


def remove_stale_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Delete temporaries of ``names`` left in ``folder`` by a killed writer."""
    for name in names:
        for leftover in folder.glob(f".{name}.*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
