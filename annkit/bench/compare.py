"""The regression gate: a sweep compared with a baseline sweep, setting by setting.

A setting is matched by its ``run_id``, annkit's key of one (engine, build params, query
params, k, mode) setting (:func:`annkit.bench.spec.make_run_id`). It covers every parameter
including the defaults, so ``M = 16`` written out and ``M`` left at its default match. It is
also the same whether the run succeeded or failed: a failed ivfpq build records
``nlist = None`` where the successful one records the resolved value.

A matched setting regresses when its recall@k, overall or on the ``tail`` slice, drops by
more than ``max_recall_drop`` (absolute). A baseline setting that is missing from the
current sweep, or failed there, fails the gate too. ``slice_name`` gates one slice of the
queries instead (its recall and its work, e.g. ``hard-lid``).

The work gate knows the baseline's recall-vs-work frontier of every index (engine + build
params): the upper-left Pareto frontier of its settings' (mean distance computations per
query, recall) points, interpolated piecewise-linearly in log(work) and log(1 - recall) (a
power law between neighbouring points; plain recall is concave in log(work) and would sit
below the real curve by more than the tolerance between ef 16 and 32 of an HNSW graph).
Beyond its most expensive setting the frontier stays at its best recall; below its cheapest
one it is unknown. A setting regresses when its current point falls below that frontier by
more than ``max_recall_drop`` (more than it did in the baseline), and when its work rose by
more than ``max_work_increase`` unless its point lies above the frontier by more than
``max_recall_drop``: more work that moves along the same curve (an effort bug: more work,
a bit more recall) fails, a better trade-off passes. With single-threaded builds and
searches the counts are exactly the same on every run and every machine. A setting whose
engine does not count is shown as "work not counted" (never as checked); one whose
baseline was counted but current is not fails.

QPS: compared as the speed-up over the exact ``flat`` run of the same sweep (raw QPS when a
side has no flat run). By default (``max_qps_drop`` None) it is checked only on settings
whose runs measured their own spread (>= 2 timed runs on both sides), and a drop counts
only beyond that spread: the current run's best QPS below the baseline's slowest run by
more than 15%. An explicit ``max_qps_drop`` < 1 checks every setting (beyond the spread
where both sides have one, best against best otherwise); >= 1 turns the check off.
Every check that was skipped (no tail band, work not counted, QPS off) is named in
``Comparison.skipped``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annkit.bench.report import (
    Records,
    as_records,
    load_results,
    reference_qps,
    series_names,
    setting_labels,
)
from annkit.engines.base import is_reference, reference_engine
from annkit.errors import InputError
from annkit.types import RunRecord, qps_spread

DEFAULT_MAX_RECALL_DROP = 0.005
#: the QPS limit used when the sweeps measured their spread and no limit was given
DEFAULT_MAX_QPS_DROP = 0.15
DEFAULT_MAX_WORK_INCREASE = 0.02
TAIL_SLICE = "tail"
#: slack for float rounding: a drop of exactly the threshold passes
_SLACK = 1e-9

#: row verdicts; the first three fail the gate
REGRESSED, MISSING, FAILED = "regressed", "missing", "failed"
OK, IMPROVED, NEW, BASELINE_FAILED = "ok", "improved", "new", "baseline failed"

#: how a setting's work (distance computations per query) was compared
WORK_CHECKED = "checked"
WORK_NOT_COUNTED = "work not counted"
WORK_NO_LONGER_COUNTED = "work no longer counted"
WORK_NEWLY_COUNTED = "work newly counted"

#: where a setting's current point lies against the baseline's recall-vs-work frontier
FRONTIER_BELOW, FRONTIER_ON, FRONTIER_ABOVE = "below", "on", "above"
#: recall resolution floor for the frontier's log(1 - recall) axis (1 miss in 10,000)
_MISS_FLOOR = 1e-4

#: how a setting's QPS was compared
QPS_BEYOND_SPREAD = "beyond the spread"
QPS_BEST = "best against best"
QPS_NO_SPREAD = "not checked: no spread"
QPS_NOISY = "not checked: noisy reference"
QPS_OFF = "off"


@dataclass(frozen=True)
class GateThresholds:
    """How much worse a setting may get: recall@k by ``max_recall_drop`` (absolute, e.g.
    0.005), QPS by ``max_qps_drop`` (a fraction, e.g. 0.15 = 15%; None: 15% beyond the
    measured spread, only where the sweeps measured one; >= 1: off), mean distance
    computations per query by ``max_work_increase`` (a fraction, e.g. 0.02 = 2%)."""

    max_recall_drop: float = DEFAULT_MAX_RECALL_DROP
    max_qps_drop: float | None = None
    max_work_increase: float = DEFAULT_MAX_WORK_INCREASE

    def __post_init__(self) -> None:
        for name in ("max_recall_drop", "max_qps_drop", "max_work_increase"):
            value = getattr(self, name)
            if value is None and name == "max_qps_drop":
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, float | None]:
        return {
            "max_recall_drop": self.max_recall_drop,
            "max_qps_drop": self.max_qps_drop,
            "max_work_increase": self.max_work_increase,
        }

    @property
    def qps_off(self) -> bool:
        """True when a QPS limit of 1 or more turned the QPS check off."""
        return self.max_qps_drop is not None and self.max_qps_drop >= 1

    @property
    def qps_limit(self) -> float:
        """The QPS drop limit in force (the default where none was given)."""
        return DEFAULT_MAX_QPS_DROP if self.max_qps_drop is None else self.max_qps_drop


@dataclass(frozen=True)
class SweepFacts:
    """What a sweep measured on: the facts two sweeps must share to be compared.
    None = unknown (not checked)."""

    path: str | None = None
    dataset: str | None = None
    fingerprint: str | None = None
    queries_fingerprint: str | None = None
    metric: str | None = None
    k: int | None = None
    mode: str | None = None
    runs: int = 0
    flat_qps: float | None = None
    #: how recall was scored: "tolerant" or "strict" (records without it: tolerant)
    recall_rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dataset": self.dataset,
            "metric": self.metric,
            "k": self.k,
            "mode": self.mode,
            "runs": self.runs,
            "flat_qps": self.flat_qps,
            "recall_rule": self.recall_rule,
        }


def sweep_facts(
    records: Records, meta: dict | None = None, path: str | Path | None = None
) -> SweepFacts:
    """The facts of one sweep, from its ``meta.json`` where present, else its records."""
    records = as_records(records)
    meta = meta or {}
    dataset: dict = meta["dataset"] if isinstance(meta.get("dataset"), dict) else {}
    first = records[0] if records else None
    return SweepFacts(
        path=str(path) if path is not None else None,
        dataset=dataset.get("name") or (first.dataset if first else None),
        fingerprint=dataset.get("fingerprint"),
        queries_fingerprint=dataset.get("queries_fingerprint"),
        metric=dataset.get("metric") or (first.metric if first else None),
        k=meta.get("k", first.k if first else None),
        mode=meta.get("mode", first.mode if first else None),
        runs=len(records),
        flat_qps=reference_qps(records),
        recall_rule=next((record.recall_rule for record in records if record.status == "ok"), None),
    )


def reference_spread(records: Sequence[RunRecord]) -> float | None:
    """How much the exact reference's QPS varied over its timed runs in one sweep (fastest /
    slowest - 1 of its best record), or None when it has no spread."""
    best = reference_qps(records)
    for record in records:
        if record.usable and record.qps == best and is_reference(record.engine):
            low, high = _spread(record) if _has_spread(record) else (None, None)
            return high / low - 1.0 if low and high else None
    return None


def _has_spread(record: RunRecord) -> bool:
    """True when the setting was timed at least twice (its QPS has a spread)."""
    return len(record.qps_runs or ()) >= 2


def _spread(record: RunRecord) -> tuple[float | None, float | None]:
    """(slowest, fastest) QPS of a record's timed runs."""
    low, _, high = qps_spread(record.qps_runs)
    return (record.qps_min or low, record.qps_max or high)


