"""The results folder of a sweep: ``runs.jsonl``, ``perquery.h5``, ``meta.json``.

Every file is rewritten whole under a temporary name in the same folder and renamed into
place, so a reader never sees a half-written file, and a sweep killed at any moment can be
resumed: records with status ``ok`` are kept and skipped.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bench.files import remove_stale_temporaries, replacing, write_text
from annkit.errors import InputError

RUNS_FILE = "runs.jsonl"
PERQUERY_FILE = "perquery.h5"
META_FILE = "meta.json"
PLOT_FILE = "plot.png"
LOCK_FILE = ".lock"
WORKER_LOG = "worker.log"

STATUSES = ("ok", "failed", "timeout")
#: keys present in every record, whatever its status (null when unmeasured)
REQUIRED_KEYS = (
    "run_id", "status", "engine", "build_params", "query_params", "k", "mode", "recall", "qps",
    "latency_ms", "build_seconds", "index_bytes", "dataset", "finished_at",
)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as Python values and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def read_runs(path: str | Path) -> list[dict]:
    """Records of a ``runs.jsonl`` file, in file order."""
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
        records.append(record)
    return records


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
    packages = (("numpy", ("numpy",)), ("faiss", ("faiss-cpu", "faiss-gpu", "faiss")),
                ("hnswlib", ("hnswlib",)), ("annoy", ("annoy",)), ("h5py", ("h5py",)),
                ("matplotlib", ("matplotlib",)))
    for label, distributions in packages:
        libraries[label] = None
        for distribution in distributions:
            try:
                libraries[label] = version(distribution)
                break
            except PackageNotFoundError:
                continue
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": libraries,
    }


class ResultsStore:
    """One sweep's results folder. Records are keyed by ``run_id``; adding a record for an
    existing run_id replaces it (a retried failure), so runs.jsonl never holds duplicates."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.runs_path = self.path / RUNS_FILE
        self.perquery_path = self.path / PERQUERY_FILE
        self.meta_path = self.path / META_FILE
        self.records: dict[str, dict] = {}
        self.reload()

    def reload(self) -> None:
        """Read the records on disk again (e.g. once the folder is locked)."""
        self.records = {}
        if self.runs_path.is_file():
            for record in read_runs(self.runs_path):
                self.records[record["run_id"]] = record

    def ok_run_ids(self) -> set[str]:
        return {run_id for run_id, record in self.records.items() if record["status"] == "ok"}

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
        write_text(self.meta_path, json.dumps(jsonable(meta), indent=2, sort_keys=False) + "\n")

    def reset(self) -> None:
        """Forget every record (``--force``): empty runs.jsonl, no perquery.h5."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.records = {}
        write_text(self.runs_path, "")
        self.perquery_path.unlink(missing_ok=True)

    def add(self, record: dict, per_query_recall: np.ndarray | None = None) -> None:
        """Store one finished run: its per-query recall first, then the record (the commit)."""
        self.path.mkdir(parents=True, exist_ok=True)
        record = jsonable(record)
        missing = [key for key in REQUIRED_KEYS if key not in record]
        assert not missing, f"record lacks {missing}"
        if per_query_recall is not None:
            self._write_per_query(record["run_id"], per_query_recall)
        self.records[record["run_id"]] = record
        text = "".join(json.dumps(item, allow_nan=False) + "\n" for item in self.records.values())
        write_text(self.runs_path, text)

    def _write_per_query(self, run_id: str, values: np.ndarray) -> None:
        import h5py

        with replacing(self.perquery_path) as tmp:
            if self.perquery_path.is_file():
                shutil.copyfile(self.perquery_path, tmp)
            with h5py.File(tmp, "a") as handle:
                if run_id in handle:
                    del handle[run_id]
                handle.create_dataset(run_id, data=np.asarray(values, dtype=np.float32))

    def per_query_recall(self, run_id: str) -> np.ndarray | None:
        """The per-query recall array (nq,) float32 of one run, or None."""
        if not self.perquery_path.is_file():
            return None
        import h5py

        with h5py.File(self.perquery_path, "r") as handle:
            return handle[run_id][()] if run_id in handle else None

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
