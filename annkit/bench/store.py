"""The results folder of a sweep: ``runs.jsonl``, ``perquery.h5``, ``meta.json``.

``runs.jsonl`` holds one :class:`annkit.types.RunRecord` per line (its ``to_dict`` form).
``perquery.h5`` holds, per run R, the dataset ``R`` (nq,) float32 per-query recall@k and,
where the engine counts them, ``R.distance_computations`` (nq,) int64.

Every file is rewritten whole under a temporary name in the same folder and renamed into
place, so a reader never sees a half-written file, and a sweep killed at any moment can be
resumed: records with status ``ok`` are kept and skipped.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.errors import InputError
from annkit.files import atomic_write, json_ready, remove_stale_temporaries, write_text
from annkit.types import RunRecord

RUNS_FILE = "runs.jsonl"
PERQUERY_FILE = "perquery.h5"
META_FILE = "meta.json"
PLOT_FILE = "plot.png"
LOCK_FILE = ".lock"
WORKER_LOG = "worker.log"

STATUSES = ("ok", "failed", "timeout")
#: keys present in every record, whatever its status (null when unmeasured)
REQUIRED_KEYS = (
    "run_id",
    "status",
    "engine",
    "build_params",
    "query_params",
    "k",
    "mode",
    "recall",
    "qps",
    "latency_ms",
    "build_seconds",
    "index_bytes",
    "dataset",
    "finished_at",
)


#: per-query distance computations of run R are the dataset ``R`` + this, next to ``R``
DISTANCES_SUFFIX = ".distance_computations"
#: perquery.h5 dataset of a run's returned ids (nq, k) int64 (-1 = none): ``<run_id>.ids``
IDS_SUFFIX = ".ids"


def read_runs(path: str | Path) -> list[dict]:
    """Records of a ``runs.jsonl`` file as stored (dicts), in file order; InputError naming
    the line when one is not a valid record (see :func:`read_records` for typed ones)."""
    path = Path(path)
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path} line {number}: not a valid JSON record") from None
        if not isinstance(record, dict) or "run_id" not in record or "status" not in record:
            raise InputError(f"{path} line {number}: not an annkit bench record")
        try:
            RunRecord.from_dict(record)
        except InputError as exc:
            raise InputError(f"{path} line {number}: {exc}") from None
        records.append(record)
    return records


def read_records(path: str | Path) -> list[RunRecord]:
    """The records of a ``runs.jsonl`` file as :class:`RunRecord` s, in file order."""
    return [RunRecord.from_dict(record) for record in read_runs(path)]


def locate_results(path: str | Path) -> Path:
    """The results folder named by ``path`` (the folder itself or its ``runs.jsonl``)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".jsonl":
        return path.parent
    if path.is_dir():
        if not (path / RUNS_FILE).is_file():
            raise InputError(f"{path}: no {RUNS_FILE} here (not an annkit bench results folder)")
        return path
    raise InputError(f"{path}: no such results folder or {RUNS_FILE} file")


def machine_facts() -> dict[str, Any]:
    """CPU model, core count, platform, and the versions of Python and the libraries used."""
    from importlib.metadata import PackageNotFoundError, version

    from annkit import __version__
    from annkit.engines.base import engine_names, get_engine

    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    libraries: dict[str, str | None] = {"annkit": __version__}
    packages = (("numpy", ("numpy",)), ("h5py", ("h5py",)), ("matplotlib", ("matplotlib",)))
    for label, distributions in packages:
        libraries[label] = None
        for distribution in distributions:
            try:
                libraries[label] = version(distribution)
                break
            except PackageNotFoundError:
                continue
    for name in engine_names():  # each engine names its own native libraries
        try:
            libraries.update(get_engine(name).library_versions())
        except ImportError:  # an engine whose library is not installed
            continue
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": libraries,
    }


def per_query_arrays(
    recall: Any, counts: Any | None, ids: np.ndarray | None = None
) -> dict[str, np.ndarray | None]:
    """One run's per-query arrays as :meth:`ResultsStore.add` takes them (and compact for a
    pipe): recall float32, distance computations int64 (None when the engine cannot count)
    and the returned ids (None when not kept)."""
    return {
        "recall": np.asarray(recall, dtype=np.float32),
        "distance_computations": None if counts is None else np.asarray(counts, dtype=np.int64),
        "ids": ids,
    }


