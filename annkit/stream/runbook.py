"""Streaming runbooks in big-ann-benchmarks' format (``neurips23/runbooks/*.yaml``): read,
check the whole runbook before anything runs, and follow the live set step by step.

A runbook file maps entry names (big-ann: dataset names) to entries. An entry holds
``max_pts`` (the most vectors live at once) and numbered steps ``1, 2, ...``, each an
``operation``: ``insert`` (``start``, ``end``: rows start..end-1 go live under ids equal to
their row numbers), ``delete`` (``start``, ``end``: those ids leave), ``replace``
(``tags_start``, ``tags_end``, ``ids_start``, ``ids_end``: the live ids tags_start..tags_end-1
get the vectors of rows ids_start..ids_end-1) or ``search``. ``gt_url`` (big-ann's download
address for its own ground truth) is accepted and ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annkit.errors import InputError

OPERATIONS: tuple[str, ...] = ("insert", "delete", "replace", "search")
#: the fields each operation needs
FIELDS: dict[str, tuple[str, ...]] = {
    "insert": ("start", "end"),
    "delete": ("start", "end"),
    "replace": ("tags_start", "tags_end", "ids_start", "ids_end"),
    "search": (),
}
#: entry keys that are not steps
ENTRY_KEYS = ("max_pts", "gt_url")


class RunbookError(InputError):
    """A runbook that cannot run: one line naming the file and, where it is a step's fault,
    the step."""


@dataclass(frozen=True)
class Step:
    """One runbook step: its number (1-based, the runbook's own), operation and fields."""

    number: int
    operation: str
    start: int = 0
    end: int = 0
    #: replace: the live ids that get new vectors (tags) and the rows those come from
    tags_start: int = 0
    tags_end: int = 0
    ids_start: int = 0
    ids_end: int = 0

    @property
    def is_change(self) -> bool:
        return self.operation != "search"

    def ids(self) -> np.ndarray:
        """The ids the step changes (n,) int64 (empty for a search)."""
        if self.operation in ("insert", "delete"):
            return np.arange(self.start, self.end, dtype=np.int64)
        if self.operation == "replace":
            return np.arange(self.tags_start, self.tags_end, dtype=np.int64)
        return np.empty(0, dtype=np.int64)

    def rows(self) -> np.ndarray:
        """The data rows whose vectors the step adds (n,) int64 (insert, replace)."""
        if self.operation == "insert":
            return np.arange(self.start, self.end, dtype=np.int64)
        if self.operation == "replace":
            return np.arange(self.ids_start, self.ids_end, dtype=np.int64)
        return np.empty(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """The step as a runbook writes it."""
        return {"operation": self.operation} | {
            name: int(getattr(self, name)) for name in FIELDS[self.operation]
        }


@dataclass(frozen=True)
class Runbook:
    """A checked runbook entry: ``max_pts``, the steps in order, where it came from."""

    path: str
    entry: str
    max_pts: int
    steps: tuple[Step, ...]
    #: sha256 of the entry's steps and max_pts (identifies a stream for resuming)
    digest: str = field(default="")

    @property
    def search_steps(self) -> int:
        return sum(1 for step in self.steps if step.operation == "search")

    def operations(self) -> set[str]:
        return {step.operation for step in self.steps}


class LiveSet:
    """The ids live after each step and the data row each one holds: ``row_of[id]`` is the
    row (-1: not live), ids in [0, n_rows)."""

    def __init__(self, n_rows: int) -> None:
        self.row_of = np.full(int(n_rows), -1, dtype=np.int64)
        self.count = 0

    def apply(self, step: Step) -> None:
        """Follow ``step`` (already checked)."""
        if step.operation == "insert":
            self.row_of[step.start : step.end] = step.rows()
            self.count += step.end - step.start
        elif step.operation == "delete":
            self.row_of[step.start : step.end] = -1
            self.count -= step.end - step.start
        elif step.operation == "replace":
            self.row_of[step.tags_start : step.tags_end] = step.rows()

    def ids(self) -> np.ndarray:
        """The live ids, ascending (n_live,) int64."""
        return np.flatnonzero(self.row_of >= 0).astype(np.int64)

    def rows(self, ids: np.ndarray | None = None) -> np.ndarray:
        """The data rows of ``ids`` (default: all live ids, ascending)."""
        return self.row_of[self.ids() if ids is None else ids]

    def digest(self) -> str:
        """sha256 of the live (id, row) pairs: the live set's identity."""
        ids = self.ids()
        digest = hashlib.sha256(ids.tobytes())
        digest.update(self.row_of[ids].tobytes())
        return digest.hexdigest()[:24]


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunbookError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _step_number(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().isdigit():
        return int(key.strip())
    return None


def parse_step(number: int, value: Any, where: str) -> Step:
    """One step from its YAML mapping (fields checked for presence and type only)."""
    name = f"{where}: step {number}"
    if not isinstance(value, dict):
        raise RunbookError(f"{name}: expected a mapping with an operation, got {value!r}")
    operation = value.get("operation")
    if operation not in OPERATIONS:
        raise RunbookError(
            f"{name}: unknown operation {operation!r} (known: {', '.join(OPERATIONS)})"
        )
    needed = FIELDS[operation]
    missing = [key for key in needed if key not in value]
    if missing:
        raise RunbookError(
            f"{name} ({operation}): needs {', '.join(needed)}; {missing[0]} is missing"
        )
    unknown = sorted(str(key) for key in value if key not in ("operation", *needed))
    if unknown:
        raise RunbookError(f"{name} ({operation}): unknown field {unknown[0]!r}")
    fields = {key: _integer(value[key], f"{name} ({operation}): {key}") for key in needed}
    return Step(number=number, operation=operation, **fields)


def choose_entry(document: Any, path: str, dataset: str, entry: str | None) -> str:
    """The entry to run: ``entry`` when given, else the one named after ``dataset``, else the
    only one."""
    if not isinstance(document, dict) or not document:
        raise RunbookError(f"{path}: not a runbook (expected entries mapping names to steps)")
    names = [str(name) for name in document]
    if entry is not None:
        if entry not in names:
            raise RunbookError(f"{path}: no entry {entry!r} (entries: {', '.join(names)})")
        return entry
    if dataset in names:
        return dataset
    if len(names) == 1:
        return names[0]
    raise RunbookError(
        f"{path}: no entry named {dataset!r} among {', '.join(names)}; choose one with --entry"
    )


def parse_entry(value: Any, path: str, name: str) -> tuple[int, list[Step]]:
    """(max_pts, steps in order) of one entry."""
    where = f"{path} [{name}]"
    if not isinstance(value, dict):
        raise RunbookError(f"{where}: expected a mapping of max_pts and numbered steps")
    if "max_pts" not in value:
        raise RunbookError(f"{where}: max_pts is missing (the most vectors live at once)")
    max_pts = _integer(value["max_pts"], f"{where}: max_pts")
    if max_pts < 1:
        raise RunbookError(f"{where}: max_pts must be >= 1, got {max_pts}")
    numbered: dict[int, Any] = {}
    for key, item in value.items():
        if key in ENTRY_KEYS:
            continue
        number = _step_number(key)
        if number is None:
            raise RunbookError(f"{where}: unknown key {key!r} (steps are numbered 1, 2, ...)")
        numbered[number] = item
    if not numbered:
        raise RunbookError(f"{where}: no steps")
    expected = list(range(1, len(numbered) + 1))
    if sorted(numbered) != expected:
        gap = next(n for n in expected if n not in numbered)
        raise RunbookError(f"{where}: steps must be numbered 1, 2, 3, ...: step {gap} is missing")
    return max_pts, [parse_step(n, numbered[n], where) for n in expected]


def check_steps(steps: list[Step], max_pts: int, n_rows: int, where: str) -> None:
    """Follow the live set through every step and refuse the first that cannot run: an id
    range outside the data, an insert of live ids or past ``max_pts``, a delete or replace of
    ids that are not live."""
    live = np.zeros(n_rows, dtype=bool)
    count = 0

    def in_data(step: Step, start: int, end: int, what: str) -> None:
        if not 0 <= start < end <= n_rows:
            raise RunbookError(
                f"{where}: step {step.number} ({step.operation}): {what} {start}..{end} is "
                f"outside the data's {n_rows:,} rows (needs 0 <= start < end <= {n_rows:,})"
            )

    for step in steps:
        name = f"{where}: step {step.number} ({step.operation})"
        if step.operation == "insert":
            in_data(step, step.start, step.end, "range")
            taken = np.flatnonzero(live[step.start : step.end])
            if taken.size:
                raise RunbookError(f"{name}: id {step.start + int(taken[0])} is already live")
            count += step.end - step.start
            if count > max_pts:
                raise RunbookError(
                    f"{name}: inserts past max_pts: {count:,} live > max_pts {max_pts:,}"
                )
            live[step.start : step.end] = True
        elif step.operation == "delete":
            in_data(step, step.start, step.end, "range")
            absent = np.flatnonzero(~live[step.start : step.end])
            if absent.size:
                raise RunbookError(
                    f"{name}: deletes id {step.start + int(absent[0])}, which was never "
                    "inserted or is already deleted"
                )
            live[step.start : step.end] = False
            count -= step.end - step.start
        elif step.operation == "replace":
            in_data(step, step.tags_start, step.tags_end, "tags")
            in_data(step, step.ids_start, step.ids_end, "ids (rows)")
            if step.tags_end - step.tags_start != step.ids_end - step.ids_start:
                raise RunbookError(
                    f"{name}: tags {step.tags_start}..{step.tags_end} and ids "
                    f"{step.ids_start}..{step.ids_end} differ in length"
                )
            absent = np.flatnonzero(~live[step.tags_start : step.tags_end])
            if absent.size:
                raise RunbookError(
                    f"{name}: replaces id {step.tags_start + int(absent[0])}, which is not live"
                )


def entry_digest(max_pts: int, steps: list[Step]) -> str:
    """sha256 of max_pts and the steps: the same steps give the same digest, whatever the
    file's layout."""
    text = repr((max_pts, [step.to_dict() for step in steps]))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load_yaml(path: str | Path) -> Any:
    """The YAML document of ``path`` (RunbookError for a missing or malformed file)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunbookError(f"{path}: no such runbook file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise RunbookError(f"{path}:{line}: not valid YAML ({problem})") from None


def read_runbook(
    path: str | Path, dataset: str, n_rows: int, *, entry: str | None = None
) -> Runbook:
    """The checked runbook entry of ``path`` for a dataset named ``dataset`` (its file stem)
    with ``n_rows`` rows: ``entry`` when given, else the entry named ``dataset``, else the
    only entry. Every step is checked before anything runs (RunbookError, one line)."""
    document = load_yaml(path)
    name = choose_entry(document, str(path), dataset, entry)
    max_pts, steps = parse_entry(document[name], str(path), name)
    check_steps(steps, max_pts, n_rows, f"{path} [{name}]")
    return Runbook(
        path=str(path),
        entry=name,
        max_pts=max_pts,
        steps=tuple(steps),
        digest=entry_digest(max_pts, steps),
    )


def runbook_document(entries: dict[str, tuple[int, list[Step]]]) -> dict[str, Any]:
    """A runbook file's document: entry name -> {max_pts, 1: step, 2: step, ...}."""
    document: dict[str, Any] = {}
    for name, (max_pts, steps) in entries.items():
        body: dict[Any, Any] = {"max_pts": int(max_pts)}
        for step in steps:
            body[step.number] = step.to_dict()
        document[name] = body
    return document