def _short(fingerprint: str | None) -> str:
    return (fingerprint or "?")[:12]


def check_comparable(baseline: SweepFacts, current: SweepFacts) -> None:
    """Raise InputError unless the two sweeps ran on the same dataset (and queries), metric,
    k and mode, and scored recall under the same rule. A fact unknown on either side is not
    checked."""
    differences = []

    def differ(name: str, old: Any, new: Any) -> None:
        if old is not None and new is not None and old != new:
            differences.append(f"{name} ({old} vs {new})")

    if baseline.fingerprint and current.fingerprint:
        old_queries, new_queries = baseline.queries_fingerprint, current.queries_fingerprint
        if baseline.fingerprint != current.fingerprint:
            differences.append(
                f"base vectors ({baseline.dataset}: base {_short(baseline.fingerprint)} vs "
                f"{current.dataset}: base {_short(current.fingerprint)})"
            )
        elif old_queries and new_queries and old_queries != new_queries:
            differences.append(
                f"queries only ({baseline.dataset} vs {current.dataset}: same base vectors "
                f"{_short(baseline.fingerprint)}, queries {_short(old_queries)} vs "
                f"{_short(new_queries)})"
            )
    else:
        differ("dataset", baseline.dataset, current.dataset)
    differ("metric", baseline.metric, current.metric)
    differ("k", baseline.k, current.k)
    differ("mode", baseline.mode, current.mode)
    differ("recall rule", baseline.recall_rule, current.recall_rule)
    if differences:
        raise InputError(
            "cannot compare: the baseline and current sweeps differ in "
            f"{', '.join(differences)}; a gate compares like with like (make a new baseline)"
        )


