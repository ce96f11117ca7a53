"""Index bundles: a directory with ``manifest.json`` and the engine's payload files.

The manifest is checked (format, engine, parameters, file names, sizes, sha256) before any
native library reads a payload byte, so a damaged or foreign bundle is refused with a
clear message instead of crashing the process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annkit import __version__
from annkit.engines.base import Engine, get_engine
from annkit.errors import BundleError, InputError, ParamError
from annkit.labels import Labels
from annkit.memory import check_memory
from annkit.parallel import NATIVE_THREAD, run_interruptibly
from annkit.sources import open_base, open_base_labels
from annkit.types import METRICS, normalize_metric

FORMAT = "annkit-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20
#: the payload file holding a bundle's base labels (group ``train_labels``), when it has them
LABELS_FILE = "base_labels.hdf5"


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified index bundle."""

    path: Path
    manifest: dict
    engine: Engine

    @property
    def build_seconds(self) -> float:
        return float(self.manifest["build_seconds"])

    @property
    def index_bytes(self) -> int:
        """Bytes of the engine's payload files (the base labels file not counted)."""
        return int(
            sum(
                entry["bytes"]
                for name, entry in self.manifest["files"].items()
                if name != LABELS_FILE
            )
        )

    def base_labels(self) -> Labels | None:
        """The labels of the indexed vectors (one row per vector id), or None when the
        bundle was built from data without labels. Read from the verified payload."""
        return read_bundle_labels(self.path, self.manifest)