class ResultsStore:
    """One sweep's results folder: its :class:`RunRecord` s keyed by ``run_id``, read once
    from runs.jsonl. Adding a record for an existing run_id replaces it (a retried failure),
    so runs.jsonl never holds duplicates."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.runs_path = self.path / RUNS_FILE
        self.perquery_path = self.path / PERQUERY_FILE
        self.meta_path = self.path / META_FILE
        self.records: dict[str, RunRecord] = {}
        self.reload()

    def reload(self) -> None:
        """Read the records on disk again (e.g. once the folder is locked)."""
        self.records = {}
        if self.runs_path.is_file():
            for record in read_records(self.runs_path):
                self.records[record.run_id] = record

    def ok_run_ids(self) -> set[str]:
        return {run_id for run_id, record in self.records.items() if record.status == "ok"}

    def read_meta(self) -> dict | None:
        if not self.meta_path.is_file():
            return None
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(f"{self.meta_path}: damaged (not JSON)") from None
        return meta if isinstance(meta, dict) else None

    def write_meta(self, meta: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.meta_path, json.dumps(json_ready(meta), indent=2, sort_keys=False) + "\n")

    def reset(self) -> None:
        """Forget every record (``--force``): empty runs.jsonl, no perquery.h5."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.records = {}
        write_text(self.runs_path, "")
        self.perquery_path.unlink(missing_ok=True)

    def add(
        self,
        record: RunRecord | Mapping[str, Any],
        per_query: np.ndarray | Mapping[str, np.ndarray | None] | None = None,
    ) -> None:
        """Store one finished run: its per-query arrays first, then the record (the commit).

        ``per_query`` is the per-query recall (nq,), or a mapping with ``recall``,
        ``distance_computations`` (nq,) int64 (None when the engine cannot count) and
        ``ids`` (nq, k) int64, the ids the run returned (optional). A record given in its
        runs.jsonl form (a mapping) is read as from disk."""
        self.path.mkdir(parents=True, exist_ok=True)
        stored = json_ready(record.to_dict() if isinstance(record, RunRecord) else dict(record))
        record = RunRecord.from_dict(stored)  # as it will read back (non-finite numbers: None)
        if per_query is not None:
            if isinstance(per_query, Mapping):
                recall, counts = per_query.get("recall"), per_query.get("distance_computations")
                ids = per_query.get("ids")
            else:
                recall, counts, ids = per_query, None, None
            if recall is not None:
                self._write_per_query(record.run_id, recall, counts, ids)
        self.records[record.run_id] = record
        text = "".join(
            json.dumps(json_ready(item.to_dict()), allow_nan=False) + "\n"
            for item in self.records.values()
        )
        write_text(self.runs_path, text)

    def _write_per_query(
        self,
        run_id: str,
        recall: np.ndarray,
        counts: np.ndarray | None,
        ids: np.ndarray | None = None,
    ) -> None:
        import h5py

        with atomic_write(self.perquery_path, make_parents=True) as tmp:
            if self.perquery_path.is_file():
                shutil.copyfile(self.perquery_path, tmp)
            with h5py.File(tmp, "a") as handle:
                for name in (run_id, run_id + DISTANCES_SUFFIX, run_id + IDS_SUFFIX):
                    if name in handle:
                        del handle[name]
                handle.create_dataset(run_id, data=np.asarray(recall, dtype=np.float32))
                if counts is not None:
                    handle.create_dataset(
                        run_id + DISTANCES_SUFFIX, data=np.asarray(counts, dtype=np.int64)
                    )
                if ids is not None:
                    handle.create_dataset(run_id + IDS_SUFFIX, data=np.asarray(ids, dtype=np.int64))

    def _read_per_query(self, name: str) -> np.ndarray | None:
        if not self.perquery_path.is_file():
            return None
        import h5py

        with h5py.File(self.perquery_path, "r") as handle:
            return handle[name][()] if name in handle else None

    def per_query_recall(self, run_id: str) -> np.ndarray | None:
        """The per-query recall array (nq,) float32 of one run, or None."""
        return self._read_per_query(run_id)

    def per_query_distance_computations(self, run_id: str) -> np.ndarray | None:
        """The per-query distance computations (nq,) int64 of one run, or None (not counted
        by the engine, or not stored)."""
        return self._read_per_query(run_id + DISTANCES_SUFFIX)

    def per_query_ids(self, run_id: str) -> np.ndarray | None:
        """The ids (nq, k) int64 one run returned (-1 = none), or None (not stored: runs
        written before they were kept)."""
        return self._read_per_query(run_id + IDS_SUFFIX)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder (released by the OS if the process dies)."""
        self.path.mkdir(parents=True, exist_ok=True)
        leftovers = (RUNS_FILE, PERQUERY_FILE, META_FILE, PLOT_FILE)
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        with open(self.path / LOCK_FILE, "w") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise InputError(
                    f"{self.path} is in use by another annkit bench; wait for it or choose "
                    "another -o"
                ) from None
            remove_stale_temporaries(self.path, leftovers)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