@dataclass
class SettingChange:
    """One setting in the comparison: both sides' figures and the verdict.

    ``relative_qps`` is QPS / flat QPS of the same sweep (raw QPS when the comparison's
    ``qps_basis`` is "raw"); ``qps_change`` is current / baseline relative QPS - 1.
    ``*_work`` is the mean distance computations per query (None: not counted);
    ``work_change`` is current / baseline - 1; ``work_status`` says how work was compared
    (WORK_CHECKED, WORK_NOT_COUNTED, ...; None when the setting was not compared)."""

    run_id: str
    engine: str
    build_params: dict
    query_params: dict
    setting: str = ""
    verdict: str = OK
    problems: list[str] = field(default_factory=list)
    baseline_recall: float | None = None
    current_recall: float | None = None
    baseline_tail_recall: float | None = None
    current_tail_recall: float | None = None
    baseline_qps: float | None = None
    current_qps: float | None = None
    baseline_relative_qps: float | None = None
    current_relative_qps: float | None = None
    baseline_work: float | None = None
    current_work: float | None = None
    work_status: str | None = None
    current_status: str | None = None
    error: str | None = None
    #: the index's series key (engine, build params) the frontier is kept for
    series: str = ""
    #: the baseline frontier's recall at the current work (None: unknown there)
    frontier_recall: float | None = None
    #: where the current point lies against the baseline frontier (FRONTIER_*; None: unknown)
    frontier_position: str | None = None
    #: how QPS was compared (QPS_* constants; None: not compared)
    qps_status: str | None = None
    #: the baseline's slowest and the current run's fastest timed run, relative like
    #: ``*_relative_qps`` (None without a spread)
    baseline_relative_qps_slowest: float | None = None
    current_relative_qps_fastest: float | None = None
    #: queries whose recall fell: (query number, baseline recall, current recall), worst
    #: first (None: not asked for, or no per-query recall on a side)
    queries_fell: list[tuple[int, float, float]] | None = None

    @property
    def recall_change(self) -> float | None:
        return _difference(self.current_recall, self.baseline_recall)

    @property
    def tail_recall_change(self) -> float | None:
        return _difference(self.current_tail_recall, self.baseline_tail_recall)

    @property
    def qps_change(self) -> float | None:
        if self.baseline_relative_qps and self.current_relative_qps is not None:
            return self.current_relative_qps / self.baseline_relative_qps - 1.0
        return None

    @property
    def qps_change_beyond_spread(self) -> float | None:
        """Current fastest / baseline slowest relative QPS - 1 (None without spreads)."""
        old, new = self.baseline_relative_qps_slowest, self.current_relative_qps_fastest
        if old and new is not None:
            return new / old - 1.0
        return None

    @property
    def work_change(self) -> float | None:
        old, new = self.baseline_work, self.current_work
        if old is None or new is None:
            return None
        if old <= 0:
            return 0.0 if new <= 0 else math.inf
        return new / old - 1.0

    @property
    def gate_failed(self) -> bool:
        return self.verdict in (REGRESSED, MISSING, FAILED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "setting": self.setting,
            "build_params": self.build_params,
            "query_params": self.query_params,
            "verdict": self.verdict,
            "problems": list(self.problems),
            "recall": {
                "baseline": self.baseline_recall,
                "current": self.current_recall,
                "change": self.recall_change,
            },
            "tail_recall": {
                "baseline": self.baseline_tail_recall,
                "current": self.current_tail_recall,
                "change": self.tail_recall_change,
            },
            "qps": {"baseline": self.baseline_qps, "current": self.current_qps},
            "relative_qps": {
                "baseline": self.baseline_relative_qps,
                "current": self.current_relative_qps,
                "change": self.qps_change,
                "baseline_slowest": self.baseline_relative_qps_slowest,
                "current_fastest": self.current_relative_qps_fastest,
                "change_beyond_spread": self.qps_change_beyond_spread,
                "status": self.qps_status,
            },
            "frontier": {
                "recall_at_current_work": self.frontier_recall,
                "position": self.frontier_position,
            },
            "distance_computations": {
                "baseline": self.baseline_work,
                "current": self.current_work,
                "change": _finite(self.work_change),
                "status": self.work_status,
            },
            "current_status": self.current_status,
            "error": self.error,
            **(
                {}
                if self.queries_fell is None
                else {
                    "queries_fell": [
                        {"query": query, "baseline": old, "current": new}
                        for query, old, new in self.queries_fell
                    ]
                }
            ),
        }