def read_bundle_labels(path: str | Path, manifest: dict) -> Labels | None:
    """The base labels a bundle keeps (its :data:`LABELS_FILE`), or None."""
    from annkit.io.labels import read_label_group

    if LABELS_FILE not in manifest["files"]:
        return None
    try:
        return read_label_group(Path(path) / LABELS_FILE, "train_labels", rows=manifest["count"])
    except InputError as exc:
        raise BundleError(f"{path}: {exc}") from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_vectors(vectors: np.ndarray) -> str:
    """A cheap, stable fingerprint of a vector set: shape plus up to 1,024 evenly spaced rows."""
    count = int(vectors.shape[0])
    rows = np.unique(np.linspace(0, count - 1, num=min(count, 1024)).astype(np.int64))
    digest = hashlib.sha256(f"{vectors.shape}".encode())
    digest.update(np.ascontiguousarray(vectors[rows], dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def _library_versions(engine: Engine) -> dict[str, str]:
    versions = {"annkit": __version__, "numpy": np.__version__, "python": platform.python_version()}
    versions.update(engine.library_versions())
    return versions


def _replace_directory(staging: Path, target: Path, overwrite: bool) -> None:
    """Move the finished ``staging`` directory to ``target`` (atomically when target is new)."""
    if target.exists():
        if not overwrite:
            raise InputError(f"{target} already exists (use --force to replace it)")
        if not (target / MANIFEST).is_file():
            raise InputError(f"{target} exists and is not an annkit index; refusing to replace it")
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, target)


def save_bundle(
    engine: Engine,
    target: str | Path,
    *,
    build_seconds: float,
    dataset_fingerprint: str = "",
    dataset_name: str = "",
    threads: int = 1,
    overwrite: bool = False,
    base_labels: Labels | None = None,
) -> Path:
    """Write ``engine`` as a bundle directory at ``target``; returns the path. With
    ``base_labels`` (one row per indexed vector) the bundle keeps them as the payload file
    :data:`LABELS_FILE`, checksummed like the engine's files.

    Everything is written into a hidden staging directory beside the target first; the
    directory is renamed into place only when the payload and manifest are complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists (use --force to replace it)")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        names = engine.save(staging)
        if base_labels is not None:
            names = [*names, _save_labels(staging, base_labels, engine.count)]
        files = {
            name: {"bytes": (staging / name).stat().st_size, "sha256": sha256_file(staging / name)}
            for name in names
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "engine": engine.name,
            "build_params": engine.built_params(),
            "metric": engine.metric,
            "dim": engine.dim,
            "count": engine.count,
            "build_seconds": round(float(build_seconds), 6),
            "build_threads": int(threads),
            "dataset": dataset_name,
            "dataset_fingerprint": dataset_fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "library_versions": _library_versions(engine),
            "files": files,
        }
        with open(staging / MANIFEST, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        _replace_directory(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _save_labels(staging: Path, labels: Labels, count: int) -> str:
    """Write the base labels into the staging directory; returns the file's name."""
    import h5py

    from annkit.io.hdf5 import write_label_group

    if labels.n_rows != count:
        raise InputError(f"{labels.n_rows:,} rows of base labels for {count:,} indexed vectors")
    with h5py.File(staging / LABELS_FILE, "w") as handle:
        write_label_group(handle, "train_labels", labels)
    return LABELS_FILE


def read_manifest(path: str | Path) -> dict:
    """Read and validate a bundle's manifest without touching the payload."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.exists():
        raise BundleError(f"{path}: no such index directory")
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not an annkit index (no {MANIFEST})")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{manifest_path}: implausibly large manifest")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BundleError(f"{manifest_path}: damaged manifest ({exc.__class__.__name__})") from None
    _check_manifest(path, manifest)
    return manifest


def _check_manifest(path: Path, manifest: Any) -> None:
    def fail(reason: str) -> BundleError:
        return BundleError(f"{path}: {reason}")

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise fail("not an annkit index manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise fail(
            f"index format version {manifest.get('format_version')!r} is not supported "
            f"(this annkit reads version {FORMAT_VERSION}); rebuild the index"
        )
    for key, kind in (
        ("engine", str),
        ("metric", str),
        ("dim", int),
        ("count", int),
        ("build_params", dict),
        ("files", dict),
        ("build_seconds", (int, float)),
    ):
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise fail(f"manifest field {key!r} is missing or has the wrong type")
    if manifest["metric"] not in METRICS:
        raise fail(f"unknown metric {manifest['metric']!r} in manifest")
    if manifest["dim"] <= 0 or manifest["count"] <= 0:
        raise fail("manifest has a non-positive dim or count")
    if not manifest["files"]:
        raise fail("manifest lists no payload files")
    for name, entry in manifest["files"].items():
        if (
            not isinstance(name, str)
            or name in ("", ".", "..", MANIFEST)
            or "/" in name
            or "\\" in name
            or "\x00" in name
            or name != os.path.basename(name)
        ):
            raise fail(f"manifest names an unsafe payload file {name!r}")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("bytes"), int)
            or not isinstance(entry.get("sha256"), str)
        ):
            raise fail(f"manifest entry for {name!r} is malformed")


def verify_payload(path: str | Path, manifest: dict) -> None:
    """Check that every payload file exists, is a regular file, and matches size and sha256."""
    path = Path(path)
    for name, entry in manifest["files"].items():
        file_path = path / name
        if file_path.is_symlink() or not file_path.is_file():
            raise BundleError(f"{path}: payload file {name} is missing")
        size = file_path.stat().st_size
        if size != entry["bytes"]:
            raise BundleError(
                f"{path}: payload file {name} has {size} bytes, manifest says {entry['bytes']} "
                "(truncated or damaged)"
            )
        if sha256_file(file_path) != entry["sha256"]:
            raise BundleError(f"{path}: payload file {name} fails its sha256 check (damaged)")


def load_bundle(path: str | Path) -> Bundle:
    """Verify a bundle completely, then let its engine load the payload."""
    path = Path(path)
    manifest = read_manifest(path)
    try:
        engine_class = get_engine(manifest["engine"])
    except ParamError as exc:
        raise BundleError(f"{path}: {exc}") from None
    verify_payload(path, manifest)
    params = {
        name: value
        for name, value in manifest["build_params"].items()
        if name in engine_class.build_specs
    }
    try:
        engine = engine_class.load(
            path, manifest["metric"], manifest["dim"], manifest["count"], params
        )
    except InputError as exc:
        raise BundleError(f"{path}: {exc}") from None
    except (OSError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        # a native loader refusing a payload that does not fit the manifest (a foreign or
        # hand-edited bundle): its own words, on one line
        lines = str(exc).strip().splitlines()
        reason = lines[0][:200] if lines else type(exc).__name__
        raise BundleError(
            f"{path}: the {manifest['engine']} payload does not fit its manifest ({reason})"
        ) from None
    return Bundle(path=path, manifest=manifest, engine=engine)


#: name of the thread a build runs in (see :func:`annkit.parallel.run_interruptibly`)
BUILD_THREAD = NATIVE_THREAD


def build_index(
    engine_name: str,
    base: np.ndarray,
    metric: str,
    params: dict[str, Any] | None = None,
    threads: int = 1,
    *,
    memory_check: bool = True,
) -> tuple[Engine, float]:
    """Build an engine over ``base``; returns the engine and the build wall time in seconds.

    Unless not ``memory_check``, the engine's memory estimate is checked first and a build
    that cannot fit is refused (ResourceError naming the estimate)."""
    engine = get_engine(engine_name)(metric, int(base.shape[1]), **(params or {}))
    n_base, dim = int(base.shape[0]), int(base.shape[1])
    check_memory(
        engine.estimate_build_bytes(n_base),
        f"building {engine_name} over {n_base:,} x {dim} vectors",
        "use fewer vectors or smaller build parameters",
        force=not memory_check,
    )
    start = time.perf_counter()
    run_interruptibly(lambda: engine.build(base, threads=threads))
    return engine, time.perf_counter() - start


@dataclass(frozen=True)
class BuiltBundle:
    """What :func:`build_bundle` wrote: the bundle's path, engine and resolved build params,
    metric, shape, build seconds and threads, and the payload bytes (manifest excluded)."""

    index: str
    engine: str
    build_params: dict
    metric: str
    dim: int
    count: int
    build_seconds: float
    index_bytes: int
    threads: int

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "index": self.index,
            "engine": self.engine,
            "build_params": dict(self.build_params),
            "metric": self.metric,
            "dim": self.dim,
            "count": self.count,
            "build_seconds": self.build_seconds,
            "index_bytes": self.index_bytes,
            "threads": self.threads,
        }


def build_bundle(
    data: str | Path | None,
    engine_name: str,
    output: str | Path,
    *,
    params: dict[str, Any] | None = None,
    metric: str | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    memory_check: bool = True,
    base_labels: str | Path | None = None,
) -> BuiltBundle:
    """Build ``engine_name`` over the base vectors of ``data`` (see
    :func:`annkit.sources.open_base`) with ``params`` and write it as a bundle at ``output``.

    Unknown params are refused before the data is read, an existing ``output`` unless
    ``overwrite``, and a build that cannot fit in memory unless not ``memory_check``.
    ``threads`` defaults to all cores. The base vectors' labels (the label file
    ``base_labels``, else a dataset file's ``train_labels``) are kept in the bundle."""
    params = dict(params or {})
    get_engine(engine_name)(normalize_metric(metric) if metric else "euclidean", 1, **params)
    base, chosen_metric, name = open_base(data, metric)
    labels = open_base_labels(data, int(base.shape[0]), base_labels)
    if Path(output).exists() and not overwrite:
        raise InputError(f"{output} already exists (use --force to replace it)")
    threads = threads or os.cpu_count() or 1
    engine, seconds = build_index(
        engine_name, base, chosen_metric, params, threads, memory_check=memory_check
    )
    path = save_bundle(
        engine,
        output,
        build_seconds=seconds,
        overwrite=overwrite,
        threads=threads,
        dataset_fingerprint=fingerprint_vectors(base),
        dataset_name=name,
        base_labels=labels,
    )
    index_bytes = sum(
        f.stat().st_size for f in path.iterdir() if f.name not in (MANIFEST, LABELS_FILE)
    )
    return BuiltBundle(
        index=str(path),
        engine=engine.name,
        build_params=engine.built_params(),
        metric=chosen_metric,
        dim=engine.dim,
        count=engine.count,
        build_seconds=seconds,
        index_bytes=index_bytes,
        threads=threads,
    )
