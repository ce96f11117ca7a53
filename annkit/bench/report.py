"""What a sweep found: Pareto-optimal runs per engine, the best QPS at recall thresholds,
speed-ups over the exact ``flat`` reference measured in the same sweep, and the failures."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from annkit.bench.pareto import pareto_front
from annkit.bench.policies import policy_kind, policy_text, series_name
from annkit.bench.report_types import (
    BandChoice,
    ConcurrencyLevel,
    ConcurrencyRow,
    FailedRun,
    Headline,
    PolicyRow,
    RunBrief,
    RunCounts,
    RunSummary,
    SeriesEntry,
    SweepReport,
    WorkPercentiles,
)
from annkit.bench.store import META_FILE, RUNS_FILE, locate_results, read_records
from annkit.engines.base import get_engine, is_reference
from annkit.engines.labels import index_labels
from annkit.errors import AnnkitError, InputError
from annkit.filtering import SELECTIVITY_BAND_NAMES
from annkit.types import RUN_STATUSES, RunRecord, TailSummary

THRESHOLDS = (0.90, 0.95, 0.99)

#: what the public entry points (build_report, setting_labels, on_slice; compare_records,
#: sweep_facts) take: RunRecords, or their runs.jsonl dicts (read there, once); every other
#: function here takes RunRecords
Records = Iterable[RunRecord | Mapping[str, Any]]


def as_records(records: Records) -> list[RunRecord]:
    """``records`` as :class:`RunRecord` s (runs.jsonl dicts are read)."""
    return [RunRecord.coerce(record) for record in records]


def usable(record: RunRecord | Mapping[str, Any]) -> bool:
    """An ok record with a finite recall and a positive, finite QPS."""
    return RunRecord.coerce(record).usable


def reference_qps(records: Sequence[RunRecord]) -> float | None:
    """QPS of the exact reference (its best run), or None when the sweep has none."""
    values = [r.qps for r in records if is_reference(r.engine) and r.usable and r.qps is not None]
    return max(values) if values else None


def engine_frontiers(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """Pareto-optimal usable records per series (see :func:`series_names`: one index's
    uniform settings, or one index's policies of one kind; in first-seen order), by recall.
    A policy run never joins its index's uniform frontier."""
    names = series_names(records)
    by_series: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.usable:
            by_series.setdefault(names[record.run_id], []).append(record)
    return {
        series: [runs[i] for i in pareto_front([point(r) for r in runs])]
        for series, runs in by_series.items()
    }


def series_names(records: Sequence[RunRecord]) -> dict[str, str]:
    """The series of every record by run_id: for a uniform setting, its index's label (see
    :func:`index_label_of`: one series per index, ``hnsw M=16``, ``faiss HNSW32,Flat``, or
    just the engine when the records hold one index of it); for a policy run,
    ``<engine> <build> + <kind> policy`` (the sweep's own cross-fitted policies) or
    ``... + <kind> policy (<file>)`` (annkit.bench.policies.series_name)."""
    parts = _label_parts(records)
    indexes = index_label_of(records)
    return {
        record.run_id: indexes[record.run_id]
        if policy_kind(record) is None
        else series_name(record, parts[record.run_id][0])
        for record in records
    }


def stored_label(record: RunRecord) -> str | None:
    """The label a sweep gave the record's index when it ran (None: an older record)."""
    return record.label or None


def index_label_of(records: Sequence[RunRecord]) -> dict[str, str]:
    """The label of every record's index by run_id: the one the sweep stored in the record
    (its ``label =``, or the default the sweep derived), else the default rule
    (annkit.engines.labels.index_labels) over the records' engines and build params."""
    derived = index_labels([(r.engine, r.build_params) for r in records], separate=False)
    return {
        record.run_id: stored_label(record) or default
        for record, default in zip(records, derived, strict=True)
    }


def point(record: RunRecord) -> tuple[float, float]:
    """(recall, QPS) of a usable record."""
    assert record.recall is not None and record.qps is not None  # usable
    return record.recall, record.qps


def _fixed_defaults(record: RunRecord) -> dict[str, dict[str, Any]]:
    """The engine's build and query defaults that do not depend on the data."""
    try:
        cls = get_engine(record.engine)
        specs = {"build": cls.build_specs, "query": cls.query_specs(record.build_params)}
    except (AnnkitError, KeyError, TypeError, ValueError):
        return {"build": {}, "query": {}}
    return {
        kind: {name: spec.default for name, spec in kind_specs.items() if spec.default is not None}
        for kind, kind_specs in specs.items()
    }


def setting_labels(records: Records) -> dict[str, str]:
    """The one naming rule for settings: short names by run_id, ``M=8 | ef=40`` (build |
    query; empty when nothing is worth showing). A parameter is shown when its value varies
    among the engine's records (None, a failed build's unresolved value, aside) or when it
    differs from a fixed (not data-derived) engine default. Report and compare both name
    settings with it (compare prefixes the engine: ``hnsw M=8 | ef=40``)."""
    return {
        run_id: " | ".join(part for part in parts if part)
        for run_id, parts in _label_parts(as_records(records)).items()
    }


def _label_parts(records: Sequence[RunRecord]) -> dict[str, tuple[str, str]]:
    """(build text, query text) of every record by run_id (see :func:`setting_labels`); a
    policy run's query text names the policy (annkit.bench.policies.policy_text), and its
    query params do not count as varying among the engine's uniform settings."""
    seen: dict[tuple[str, str, str], set[str]] = {}
    for record in records:
        kinds = [("build", record.build_params)]
        if policy_kind(record) is None:
            kinds.append(("query", record.query_params))
        for kind, params in kinds:
            for name, value in params.items():
                if value is not None:
                    seen.setdefault((record.engine, kind, name), set()).add(
                        json.dumps(value, default=str)
                    )
    labels = {}
    for record in records:
        defaults = _fixed_defaults(record)
        texts = []
        for kind, params in (("build", record.build_params), ("query", record.query_params)):
            if kind == "query" and policy_kind(record) is not None:
                texts.append(policy_text(record))
                continue
            shown = [
                f"{name}={value}"
                for name, value in params.items()
                if value is not None
                and (
                    len(seen[(record.engine, kind, name)]) > 1
                    or (name in defaults[kind] and defaults[kind][name] != value)
                )
            ]
            texts.append(" ".join(shown))
        labels[record.run_id] = (texts[0], texts[1])
    return labels


def _summary(
    record: RunRecord,
    flat_qps: float | None,
    labels: dict[str, str],
    series: dict[str, str] | None = None,
) -> RunSummary:
    return RunSummary(
        run_id=record.run_id,
        engine=record.engine,
        series=(series or {}).get(record.run_id, record.engine),
        setting=labels.get(record.run_id, ""),
        build_params=dict(record.build_params),
        query_params=dict(record.query_params),
        recall=record.recall,
        qps=record.qps,
        latency_ms=dict(record.latency_ms),
        qps_min=record.qps_min,
        qps_median=record.qps_median,
        qps_max=record.qps_max,
        runs=record.runs,
        build_seconds=record.build_seconds,
        index_bytes=record.index_bytes,
        distance_computations=record.distance_computations,
        work=work_percentiles(record),
        speedup_vs_flat=_speedup(record, flat_qps),
        node=record.node,
    )


def _speedup(record: RunRecord, flat_qps: float | None) -> float | None:
    """QPS over exact search: over the flat reference measured on the record's own node
    and concurrency when a distributed sweep measured one there, else over the sweep's."""
    reference = record.reference_qps or flat_qps
    return record.qps / reference if reference and record.qps else None


def work_percentiles(record: RunRecord) -> WorkPercentiles | None:
    """The run's cost tail (distance computations per query at p50 / p95 / p99; on a slice,
    see :func:`on_slice`, the slice's), or None when not counted."""
    work = record.tail.work if record.tail is not None else None
    if work is None:
        return None
    return WorkPercentiles(p50=work.p50, p95=work.p95, p99=work.p99)


def best_at(records: Sequence[RunRecord], threshold: float) -> RunRecord | None:
    """The usable record with the highest QPS among those with recall >= threshold."""
    candidates = [r for r in records if r.usable and point(r)[0] >= threshold]
    return max(candidates, key=lambda r: point(r)[1]) if candidates else None


def build_report(
    records: Records,
    meta: dict | None = None,
    results_dir: str | Path | None = None,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> SweepReport:
    """The report of a sweep (its ``to_dict`` is the JSON form); every run in it carries its
    ``setting`` name (:func:`setting_labels`). ``engines`` and the headlines are per series
    (:func:`series_names`): each index's uniform settings (named by its label), and each
    index's policies of one kind on their own; ``policies`` sets every policy run beside
    the uniform settings of its index (:func:`policy_rows`). ``records``: RunRecords, or
    their runs.jsonl dicts."""
    records = as_records(records)
    meta = meta or {}
    flat_qps = reference_qps(records)
    frontiers = engine_frontiers(records)
    labels = setting_labels(records)
    series = series_names(records)
    names = list(dict.fromkeys(series[r.run_id] for r in records))
    members = {name: [r for r in records if series[r.run_id] == name] for name in names}
    first = records[0] if records else None
    dataset_meta: dict = meta["dataset"] if isinstance(meta.get("dataset"), dict) else {}

    def summary(record: RunRecord | None) -> RunSummary | None:
        return None if record is None else _summary(record, flat_qps, labels, series)

    headlines = tuple(
        Headline(
            threshold=threshold,
            best=summary(best_at(records, threshold)),
            engines={name: summary(best_at(members[name], threshold)) for name in names},
        )
        for threshold in thresholds
    )
    return SweepReport(
        results_dir=str(results_dir) if results_dir is not None else None,
        dataset=dataset_meta.get("name") or (first.dataset if first else None),
        metric=dataset_meta.get("metric") or (first.metric if first else None),
        k=meta.get("k", first.k if first else None),
        mode=meta.get("mode", first.mode if first else None),
        runs=RunCounts(
            total=len(records),
            **{status: sum(r.status == status for r in records) for status in RUN_STATUSES},
        ),
        flat_qps=flat_qps,
        engines={
            name: SeriesEntry(
                engine=members[name][0].engine,
                policy=policy_kind(members[name][0]),
                runs=len(members[name]),
                ok=sum(r.usable for r in members[name]),
                pareto=tuple(
                    _summary(r, flat_qps, labels, series) for r in frontiers.get(name, [])
                ),
            )
            for name in names
        },
        headlines=headlines,
        policies=tuple(policy_rows(records, labels, series)),
        concurrency=tuple(concurrency_table(records, labels)),
        filter_choices=tuple(filter_choices(records, labels, series)),
        failed=tuple(
            FailedRun(
                run_id=r.run_id,
                engine=r.engine,
                setting=labels.get(r.run_id, ""),
                build_params=dict(r.build_params),
                query_params=dict(r.query_params),
                status=r.status,
                error=r.error,
            )
            for r in records
            if r.status != "ok"
        ),
    )


#: the recall a filter strategy must reach on a selectivity band to be chosen there
BAND_RECALL = 0.95


def filter_choices(
    records: Sequence[RunRecord], labels: dict[str, str], series: dict[str, str]
) -> list[BandChoice]:
    """For each selectivity band and index (series) of the filtered runs: the strategy of
    its cheapest setting reaching recall >= BAND_RECALL on that band (cheapest by the
    band's distance computations per query where counted, else by QPS); a row with no
    strategy when none reaches it."""
    filtered = [r for r in records if r.usable and r.filter_strategy and r.slices]
    bands = [
        band
        for band in SELECTIVITY_BAND_NAMES
        if band != "unfiltered" and any(band in (r.slices or {}) for r in filtered)
    ]
    out = []
    for band in bands:
        for name in dict.fromkeys(series[r.run_id] for r in filtered):
            runs = [r for r in filtered if series[r.run_id] == name and band in (r.slices or {})]
            good = [r for r in runs if ((r.slices or {})[band].recall or 0.0) >= BAND_RECALL]
            if not good:
                out.append(BandChoice(band, name, None, None, None, None, None))
                continue

            def cost(record: RunRecord, band: str = band) -> tuple[float, float]:
                work = (record.slices or {})[band].work
                if work is not None and work.mean is not None:
                    return (0.0, float(work.mean))
                return (1.0, -float(record.qps or 0.0))

            best = min(good, key=cost)
            entry = (best.slices or {})[band]
            out.append(
                BandChoice(
                    band=band,
                    series=name,
                    strategy=str(best.query_params.get("filter_strategy", best.filter_strategy)),
                    setting=labels.get(best.run_id),
                    recall=entry.recall,
                    work=None if entry.work is None else entry.work.mean,
                    qps=best.qps,
                )
            )
    return out


def tail_band_recall(record: RunRecord) -> float | None:
    """Mean recall@k on the ``tail`` frequency band (None when the run has no such slice)."""
    return record.slice_recall("tail")


def p5_recall(record: RunRecord) -> float | None:
    """The 5th percentile of the run's per-query recall@k (None when not recorded)."""
    value = record.tail.p5 if record.tail is not None else None
    return value if value is not None and math.isfinite(value) else None


def _brief(record: RunRecord, labels: dict[str, str]) -> RunBrief:
    return RunBrief(
        run_id=record.run_id,
        setting=labels.get(record.run_id, ""),
        recall=record.recall,
        p5_recall=p5_recall(record),
        tail_recall=tail_band_recall(record),
        distance_computations=record.distance_computations,
        qps=record.qps,
    )


def uniform_match(policy_run: RunRecord, records: Sequence[RunRecord]) -> RunRecord | None:
    """The uniform setting of the same index (engine and build params) that reaches the
    policy run's recall at the least cost: the fewest distance computations per query when
    both count them, else the highest QPS; None when no uniform setting reaches it."""
    assert policy_run.recall is not None
    same = [
        r
        for r in records
        if r.usable
        and policy_kind(r) is None
        and r.engine == policy_run.engine
        and r.build_params == policy_run.build_params
        and r.search_threads == 1
        and r.clients is None
        and point(r)[0] >= policy_run.recall
    ]
    if not same:
        return None
    counted = [r for r in same if r.distance_computations is not None]
    if policy_run.distance_computations is not None and counted:
        return min(counted, key=lambda r: (r.distance_computations, -point(r)[1]))
    return max(same, key=lambda r: point(r)[1])


def policy_rows(
    records: Sequence[RunRecord],
    labels: dict[str, str] | None = None,
    series: dict[str, str] | None = None,
) -> list[PolicyRow]:
    """Each usable policy run (recall, p5, tail-band recall, work, QPS) beside the cheapest
    uniform setting of its index reaching its recall (:func:`uniform_match`, None when none
    does), with the policy's work and QPS as ratios of that setting's. [] without policies."""
    labels = labels if labels is not None else setting_labels(records)
    series = series if series is not None else series_names(records)
    rows = []
    for record in records:
        if not record.usable or policy_kind(record) is None:
            continue
        match = uniform_match(record, records)
        work_ratio = qps_ratio = None
        if match is not None:
            if record.distance_computations is not None and match.distance_computations:
                work_ratio = record.distance_computations / match.distance_computations
            if match.qps:
                qps_ratio = (record.qps or 0.0) / match.qps
        rows.append(
            PolicyRow(
                series=series[record.run_id],
                run=_brief(record, labels),
                uniform=None if match is None else _brief(match, labels),
                work_ratio=work_ratio,
                qps_ratio=qps_ratio,
            )
        )
    return rows


def concurrency_level(record: RunRecord) -> int:
    """The concurrency a record was measured at: its client count, else its search threads."""
    return record.clients if record.clients is not None else record.search_threads


def concurrency_table(
    records: Sequence[RunRecord], labels: dict[str, str] | None = None
) -> list[ConcurrencyRow]:
    """Each setting measured at more than one concurrency level (``bench --search-threads
    1,2`` or ``--clients 1,2,4``): its QPS, recall and latency at each level, lowest first,
    and ``scaling`` (QPS at the highest level / at the lowest). [] for a sweep without."""
    usable_records = [r for r in records if r.usable]
    labels = labels if labels is not None else setting_labels(usable_records)
    groups: dict[str, list[RunRecord]] = {}
    for record in usable_records:
        key = json.dumps(
            [
                record.engine,
                sorted(record.build_params.items()),
                sorted(record.query_params.items()),
                record.clients is not None,
            ],
            default=str,
        )
        groups.setdefault(key, []).append(record)
    rows = []
    for runs in groups.values():
        if len({concurrency_level(r) for r in runs}) < 2:
            continue
        runs = sorted(runs, key=concurrency_level)
        first, last = runs[0], runs[-1]
        assert first.qps is not None and last.qps is not None
        rows.append(
            ConcurrencyRow(
                engine=first.engine,
                setting=labels.get(first.run_id, ""),
                by="clients" if first.clients is not None else "threads",
                levels=tuple(
                    ConcurrencyLevel(
                        level=concurrency_level(r),
                        run_id=r.run_id,
                        qps=r.qps,
                        recall=r.recall,
                        latency_ms=dict(r.latency_ms),
                    )
                    for r in runs
                ),
                scaling=last.qps / first.qps,
            )
        )
    return rows


def concurrency_rows(
    records: Sequence[RunRecord], labels: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """:func:`concurrency_table` in its JSON form (what ``plot --x threads`` draws)."""
    return [row.to_dict() for row in concurrency_table(records, labels)]


def load_results(path: str | Path) -> tuple[Path, list[RunRecord], dict | None]:
    """(folder, records, meta) of a results folder or its runs.jsonl."""
    folder = locate_results(path)
    runs_path = Path(path) if Path(path).is_file() else folder / RUNS_FILE
    meta = None
    meta_path = folder / META_FILE
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
            meta = loaded if isinstance(loaded, dict) else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = None
    return folder, read_records(runs_path), meta


def report_results(path: str | Path) -> SweepReport:
    """The report of a results folder (or runs.jsonl) on disk."""
    folder, records, meta = load_results(path)
    return build_report(records, meta, folder)


def on_slice(records: Records, slice_name: str) -> list[RunRecord]:
    """Records seen on the query slice ``slice_name`` (e.g. ``tail``, ``hard-lid``): their
    ``recall`` is the slice's, ``distance_computations`` the slice's mean (None when the
    slice's work was not recorded) and ``tail`` holds the slice's queries, p5 recall and
    cost tail; QPS stays the whole run's. ``all`` returns the records unchanged. Failed runs
    are kept as they are; an unknown slice is an error listing the available ones."""
    records = as_records(records)
    if slice_name == "all":
        return records
    available: dict[str, None] = {}
    out = []
    for record in records:
        available.update(dict.fromkeys(record.slices or {}))
        if record.status != "ok":
            out.append(record)
            continue
        if slice_name not in (record.slices or {}):
            continue
        entry = (record.slices or {})[slice_name]
        work = entry.work
        out.append(
            replace(
                record,
                recall=record.slice_recall(slice_name),
                distance_computations=work.mean if work is not None else None,
                tail=TailSummary(
                    mean=entry.recall,
                    p1=None,
                    p5=entry.p5_recall,
                    p10=None,
                    share_below_0_5=None,
                    share_zero=None,
                    queries=entry.queries,
                    work=work,
                ),
            )
        )
    if slice_name not in available:
        names = ", ".join(["all", *available]) if available else "none recorded"
        raise InputError(f"unknown slice {slice_name!r} (available: {names})")
    return out