def _difference(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded change (from 0 work) is written as None."""
    return value if value is None or math.isfinite(value) else None


@dataclass
class Comparison:
    """The gate's result: one row per baseline setting (then the new ones), and whether it
    passed. ``qps_basis`` is "flat" (QPS / flat QPS of the same sweep) or "raw";
    ``machine_speed`` is current flat QPS / baseline flat QPS (None without flat runs)."""

    baseline: SweepFacts
    current: SweepFacts
    thresholds: GateThresholds
    qps_basis: str
    machine_speed: float | None
    rows: list[SettingChange]
    notes: list[str] = field(default_factory=list)
    #: checks that were not made: (check, one line saying why), e.g. ("tail", "...")
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: the slice gated instead of all queries (None: all queries)
    slice_name: str | None = None

    def _with(self, verdict: str) -> list[SettingChange]:
        return [row for row in self.rows if row.verdict == verdict]

    @property
    def regressed(self) -> list[SettingChange]:
        return self._with(REGRESSED)

    @property
    def missing(self) -> list[SettingChange]:
        return self._with(MISSING)

    @property
    def failed(self) -> list[SettingChange]:
        return self._with(FAILED)

    @property
    def new(self) -> list[SettingChange]:
        return self._with(NEW)

    @property
    def passed(self) -> bool:
        return not any(row.gate_failed for row in self.rows)

    @property
    def compared(self) -> int:
        """Baseline settings (those that were ok in the baseline are the ones checked)."""
        return sum(row.verdict != NEW for row in self.rows)

    @property
    def work_checked(self) -> list[SettingChange]:
        """Compared settings whose work (distance computations) was checked."""
        return [row for row in self.rows if row.work_status == WORK_CHECKED]

    @property
    def work_not_counted(self) -> list[SettingChange]:
        """Compared settings whose work could not be checked (not counted on a side)."""
        return [
            row
            for row in self.rows
            if row.work_status not in (None, WORK_CHECKED) and row.verdict != NEW
        ]

    def work_summary(self) -> str:
        """``dist/query rise 2% (checked on 6 settings; not counted on 4: hnsw, annoy)``."""
        limit = f"dist/query rise {self.thresholds.max_work_increase:.0%}"
        checked, unchecked = len(self.work_checked), self.work_not_counted
        text = f"{limit} (checked on {checked} setting{'s' * (checked != 1)}"
        if unchecked:
            engines = ", ".join(dict.fromkeys(row.engine for row in unchecked))
            text += f"; not counted on {len(unchecked)}: {engines}"
        return text + ")"

    def summary(self) -> str:
        """``2 of 7 baseline settings regressed, 1 missing; 1 new`` (no verdict word)."""
        total = self.compared
        if self.passed:
            text = f"{total} baseline settings compared, none regressed"
        else:
            counts = [
                (len(rows), word)
                for rows, word in (
                    (self.regressed, "regressed"),
                    (self.missing, "missing"),
                    (self.failed, "failed"),
                )
                if rows
            ]
            (first, word), rest = counts[0], counts[1:]
            text = ", ".join(
                [
                    f"{first} of {total} baseline settings {word}",
                    *(f"{count} {what}" for count, what in rest),
                ]
            )
        improved = len(self._with(IMPROVED))
        extras = [f"{improved} improved"] if improved else []
        if self.new:
            extras.append(f"{len(self.new)} new (not in the baseline)")
        return "; ".join([text, *extras])

    def verdict(self) -> str:
        """One line: PASSED / FAILED, the summary and the thresholds used."""
        basis = f"relative to {self.qps_basis}" if self.qps_basis != "raw" else "raw"
        thresholds = self.thresholds
        checked = sum(row.qps_status in (QPS_BEYOND_SPREAD, QPS_BEST) for row in self.rows)
        if thresholds.qps_off or not checked:
            qps = "QPS not checked"
        else:
            spread = " beyond the spread" if thresholds.max_qps_drop is None else ""
            qps = f"QPS drop {thresholds.qps_limit:.0%}{spread} ({basis})"
        on = f" on slice {self.slice_name}" if self.slice_name else ""
        limits = (
            f"limits: recall@{self.current.k or self.baseline.k}{on} drop "
            f"{self.thresholds.max_recall_drop:g}, {qps}, {self.work_summary()}"
        )
        word = "PASSED" if self.passed else "FAILED"
        return f"{word}: {self.summary()} ({limits})"

    def to_dict(self) -> dict[str, Any]:
        def brief(row: SettingChange) -> dict[str, Any]:
            out: dict[str, Any] = {
                "run_id": row.run_id,
                "engine": row.engine,
                "setting": row.setting,
                "build_params": row.build_params,
                "query_params": row.query_params,
            }
            if row.verdict == FAILED:
                out.update(status=row.current_status, error=row.error)
            return out

        return {
            "passed": self.passed,
            "verdict": self.verdict(),
            "thresholds": self.thresholds.to_dict(),
            "qps_basis": self.qps_basis,
            "machine_speed": self.machine_speed,
            "baseline": self.baseline.to_dict(),
            "current": self.current.to_dict(),
            "counts": {
                "compared": self.compared,
                "regressed": len(self.regressed),
                "missing": len(self.missing),
                "failed": len(self.failed),
                "improved": len(self._with(IMPROVED)),
                "new": len(self.new),
                "work_checked": len(self.work_checked),
                "work_not_counted": len(self.work_not_counted),
            },
            "slice": self.slice_name,
            "skipped": [{"check": check, "reason": line} for check, line in self.skipped],
            "rows": [row.to_dict() for row in self.rows],
            "regressed": [brief(row) for row in self.regressed],
            "missing": [brief(row) for row in self.missing],
            "failed": [brief(row) for row in self.failed],
            "new": [brief(row) for row in self.new],
            "notes": list(self.notes),
        }


def tail_recall(record: RunRecord) -> float | None:
    """Recall@k on the ``tail`` slice of a record, or None when it has none."""
    return record.slice_recall(TAIL_SLICE)


def gated_point(record: RunRecord, slice_name: str | None) -> tuple[float | None, float | None]:
    """(recall@k, mean distance computations per query) of a record, or of its slice
    ``slice_name`` (work None where the engine does not count)."""
    if slice_name is None:
        return record.recall, record.distance_computations
    entry = (record.slices or {}).get(slice_name)
    if entry is None:
        return None, None
    work = entry.work.mean if entry.work is not None else None
    return entry.recall, work


class Frontier:
    """One index's recall-vs-work frontier: the upper-left Pareto frontier of (work,
    recall) points, interpolated piecewise-linearly in log(work) and log(1 - recall)."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        kept: list[tuple[float, float]] = []
        for work, recall in sorted(points, key=lambda p: (p[0], -p[1])):
            if work > 0 and (not kept or recall > kept[-1][1]):
                kept.append((work, recall))
        self.points = kept

    def recall_at(self, work: float | None) -> float | None:
        """The frontier's recall at ``work`` distance computations per query: its best
        recall beyond its most expensive point, None below its cheapest (unknown)."""
        if work is None or not self.points or work < self.points[0][0] * (1 - 1e-12):
            return None
        if work >= self.points[-1][0]:
            return self.points[-1][1]
        for (w0, r0), (w1, r1) in zip(self.points, self.points[1:], strict=False):
            if w0 <= work <= w1:
                t = math.log(work / w0) / math.log(w1 / w0)
                m0, m1 = (math.log(max(1.0 - r, _MISS_FLOOR)) for r in (r0, r1))
                recall = 1.0 - math.exp(m0 + t * (m1 - m0))
                return min(max(recall, r0), r1)
        return None  # unreachable: work lies within the points


