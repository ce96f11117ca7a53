"""Crash-safe file writes (a temporary name in the target's folder, fsync, then os.replace)
and the one JSON cleaner (numpy values as Python values, NaN and infinities as null)."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.errors import InputError

TMP_SUFFIX = ".tmp"


def temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (same folder, so os.replace is atomic)."""
    return target.parent / f".{target.name}.{secrets.token_hex(4)}{TMP_SUFFIX}"


@contextmanager
def atomic_write(target: str | os.PathLike[str], *, make_parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; on success it is fsynced and
    renamed onto ``target``. On any failure the temporary file is removed and ``target`` is
    left as it was; an OSError becomes an InputError naming ``target``.

    The target's folder must exist unless ``make_parents``. The temporary file is created
    (empty) first, with permissions the umask decides."""
    target = Path(target)
    folder = target.parent
    if make_parents:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    elif not folder.is_dir():
        raise InputError(f"{target}: cannot write: folder {folder} does not exist")
    tmp = temporary_name(target)
    try:
        # os.open with 0o666 lets the umask decide the final permissions (mkstemp gives 0600)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror}") from exc
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``target`` with ``data`` (its folder is created when missing)."""
    with atomic_write(target, make_parents=True) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``target`` with ``text`` (UTF-8)."""
    write_bytes(target, text.encode("utf-8"))


def remove_stale_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Delete temporaries of ``names`` left in ``folder`` by a killed writer."""
    for name in names:
        for leftover in folder.glob(f".{name}.*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python values, tuples as lists, paths as
    strings and non-finite floats as None, ready for ``json.dumps(allow_nan=False)``."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
