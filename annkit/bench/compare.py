"""The regression gate: a sweep compared with a baseline sweep, setting by setting.

A setting is matched by its ``run_id``, annkit's key of one (engine, build params, query
params, k, mode) setting (:func:`annkit.bench.spec.make_run_id`). It covers every parameter
including the defaults, so ``M = 16`` written out and ``M`` left at its default match. It is
also the same whether the run succeeded or failed: a failed ivfpq build records
``nlist = None`` where the successful one records the resolved value.

A matched setting regresses when its recall@k, overall or on the ``tail`` slice, drops by
more than ``max_recall_drop`` (absolute), or its QPS drops by more than ``max_qps_drop``
(a fraction). QPS is compared as the speed-up over the exact ``flat`` run of the same sweep,
so a machine that is slower or faster overall does not change the verdict. When either side
has no usable flat run, raw QPS is compared instead, and a note says so. A baseline setting
that is missing from the current sweep, or failed there, fails the gate too.

The work gate: a setting also regresses when its mean distance computations per query rose
by more than ``max_work_increase`` (relative, e.g. 0.02 = 2%) at the same or lower recall,
that is, unless its recall@k (overall or on the tail) rose by more than ``max_recall_drop``
(then the extra work bought recall: a trade-off, shown but not failed). With single-threaded
builds and searches the counts are exactly the same on every run and every machine, so this
limit needs no room for noise. A setting whose engine does not count is shown as "work not
counted" (never as checked); one whose baseline was counted but current is not fails, since
its work can no longer be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annkit.bench.report import Records, as_records, load_results, reference_qps, setting_labels
from annkit.engines.base import reference_engine
from annkit.errors import InputError
from annkit.types import RunRecord

DEFAULT_MAX_RECALL_DROP = 0.005
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


@dataclass(frozen=True)
class GateThresholds:
    """How much worse a setting may get: recall@k by ``max_recall_drop`` (absolute, e.g.
    0.005), QPS by ``max_qps_drop`` (a fraction, e.g. 0.15 = 15%), mean distance
    computations per query by ``max_work_increase`` (a fraction, e.g. 0.02 = 2%)."""

    max_recall_drop: float = DEFAULT_MAX_RECALL_DROP
    max_qps_drop: float = DEFAULT_MAX_QPS_DROP
    max_work_increase: float = DEFAULT_MAX_WORK_INCREASE

    def __post_init__(self) -> None:
        for name in ("max_recall_drop", "max_qps_drop", "max_work_increase"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, float]:
        return {
            "max_recall_drop": self.max_recall_drop,
            "max_qps_drop": self.max_qps_drop,
            "max_work_increase": self.max_work_increase,
        }


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


def check_comparable(baseline: SweepFacts, current: SweepFacts) -> None:
    """Raise InputError unless the two sweeps ran on the same dataset (and queries), metric,
    k and mode, and scored recall under the same rule. A fact unknown on either side is not
    checked."""
    differences = []

    def differ(name: str, old: Any, new: Any) -> None:
        if old is not None and new is not None and old != new:
            differences.append(f"{name} ({old} vs {new})")

    if baseline.fingerprint and current.fingerprint:
        if baseline.fingerprint != current.fingerprint or (
            baseline.queries_fingerprint
            and current.queries_fingerprint
            and baseline.queries_fingerprint != current.queries_fingerprint
        ):
            differences.append(
                f"dataset ({baseline.dataset} vs {current.dataset}: different vectors)"
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
            },
            "distance_computations": {
                "baseline": self.baseline_work,
                "current": self.current_work,
                "change": _finite(self.work_change),
                "status": self.work_status,
            },
            "current_status": self.current_status,
            "error": self.error,
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
        qps = (
            "QPS not checked"
            if self.thresholds.max_qps_drop >= 1
            else f"QPS drop {self.thresholds.max_qps_drop:.0%} ({basis})"
        )
        limits = (
            f"limits: recall@{self.current.k or self.baseline.k} drop "
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


def _latest_by_run_id(records: list[RunRecord]) -> dict[str, RunRecord]:
    by_id: dict[str, RunRecord] = {}
    for record in records:
        by_id[record.run_id] = record  # a later record of a run replaces an earlier one
    return by_id


def compare_records(
    baseline_records: Records,
    current_records: Records,
    thresholds: GateThresholds | None = None,
    *,
    baseline_meta: dict | None = None,
    current_meta: dict | None = None,
    baseline_path: str | Path | None = None,
    current_path: str | Path | None = None,
) -> Comparison:
    """Compare the records of a current sweep with a baseline sweep's (see the module doc).

    Raises InputError when the baseline has no runs or the sweeps are not comparable."""
    thresholds = thresholds or GateThresholds()
    baseline_records, current_records = as_records(baseline_records), as_records(current_records)
    baseline_facts = sweep_facts(baseline_records, baseline_meta, baseline_path)
    current_facts = sweep_facts(current_records, current_meta, current_path)
    if not baseline_records:
        raise InputError(f"{baseline_path or 'the baseline'}: the baseline has no runs")
    check_comparable(baseline_facts, current_facts)
    baseline = _latest_by_run_id(baseline_records)
    current = _latest_by_run_id(current_records)
    notes: list[str] = []
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
    rows = [
        _compare_setting(
            record,
            current.get(run_id),
            thresholds,
            qps_basis,
            (base_flat, current_flat),
            k,
            labels[run_id],
        )
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
    for run_id, record in current.items():
        if run_id not in baseline:
            row = _row(record, labels[run_id], NEW)
            _fill_current(row, record, qps_basis, current_flat)
            rows.append(row)
    return Comparison(
        baseline_facts, current_facts, thresholds, qps_basis, machine_speed, rows, notes
    )


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


def _fill_current(row: SettingChange, record: RunRecord, basis: str, flat: float | None) -> None:
    row.current_status = record.status
    row.error = record.error
    if record.usable:
        row.current_recall = record.recall
        row.current_tail_recall = tail_recall(record)
        row.current_qps = record.qps
        row.current_relative_qps = _relative(row.current_qps, basis, flat)
        row.current_work = record.distance_computations


def _compare_setting(
    base: RunRecord,
    now: RunRecord | None,
    thresholds: GateThresholds,
    basis: str,
    flats: tuple[float | None, float | None],
    k: int | None,
    label: str,
) -> SettingChange:
    row = _row(base, label, OK)
    if base.usable:
        row.baseline_recall = base.recall
        row.baseline_tail_recall = tail_recall(base)
        row.baseline_qps = base.qps
        row.baseline_relative_qps = _relative(row.baseline_qps, basis, flats[0])
        row.baseline_work = base.distance_computations
    if now is None:
        row.verdict = MISSING if base.usable else BASELINE_FAILED
        if base.usable:
            row.problems.append("not in the current sweep")
        return row
    _fill_current(row, now, basis, flats[1])
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
    improved = recall_rose = False
    for what, change in ((name, row.recall_change), (f"tail {name}", row.tail_recall_change)):
        if change is None:
            continue
        if -change > thresholds.max_recall_drop + _SLACK:
            row.problems.append(f"{what} {change:+.4f}")
        elif change > thresholds.max_recall_drop + _SLACK:
            improved = recall_rose = True
    improved = _check_work(row, thresholds, recall_rose) or improved
    qps_change = row.qps_change
    if qps_change is not None and thresholds.max_qps_drop < 1:  # >= 1: QPS not checked
        what = f"QPS x {basis}" if basis != "raw" else "QPS"
        if -qps_change > thresholds.max_qps_drop + _SLACK:
            row.problems.append(f"{what} {qps_change:+.1%}")
        elif qps_change > thresholds.max_qps_drop + _SLACK:
            improved = True
    row.verdict = REGRESSED if row.problems else IMPROVED if improved else OK
    return row


def _check_work(row: SettingChange, thresholds: GateThresholds, recall_rose: bool) -> bool:
    """Set the row's work status and any work problem; True when its work fell by more than
    the limit (an improvement)."""
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
    if change > thresholds.max_work_increase + _SLACK:
        if not recall_rose:  # more work for the same or lower recall
            row.problems.append(f"dist/query {_percent(change)} at the same or lower recall")
        return False
    return -change > thresholds.max_work_increase + _SLACK


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


def compare_results(
    baseline: str | Path, current: str | Path, thresholds: GateThresholds | None = None
) -> Comparison:
    """Compare two results folders (or their runs.jsonl files) on disk."""
    reference = load_baseline(baseline)
    current_dir, current_records, current_meta = load_results(current)
    return compare_records(
        reference.records,
        current_records,
        thresholds,
        baseline_meta=reference.meta,
        current_meta=current_meta,
        baseline_path=reference.path,
        current_path=current_dir,
    )