def series_key(record: RunRecord, names: Mapping[str, str]) -> str:
    """The frontier's series of a record: its series name and build params (one index)."""
    build = json.dumps(record.build_params, sort_keys=True, default=str)
    return f"{names.get(record.run_id, record.engine)} {build}"


def baseline_frontiers(
    records: Sequence[RunRecord], slice_name: str | None = None
) -> dict[str, Frontier]:
    """The recall-vs-work frontier of every index (series key) of a baseline sweep, from
    its usable, counted settings."""
    names = series_names(records)
    points: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        if not record.usable:
            continue
        recall, work = gated_point(record, slice_name)
        if recall is not None and work is not None and math.isfinite(recall):
            points.setdefault(series_key(record, names), []).append((work, recall))
    return {key: Frontier(values) for key, values in points.items()}


def _latest_by_run_id(records: list[RunRecord]) -> dict[str, RunRecord]:
    by_id: dict[str, RunRecord] = {}
    for record in records:
        by_id[record.run_id] = record  # a later record of a run replaces an earlier one
    return by_id


def _slice_names(records: Sequence[RunRecord]) -> list[str]:
    return list(dict.fromkeys(name for record in records for name in (record.slices or {})))


def queries_that_fell(
    baseline: Sequence[float] | None, current: Sequence[float] | None
) -> list[tuple[int, float, float]] | None:
    """(query number, baseline recall, current recall) of each query whose recall fell,
    largest fall first; None when a side has no per-query recall or they differ in size."""
    if baseline is None or current is None or len(baseline) != len(current):
        return None
    fell = [
        (query, float(old), float(new))
        for query, (old, new) in enumerate(zip(baseline, current, strict=True))
        if float(new) < float(old) - 1e-6
    ]
    return sorted(fell, key=lambda item: (item[2] - item[1], item[0]))


