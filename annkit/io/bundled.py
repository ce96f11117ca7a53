"""Small real datasets shipped inside the package (``annkit._bundled``, the repo's datasets/)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from annkit.catalogue import downloaded_path, find_entry
from annkit.errors import DatasetError
from annkit.io._common import PathLike

BUNDLED_DATASETS: dict[str, str] = {
    "words-10k": "words-10k.hdf5",
    # words-10k with labels (languages, scripts) and filtered ground truth: filtered recall
    "words-10k-labelled": "words-10k-labelled.hdf5",
}


def bundled_names() -> list[str]:
    """Names accepted wherever a dataset is expected, e.g. ``words-10k``."""
    return sorted(BUNDLED_DATASETS)


def bundled_path(name: str) -> Path:
    """Path of the bundled dataset ``name`` inside the installed package."""
    if name not in BUNDLED_DATASETS:
        raise DatasetError(
            f"unknown bundled dataset {name!r}; bundled: {', '.join(bundled_names())}"
        )
    resource = resources.files("annkit._bundled") / BUNDLED_DATASETS[name]
    path = Path(str(resource))
    if not path.is_file():
        raise DatasetError(f"bundled dataset {name!r} is missing from the installation ({path})")
    return path


def resolve_dataset_path(spec: PathLike) -> Path:
    """A bundled dataset name gives its file; else an existing file is itself; else a name
    ``annkit datasets get`` downloaded gives its file in the download directory
    (``DIR/NAME.hdf5``, or the file the directory's registry records for NAME)."""
    text = os.fspath(spec)
    if isinstance(text, str) and text in BUNDLED_DATASETS:
        return bundled_path(text)
    path = Path(text)
    if path.is_file():
        return path
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not a dataset file")
    if isinstance(text, str):
        downloaded = downloaded_path(text)
        if downloaded is not None:
            return downloaded
    hint = ""
    if isinstance(text, str) and find_entry(text) is not None:
        hint = f"; it is in the ann-benchmarks catalogue: annkit datasets get {text}"
    raise DatasetError(
        f"{path}: no such file, and not a bundled dataset (bundled: {', '.join(bundled_names())})"
        + hint
    )
