"""Child process of the fuzz harness: load many damaged files, report each outcome.

Run as ``python -P fuzz_child.py CASES.json REPORT START``. Once its imports are done it
writes ``R`` to REPORT; then for every case from index START on it appends ``S <index>``
before touching the file and ``E <index> <json>`` after, each with a single ``os.write``
so the lines survive the process being killed. The parent (``fuzz_harness.py``) watches
REPORT: a case with ``S`` but no ``E`` when the process died by a signal or stopped making
progress is the one that crashed or hung it.

An outcome is a list of ``[operation, result]`` pairs where result is ``"ok"``,
``"annkit:<ErrorClass>:<message>"`` or ``"other:<ExceptionClass>:<message>"``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Damage may claim terabytes; a loader must refuse before allocating, never try. The cap
# makes an attempted huge allocation fail fast (a MemoryError, which counts as a finding)
# instead of swapping the CI machine to death.
ADDRESS_SPACE_LIMIT = 6 * 2**30


def _touch(array: Any) -> None:
    """Read every value of a (possibly memory-mapped) array."""
    values = np.ascontiguousarray(array)
    if values.size:
        np.bitwise_xor.reduce(values.view(np.uint8).ravel())


def _operations(kind: str, path: Path, extra: dict) -> list[tuple[str, Callable[[], Any]]]:
    from annkit.bundle import load_bundle, read_manifest
    from annkit.io import (
        describe_file,
        load_dataset,
        load_dataset_files,
        read_ids,
        read_vectors,
        read_weights,
        validate_vectors,
    )
    from annkit.io.dispatch import declared_metric
    from annkit.sources import open_base, open_queries

    def vectors() -> None:
        array = read_vectors(path)
        _touch(array)
        validate_vectors(array, path.name, "angular")

    def ids() -> None:
        _touch(read_ids(path))

    def weights() -> None:
        _touch(read_weights(path))

    def dataset() -> None:
        loaded = load_dataset(path)
        for part in (loaded.base, loaded.queries, loaded.neighbors, loaded.weights):
            if part is not None:
                _touch(part)

    def dataset_files() -> None:
        loaded = load_dataset_files(
            path, extra["queries"], extra.get("groundtruth"), metric="angular"
        )
        _touch(loaded.base)

    def base() -> None:
        _touch(open_base(str(path), None)[0])

    def queries() -> None:
        # an index of the metric the file declares (a file of another metric is refused)
        _touch(open_queries(str(path), declared_metric(path) or "euclidean"))

    def bundle() -> None:
        loaded = load_bundle(path)
        dim = int(loaded.manifest["dim"])
        rng = np.random.default_rng(3)
        probe = rng.standard_normal((4, dim)).astype(np.float32)
        result = loaded.engine.search(probe, 5)
        _touch(result.ids)

    def manifest() -> None:
        read_manifest(path)

    table: dict[str, list[tuple[str, Callable[[], Any]]]] = {
        "vectors": [("describe", lambda: describe_file(path)), ("read_vectors", vectors)],
        "ids": [("describe", lambda: describe_file(path)), ("read_ids", ids)],
        "weights": [("read_weights", weights)],
        "hdf5": [
            ("describe", lambda: describe_file(path)),
            ("load_dataset", dataset),
            ("read_vectors", vectors),
            ("read_ids", ids),
            ("open_base", base),
            ("open_queries", queries),
        ],
        "pair": [("load_dataset_files", dataset_files)],
        "bundle": [("read_manifest", manifest), ("load_and_search", bundle)],
        # for the harness's own test: a crash, a hang and a stray exception
        "selftest-crash": [("crash", lambda: os.kill(os.getpid(), signal.SIGSEGV))],
        "selftest-hang": [("hang", lambda: time.sleep(3600))],
        "selftest-raise": [("raise", _raise_value_error)],
    }
    return table[kind]


def _raise_value_error() -> None:
    raise ValueError("not an annkit error")


def _result(exc: BaseException | None) -> str:
    from annkit.errors import AnnkitError

    if exc is None:
        return "ok"
    family = "annkit" if isinstance(exc, AnnkitError) else "other"
    return f"{family}:{type(exc).__name__}:{exc}"


def _emit(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode("utf-8", errors="backslashreplace"))


def main(argv: list[str]) -> None:
    cases_file, report_file, start = argv[0], argv[1], int(argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    cases = json.loads(Path(cases_file).read_text())
    import annkit.bundle  # noqa: F401 - import everything before the first case is timed
    import annkit.engines  # noqa: F401
    import annkit.sources  # noqa: F401

    # a warning is output the user did not ask for (and breaks the one-line error rule)
    warnings.simplefilter("error")
    fd = os.open(report_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _emit(fd, "R")  # ready: from here on the parent's stall watchdog applies
    for index in range(start, len(cases)):
        case = cases[index]
        _emit(fd, f"S {index}")
        outcome = []
        for name, operation in _operations(case["kind"], Path(case["path"]), case.get("extra", {})):
            try:
                operation()
                error = None
            except Exception as exc:  # noqa: BLE001 - the parent classifies every exception
                error = exc
            outcome.append([name, _result(error)])
        _emit(fd, f"E {index} {json.dumps(outcome)}")
    os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1:])