def compare_records(
    baseline_records: Records,
    current_records: Records,
    thresholds: GateThresholds | None = None,
    *,
    baseline_meta: dict | None = None,
    current_meta: dict | None = None,
    baseline_path: str | Path | None = None,
    current_path: str | Path | None = None,
    slice_name: str | None = None,
    baseline_per_query: Mapping[str, Sequence[float]] | None = None,
    current_per_query: Mapping[str, Sequence[float]] | None = None,
    per_query: bool = False,
) -> Comparison:
    """Compare the records of a current sweep with a baseline sweep's (see the module doc).

    ``slice_name`` gates that slice's recall and work instead of all queries'. With
    ``per_query``, each setting lists the queries whose recall fell, from the per-query
    recall arrays by run_id (``*_per_query``; a missing side is named in ``skipped``).
    Raises InputError when the baseline has no runs, the sweeps are not comparable, or
    the baseline has no slice ``slice_name``."""
    thresholds = thresholds or GateThresholds()
    baseline_records, current_records = as_records(baseline_records), as_records(current_records)
    baseline_facts = sweep_facts(baseline_records, baseline_meta, baseline_path)
    current_facts = sweep_facts(current_records, current_meta, current_path)
    if not baseline_records:
        raise InputError(f"{baseline_path or 'the baseline'}: the baseline has no runs")
    check_comparable(baseline_facts, current_facts)
    if slice_name is not None:
        known = _slice_names(baseline_records)
        if slice_name not in known:
            listed = ", ".join(known) if known else "none"
            raise InputError(
                f"--slice {slice_name}: the baseline records have no such slice (slices: {listed})"
            )
    baseline = _latest_by_run_id(baseline_records)
    current = _latest_by_run_id(current_records)
    notes: list[str] = []
    skipped: list[tuple[str, str]] = []
    reference = reference_engine()
    base_flat, current_flat = baseline_facts.flat_qps, current_facts.flat_qps
    machine_speed = current_flat / base_flat if base_flat and current_flat else None
    if machine_speed is not None:
        qps_basis = reference
        notes.append(
            f"QPS is compared as the speed-up over {reference} measured in the same sweep "
            f"({reference}: "
            f"{base_flat:,.0f} QPS in the baseline, {current_flat:,.0f} now, so this run was "
            f"{machine_speed:.2f}x as fast overall); a faster or slower machine cancels out"
        )
    else:
        qps_basis = "raw"
        sides = [
            side for side, flat in (("baseline", base_flat), ("current", current_flat)) if not flat
        ]
        notes.append(
            f"no usable {reference} run in the {' and '.join(sides)} sweep: raw QPS compared, "
            f"so a faster or slower machine counts as a change "
            f'(add [[engine]] name = "{reference}")'
        )
    k = baseline_facts.k or current_facts.k
    named = [*baseline.values(), *(r for run_id, r in current.items() if run_id not in baseline)]
    names = setting_labels(named)  # the report's naming rule, with the engine in front
    labels = {record.run_id: f"{record.engine} {names[record.run_id]}".strip() for record in named}
    series = series_names(named)
    frontiers = baseline_frontiers(list(baseline.values()), slice_name)
    spreads = (reference_spread(baseline_records), reference_spread(current_records))
    noisy = thresholds.max_qps_drop is None and any(
        spread is not None and spread > thresholds.qps_limit for spread in spreads
    )
    if noisy:
        shown = " and ".join(
            f"{spread:.0%} in the {side}"
            for side, spread in zip(("baseline", "current sweep"), spreads, strict=True)
            if spread is not None
        )
        skipped.append(
            (
                "qps",
                f"QPS not checked: {reference}'s own QPS varied by {shown} over its timed "
                f"runs, more than the {thresholds.qps_limit:.0%} limit (a busy machine: a "
                "drop that size cannot be told from noise); give --max-qps-drop to check "
                "anyway",
            )
        )
    context = _Context(
        thresholds,
        qps_basis,
        (base_flat, current_flat),
        k,
        slice_name,
        frontiers,
        noisy,
    )
    rows = [
        _compare_setting(record, current.get(run_id), context, labels[run_id], series)
        for run_id, record in baseline.items()
    ]
    uncounted = [row for row in rows if row.work_status == WORK_NOT_COUNTED]
    if uncounted:
        engines = ", ".join(dict.fromkeys(row.engine for row in uncounted))
        many = len(uncounted) != 1
        its = "their" if many else "its"
        notes.append(
            f"work not counted for {len(uncounted)} setting{'s' * many} ({engines}: the "
            f"library cannot count distance computations), so {its} work is not checked; "
            f"only {its} recall and QPS are"
        )
        skipped.append(
            (
                "work",
                f"work not checked on {len(uncounted)} setting{'s' * many}: {engines} "
                "cannot count distance computations",
            )
        )
    skipped += _skipped_tail_and_qps(rows, thresholds, slice_name)
    if per_query:
        skipped += _fill_per_query(rows, baseline_per_query, current_per_query)
    for run_id, record in current.items():
        if run_id not in baseline:
            row = _row(record, labels[run_id], NEW)
            _fill_current(row, record, context)
            rows.append(row)
    return Comparison(
        baseline_facts,
        current_facts,
        thresholds,
        qps_basis,
        machine_speed,
        rows,
        notes,
        skipped,
        slice_name,
    )


def _skipped_tail_and_qps(
    rows: list[SettingChange], thresholds: GateThresholds, slice_name: str | None
) -> list[tuple[str, str]]:
    """The skipped-check lines for the tail band and QPS."""
    skipped: list[tuple[str, str]] = []
    compared = [row for row in rows if row.baseline_recall is not None]
    if compared and all(row.baseline_tail_recall is None for row in compared):
        skipped.append(
            (
                "tail",
                "tail band not checked: the records have no tail slice (the data has no weights)",
            )
        )
    if slice_name is not None and compared and all(row.baseline_work is None for row in compared):
        skipped.append(("slice work", f"work on slice {slice_name} not checked: not counted"))
    statuses = [row.qps_status for row in rows if row.qps_status is not None]
    if thresholds.qps_off:
        skipped.append(("qps", "QPS not checked: turned off (--max-qps-drop >= 1)"))
    elif QPS_NOISY in statuses:
        pass  # said where the noise was measured
    elif statuses and all(status == QPS_NO_SPREAD for status in statuses):
        skipped.append(
            (
                "qps",
                "QPS not checked: the sweeps did not measure their spread (fewer than 2 "
                "timed runs per setting); give --max-qps-drop to compare the best runs",
            )
        )
    elif QPS_NO_SPREAD in statuses:
        count = statuses.count(QPS_NO_SPREAD)
        skipped.append(
            ("qps", f"QPS not checked on {count} settings: fewer than 2 timed runs (no spread)")
        )
    return skipped


