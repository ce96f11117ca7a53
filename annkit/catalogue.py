"""Datasets by name: the ann-benchmarks catalogue (``catalogue.json``, shipped with annkit),
the download directory and its registry of downloaded files.

The registry, ``DIR/annkit-datasets.json``, records for every file ``annkit datasets get``
placed in DIR its name, file, source URL, size and SHA-256, so a later download of the same
name is checked against the first. It is rewritten atomically.

This module only reads and writes small JSON files; the transfers are in
:mod:`annkit.download`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from annkit.errors import InputError
from annkit.files import write_text

#: environment variable naming the download directory
DATA_DIR_ENV = "ANNKIT_DATA_DIR"
#: environment variable naming a mirror (URL or folder) that serves the catalogue's files
MIRROR_ENV = "ANNKIT_DATASETS_MIRROR"
#: environment variable that, when 1 / true / yes, forbids downloads
OFFLINE_ENV = "ANNKIT_OFFLINE"
#: the registry's file name inside the download directory
REGISTRY_NAME = "annkit-datasets.json"
REGISTRY_FORMAT = 1


@dataclass(frozen=True)
class CatalogueEntry:
    """One dataset of the ann-benchmarks catalogue.

    ``dim``, ``train`` (base vectors), ``test`` (queries) and ``approx_size_mb`` (as the
    ann-benchmarks README gives it) are None where unpublished. ``sha256`` is None: none is
    published. ``readable`` is False for files annkit cannot use (sparse sets, bit vectors).
    """

    name: str
    url: str
    metric: str
    dim: int | None
    train: int | None
    test: int | None
    approx_size_mb: float | None
    sha256: str | None
    readable: bool
    note: str | None = None

    @property
    def file_name(self) -> str:
        """The file's name at its source and in the download directory (``NAME.hdf5``)."""
        return self.url.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "metric": self.metric,
            "dim": self.dim,
            "train": self.train,
            "test": self.test,
            "approx_size_mb": self.approx_size_mb,
            "sha256": self.sha256,
            "readable": self.readable,
            "note": self.note,
        }


@cache
def _load_catalogue() -> tuple[CatalogueEntry, ...]:
    text = resources.files("annkit").joinpath("catalogue.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return tuple(
        CatalogueEntry(
            name=str(item["name"]),
            url=str(item["url"]),
            metric=str(item["metric"]),
            dim=item.get("dim"),
            train=item.get("train"),
            test=item.get("test"),
            approx_size_mb=item.get("approx_size_mb"),
            sha256=item.get("sha256"),
            readable=bool(item.get("readable", True)),
            note=item.get("note"),
        )
        for item in data["datasets"]
    )


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key putting ``glove-25`` before ``glove-100`` (numbers by value)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def catalogue() -> list[CatalogueEntry]:
    """Every dataset of the catalogue, sorted by name (numbers in names by value)."""
    return sorted(_load_catalogue(), key=lambda entry: _natural_key(entry.name))


def catalogue_names() -> list[str]:
    """The catalogue's dataset names, sorted."""
    return [entry.name for entry in catalogue()]


def find_entry(name: str) -> CatalogueEntry | None:
    """The catalogue entry called ``name``, or None."""
    for entry in _load_catalogue():
        if entry.name == name:
            return entry
    return None


def closest_names(name: str, candidates: list[str] | None = None, count: int = 3) -> list[str]:
    """Up to ``count`` catalogue names (or ``candidates``) that look like ``name``."""
    pool = catalogue_names() if candidates is None else candidates
    return difflib.get_close_matches(name, pool, n=count, cutoff=0.6)


def require_entry(name: str) -> CatalogueEntry:
    """The catalogue entry called ``name``; InputError naming the closest names otherwise."""
    entry = find_entry(name)
    if entry is not None:
        return entry
    close = closest_names(name)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise InputError(
        f"unknown dataset {name!r}: not in the ann-benchmarks catalogue ({hint}"
        "'annkit datasets list' shows them all; a URL works too)"
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def data_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """The download directory: ``directory`` when given, else ANNKIT_DATA_DIR, else
    ``~/.cache/annkit/datasets`` (not created here)."""
    if directory is not None:
        return Path(directory).expanduser()
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "annkit" / "datasets"


def mirror_from_env() -> str | None:
    """The mirror ANNKIT_DATASETS_MIRROR names, or None."""
    return os.environ.get(MIRROR_ENV) or None


def offline_from_env() -> bool:
    """True when ANNKIT_OFFLINE asks for no downloads (1, true, yes, on)."""
    return _truthy(os.environ.get(OFFLINE_ENV))


@dataclass(frozen=True)
class RegistryRecord:
    """What the registry knows of one downloaded file: its name, file name inside the
    download directory, source URL, size in bytes, SHA-256 (hex) and when it was recorded
    (ISO 8601, UTC)."""

    name: str
    file: str
    url: str
    size: int
    sha256: str
    recorded: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
            "recorded": self.recorded,
        }


def registry_path(directory: Path) -> Path:
    return directory / REGISTRY_NAME


def read_registry(directory: Path) -> dict[str, RegistryRecord]:
    """The registry of ``directory`` by dataset name (empty when there is none). A damaged
    registry is an InputError naming it: its checksums are what later downloads trust."""
    path = registry_path(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
        records = {
            str(name): RegistryRecord(
                name=str(name),
                file=str(item["file"]),
                url=str(item["url"]),
                size=int(item["size"]),
                sha256=str(item["sha256"]).lower(),
                recorded=str(item.get("recorded", "")),
            )
            for name, item in data["datasets"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{path}: damaged download registry ({type(exc).__name__}); "
            "fix or delete it (its checksums are then recorded again)"
        ) from exc
    for record in records.values():
        if Path(record.file).name != record.file or record.file in ("", ".", ".."):
            raise InputError(f"{path}: names an unsafe file {record.file!r}")
    return records


def record_download(directory: Path, record: RegistryRecord) -> None:
    """Add or replace ``record`` in the registry of ``directory`` (rewritten atomically)."""
    records = read_registry(directory)
    records[record.name] = record
    document = {
        "format": REGISTRY_FORMAT,
        "datasets": {name: records[name].to_dict() for name in sorted(records)},
    }
    write_text(registry_path(directory), json.dumps(document, indent=2) + "\n")


def now_text() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def downloaded_path(name: str, directory: Path | None = None) -> Path | None:
    """The downloaded file for dataset ``name`` in the download directory: ``NAME.hdf5``,
    or the file the registry records under ``name``; None when neither exists. A name
    with a folder separator is never looked up."""
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        return None
    folder = data_dir(directory)
    candidate = folder / f"{name}.hdf5"
    if candidate.is_file():
        return candidate
    try:
        records = read_registry(folder)
    except InputError:
        return None
    record = records.get(name)
    if record is not None and (folder / record.file).is_file():
        return folder / record.file
    return None