def _fill_per_query(
    rows: list[SettingChange],
    baseline: Mapping[str, Sequence[float]] | None,
    current: Mapping[str, Sequence[float]] | None,
) -> list[tuple[str, str]]:
    """Fill each compared row's ``queries_fell``; the skipped lines when a side has none."""
    if not baseline:
        return [("per-query", "per-query not listed: the baseline has no per-query recall")]
    if not current:
        return [("per-query", "per-query not listed: the current sweep has no per-query recall")]
    missing = 0
    for row in rows:
        if row.baseline_recall is None or row.current_recall is None:
            continue
        row.queries_fell = queries_that_fell(baseline.get(row.run_id), current.get(row.run_id))
        missing += row.queries_fell is None
    if missing:
        return [("per-query", f"per-query not listed for {missing} settings: no arrays")]
    return []


@dataclass(frozen=True)
class _Context:
    """What every setting's comparison shares."""

    thresholds: GateThresholds
    basis: str
    flats: tuple[float | None, float | None]
    k: int | None
    slice_name: str | None
    frontiers: dict[str, Frontier]
    #: the reference's own spread exceeds the default QPS limit: QPS not checked
    qps_noisy: bool = False


def _row(record: RunRecord, label: str, verdict: str) -> SettingChange:
    return SettingChange(
        run_id=record.run_id,
        engine=record.engine,
        build_params=dict(record.build_params),
        query_params=dict(record.query_params),
        setting=label,
        verdict=verdict,
    )


def _relative(qps: float | None, basis: str, flat_qps: float | None) -> float | None:
    if qps is None:
        return None
    if basis != "raw":
        return qps / flat_qps if flat_qps else None
    return qps


def _fill_current(row: SettingChange, record: RunRecord, context: _Context) -> None:
    row.current_status = record.status
    row.error = record.error
    if record.usable:
        row.current_recall, row.current_work = gated_point(record, context.slice_name)
        row.current_tail_recall = tail_recall(record)
        row.current_qps = record.qps
        row.current_relative_qps = _relative(row.current_qps, context.basis, context.flats[1])
        if _has_spread(record):
            row.current_relative_qps_fastest = _relative(
                _spread(record)[1], context.basis, context.flats[1]
            )


def _compare_setting(
    base: RunRecord,
    now: RunRecord | None,
    context: _Context,
    label: str,
    names: Mapping[str, str],
) -> SettingChange:
    thresholds, k = context.thresholds, context.k
    row = _row(base, label, OK)
    row.series = series_key(base, names)
    if base.usable:
        row.baseline_recall, row.baseline_work = gated_point(base, context.slice_name)
        row.baseline_tail_recall = tail_recall(base)
        row.baseline_qps = base.qps
        row.baseline_relative_qps = _relative(row.baseline_qps, context.basis, context.flats[0])
        if _has_spread(base):
            row.baseline_relative_qps_slowest = _relative(
                _spread(base)[0], context.basis, context.flats[0]
            )
    if now is None:
        row.verdict = MISSING if base.usable else BASELINE_FAILED
        if base.usable:
            row.problems.append("not in the current sweep")
        return row
    _fill_current(row, now, context)
    if not base.usable:
        row.verdict = BASELINE_FAILED  # nothing to regress from
        return row
    if not now.usable:
        row.verdict = FAILED
        status = now.status
        reason = now.error or ("no recall or QPS recorded" if status == "ok" else "")
        row.problems.append(f"{status}: {reason}" if reason else str(status))
        return row
    name = f"recall@{k}" if k else "recall"
    if context.slice_name is not None:
        name += f" on {context.slice_name}"
    improved = False
    changes = [(name, row.recall_change), (f"tail {name}", row.tail_recall_change)]
    if row.baseline_recall is not None and row.current_recall is None:
        row.problems.append(f"{name}: no longer measured")
    for what, change in changes:
        if change is None:
            continue
        if -change > thresholds.max_recall_drop + _SLACK:
            row.problems.append(f"{what} {change:+.4f}")
        elif change > thresholds.max_recall_drop + _SLACK:
            improved = True
    frontier = context.frontiers.get(row.series)
    improved = _check_work(row, thresholds, frontier, name) or improved
    improved = _check_qps(row, thresholds, context.basis, context.qps_noisy) or improved
    row.verdict = REGRESSED if row.problems else IMPROVED if improved else OK
    return row


def _check_qps(
    row: SettingChange, thresholds: GateThresholds, basis: str, noisy: bool = False
) -> bool:
    """Set the row's QPS status and any QPS problem; True when QPS rose beyond the limit."""
    if thresholds.qps_off:
        row.qps_status = QPS_OFF
        return False
    if noisy:
        row.qps_status = QPS_NOISY
        return False
    limit = thresholds.qps_limit + _SLACK
    what = f"QPS x {basis}" if basis != "raw" else "QPS"
    beyond = row.qps_change_beyond_spread
    if beyond is not None:
        row.qps_status = QPS_BEYOND_SPREAD
        if -beyond > limit:
            row.problems.append(f"{what} {beyond:+.1%} (best run against the slowest baseline run)")
            return False
        return (row.qps_change or 0.0) > limit  # the best runs: shown, never failed
    if thresholds.max_qps_drop is None:
        row.qps_status = QPS_NO_SPREAD
        return False
    change = row.qps_change
    if change is None:
        return False
    row.qps_status = QPS_BEST
    if -change > limit:
        row.problems.append(f"{what} {change:+.1%}")
        return False
    return change > limit


def _check_work(
    row: SettingChange, thresholds: GateThresholds, frontier: Frontier | None, name: str
) -> bool:
    """Set the row's work status, its place against the baseline frontier and any work
    problem; True when its work fell by more than the limit or its point rose above the
    frontier (an improvement)."""
    if row.baseline_work is None:
        row.work_status = WORK_NOT_COUNTED if row.current_work is None else WORK_NEWLY_COUNTED
        return False
    if row.current_work is None:
        row.work_status = WORK_NO_LONGER_COUNTED
        row.problems.append("distance computations no longer counted (work not checked)")
        return False
    row.work_status = WORK_CHECKED
    change = row.work_change
    assert change is not None  # both sides counted
    tolerance = thresholds.max_recall_drop + _SLACK
    above = False
    if frontier is not None and row.current_recall is not None:
        at_now = frontier.recall_at(row.current_work)
        at_base = frontier.recall_at(row.baseline_work)
        row.frontier_recall = at_now
        if at_now is not None:
            shortfall = at_now - row.current_recall
            was_short = 0.0
            if at_base is not None and row.baseline_recall is not None:
                was_short = max(0.0, at_base - row.baseline_recall)
            if shortfall - was_short > tolerance:
                row.frontier_position = FRONTIER_BELOW
                rose = f" ({_percent(change)})" if change else ""
                row.problems.append(
                    f"{name} {row.current_recall:.4f} at {row.current_work:,.0f} "
                    f"dist/query{rose}: below the baseline frontier ({at_now:.4f} there)"
                )
            elif -shortfall > tolerance:
                row.frontier_position = FRONTIER_ABOVE
                above = True
            else:
                row.frontier_position = FRONTIER_ON
    if change > thresholds.max_work_increase + _SLACK:
        if row.frontier_position is None or row.frontier_position == FRONTIER_ON:
            # more work that moved along the baseline's curve (below it: said above)
            row.problems.append(f"dist/query {_percent(change)}, not above the baseline frontier")
        return above
    return above or -change > thresholds.max_work_increase + _SLACK


def _percent(change: float) -> str:
    return "from none to some" if not math.isfinite(change) else f"{change:+.1%}"


@dataclass(frozen=True)
class Baseline:
    """A baseline sweep read from disk: its folder, records and meta (None without one)."""

    path: Path
    records: list[RunRecord]
    meta: dict | None

    def facts(self) -> SweepFacts:
        return sweep_facts(self.records, self.meta, self.path)


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline results folder (or its runs.jsonl); InputError when it has no runs."""
    folder, records, meta = load_results(path)
    if not records:
        raise InputError(f"{folder}: the baseline has no runs")
    return Baseline(folder, records, meta)


def per_query_recalls(folder: str | Path, records: Sequence[RunRecord]) -> dict[str, Any]:
    """The per-query recall arrays (perquery.h5) of a results folder's usable runs by
    run_id (empty when it has none)."""
    from annkit.bench.store import ResultsStore

    store = ResultsStore(folder)
    out: dict[str, Any] = {}
    for record in records:
        if record.usable:
            values = store.per_query_recall(record.run_id)
            if values is not None:
                out[record.run_id] = values
    return out


def compare_results(
    baseline: str | Path,
    current: str | Path,
    thresholds: GateThresholds | None = None,
    *,
    slice_name: str | None = None,
    per_query: bool = False,
) -> Comparison:
    """Compare two results folders (or their runs.jsonl files) on disk (``per_query``:
    also list the queries whose recall fell, from their perquery.h5)."""
    reference = load_baseline(baseline)
    current_dir, current_records, current_meta = load_results(current)
    arrays: dict[str, Any] = {}
    if per_query:
        arrays = {
            "baseline_per_query": per_query_recalls(reference.path, reference.records),
            "current_per_query": per_query_recalls(current_dir, current_records),
        }
    return compare_records(
        reference.records,
        current_records,
        thresholds,
        baseline_meta=reference.meta,
        current_meta=current_meta,
        baseline_path=reference.path,
        current_path=current_dir,
        slice_name=slice_name,
        per_query=per_query,
        **arrays,
    )
