"""Run a streaming runbook against one engine: apply each change to a live index, measure
every search step against the exact truth of the live set, record each finished step at
once, and resume an interrupted stream by replaying its runbook."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bundle import fingerprint_vectors
from annkit.engines.base import CHANGES, Engine, get_engine, resolve_params
from annkit.errors import InputError, ParamError
from annkit.evaluate import count_distances
from annkit.files import atomic_write, json_ready, write_text
from annkit.filtering import Workload, filtered_recall, post_filter_search
from annkit.labels import Labels
from annkit.longtail import frequency_bands
from annkit.measure import Measure
from annkit.metrics import (
    EPSILON,
    duplicate_count,
    exact_distances,
    recall_per_query,
    strict_recall_per_query,
)
from annkit.slices import summarize
from annkit.sources import open_dataset
from annkit.stream.records import FreshBuild, SearchMeasure, StepRecord, StreamReport
from annkit.stream.runbook import LiveSet, Runbook, Step, read_runbook
from annkit.stream.truth import cached_live_ground_truth, truth_key
from annkit.timing import run_batch, time_runs
from annkit.types import Dataset, GroundTruth, QueryProfile, SearchResult

#: the files of a stream's output folder
SETTINGS_FILE = "stream.json"
STEPS_FILE = "steps.jsonl"
REPORT_FILE = "report.json"
IDS_FOLDER = "ids"
TRUTH_FOLDER = "truth"


@dataclass(frozen=True)
class StreamSettings:
    """What a stream runs: the engine, its build and query params, how each search step is
    measured (k, timed runs, recall rule, search threads), the threads of builds and
    inserts (1 keeps a stream deterministic, so a resumed one gives the same records), and
    every how many search steps a fresh build over the live set is measured beside the live
    index (None: never)."""

    engine: str
    build_params: dict[str, Any] = field(default_factory=dict)
    query_params: dict[str, Any] = field(default_factory=dict)
    measure: Measure = field(default_factory=Measure)
    threads: int = 1
    rebuild_every: int | None = None

    def __post_init__(self) -> None:
        if self.measure.mode != "batch":
            raise InputError("a stream measures its searches in batch mode")
        if self.threads < 1:
            raise InputError(f"threads must be >= 1, got {self.threads}")
        if self.rebuild_every is not None and self.rebuild_every < 1:
            raise InputError(f"--rebuild-every must be >= 1, got {self.rebuild_every}")


@dataclass(frozen=True)
class StreamEvent:
    """Progress: a step ``replayed`` (applied again without measuring, when resuming) or
    ``finished`` (its record written), of ``total`` steps."""

    kind: str
    step: Step
    total: int
    record: StepRecord | None = None


Progress = Callable[[StreamEvent], None]


def check_engine(cls: type[Engine], build_params: dict[str, Any], runbook: Runbook) -> None:
    """Refuse (ParamError, one line) an engine whose index cannot make the runbook's changes:
    one that cannot change once built, or takes only some changes (e.g. no deletes)."""
    takes, why = cls.changes_for(build_params)
    for step in runbook.steps:
        if step.operation in CHANGES and step.operation not in takes:
            raise ParamError(
                f"engine {cls.name} cannot run this runbook: {why} "
                f"(step {step.number} {step.operation}s)"
            )


def check_labels(dataset: Dataset, measure: Measure) -> bool:
    """True when the queries have filters to follow (labels on the queries and the base);
    InputError for query labels without base labels, or the strict rule with filters."""
    if dataset.query_labels is None:
        return False
    if dataset.base_labels is None:
        raise InputError(
            f"{dataset.name}: the queries have labels but the base vectors have none; "
            "pass --base-labels FILE"
        )
    if measure.recall_rule == "strict":
        raise InputError(
            "a stream over labelled data scores filtered recall (tolerant); drop --recall strict"
        )
    return True


def filtered_count(dataset: Dataset) -> int:
    """How many queries carry a filter."""
    assert dataset.query_labels is not None
    return int(np.count_nonzero(dataset.query_labels.labels_per_row() > 0))


def band_profile(dataset: Dataset) -> QueryProfile | None:
    """The frequency-band slices of the queries (None without weights)."""
    if dataset.weights is None:
        return None
    bands = frequency_bands(dataset.weights)
    masks = {name: bands == name for name in dict.fromkeys(bands.tolist())}
    order = [name for name in ("head", "torso", "tail") if name in masks]
    masks = {name: masks[name] for name in order + sorted(set(masks) - set(order))}
    return QueryProfile(masks=masks, bands=bands, weights=dataset.weights)


@dataclass(frozen=True)
class LiveFilters:
    """The queries' filters over the live set: each filter's query rows and the live ids
    passing it (ascending; None for the unfiltered queries), and each query's passing count
    (the live count for an unfiltered query)."""

    groups: list[tuple[np.ndarray, np.ndarray | None]]
    counts: np.ndarray

    @classmethod
    def of(
        cls, base_labels: Labels, query_labels: Labels, live_ids: np.ndarray, live_rows: np.ndarray
    ) -> LiveFilters:
        workload = Workload.of(base_labels.take(live_rows), query_labels)
        groups = [
            (rows, live_ids[workload.passing[key]] if key else None)
            for key, rows in workload.groups.items()
        ]
        counts = np.where(workload.filtered, workload.counts, len(live_ids))
        return cls(groups=groups, counts=counts)

    def search(self, engine: Engine, queries: np.ndarray, k: int, n_live: int) -> SearchResult:
        """Every query searched under its filter: over-fetch and drop what fails
        (:func:`annkit.filtering.post_filter_search`, the strategy any engine runs), plain
        search for the unfiltered queries; distance computations summed over rounds."""
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        counts: np.ndarray | None = np.zeros(len(queries), dtype=np.int64)
        for rows, allowed in self.groups:
            chosen = np.ascontiguousarray(queries[rows])
            if allowed is None:
                result = engine.search(chosen, k)
            elif allowed.size == 0:  # nothing passes: the empty result, at no cost
                result = SearchResult(
                    ids=np.full((len(rows), k), -1, dtype=np.int64),
                    distances=np.full((len(rows), k), np.inf, dtype=np.float32),
                    distance_computations=np.zeros(len(rows), dtype=np.int64),
                )
            else:
                result = post_filter_search(engine, chosen, k, allowed, n_live)
            ids[rows] = result.ids[:, :k]
            distances[rows] = result.distances[:, :k]
            if counts is not None:
                if result.distance_computations is None:
                    counts = None
                else:
                    counts[rows] = result.distance_computations
        return SearchResult(ids=ids, distances=distances, distance_computations=counts)

    def passes(self, ids: np.ndarray) -> np.ndarray:
        """(nq, k) bool: whether each returned id passes its query's filter."""
        out = ids >= 0
        for rows, allowed in self.groups:
            if allowed is not None:
                out[rows] &= np.isin(ids[rows], allowed)
        return out


def measure_search(
    engine: Engine,
    dataset: Dataset,
    queries: np.ndarray,
    truth: GroundTruth,
    live: LiveSet,
    measure: Measure,
    profile: QueryProfile | None,
    filters: LiveFilters | None = None,
) -> tuple[SearchMeasure, np.ndarray]:
    """(the measurement of one search of every query, the returned ids (nq, k) int64).

    QPS is the fastest of at most ``measure.runs`` timed batch searches (counting off);
    distance computations are counted outside them. Recall@k' (k' = min(k, live)) scores
    the first k' ids under the measure's rule against ``truth`` (live ids); an id that is
    not live never counts and is reported in ``dead_ids``. With ``filters`` each query is
    searched under its filter and scored by filtered recall (over min(k', passing))."""
    k = measure.k
    depth = int(truth.ids.shape[1])
    engine.set_search_threads(measure.search_threads)
    n_live = live.count

    def search(batch: np.ndarray, count: int) -> SearchResult:
        if filters is None:
            return engine.search(batch, count)
        return filters.search(engine, batch, count, n_live)

    def one_run() -> Any:
        return run_batch(search, queries, k)

    with engine.uncounted():
        timing = time_runs(one_run, measure.runs, len(queries), measure.qps_tolerance)
    result, seconds, _ = timing.best
    counts = result.distance_computations
    if counts is None and engine.counts_distances:
        counts = (
            count_distances(engine, queries, k)
            if filters is None
            else search(queries, k).distance_computations
        )
    ids = np.asarray(result.ids[:, :k], dtype=np.int64)
    inside = (ids >= 0) & (ids < len(live.row_of))
    rows = np.where(inside, live.row_of[np.where(inside, ids, 0)], -1)
    dead = (ids >= 0) & (rows < 0)
    live_ids = np.where(rows >= 0, ids, -1)
    if filters is not None:
        found = exact_distances(dataset.base, queries, rows[:, :depth], dataset.metric)
        per_query, short = filtered_recall(
            truth.distances,
            live_ids,
            found,
            filters.passes(live_ids),
            filters.counts,
            depth,
            EPSILON,
        )
    elif measure.recall_rule == "strict":
        per_query = strict_recall_per_query(truth.ids, live_ids, depth)
    else:
        found = exact_distances(dataset.base, queries, rows[:, :depth], dataset.metric)
        per_query = recall_per_query(truth.distances, live_ids, found, depth)
    if counts is not None:
        counts = np.asarray(counts, dtype=np.int64).reshape(len(queries))
    tail, slices, weighted = summarize(per_query, profile, counts)
    valid = np.count_nonzero(live_ids[:, :depth] >= 0, axis=1)
    if filters is None:
        short = valid < depth
    measured = SearchMeasure(
        k=depth,
        recall=float(per_query.mean()),
        p5_recall=float(tail.p5 if tail.p5 is not None else np.percentile(per_query, 5)),
        tail=tail,
        slices=slices,
        weighted_recall=weighted,
        short_results=int(np.count_nonzero(short)),
        dead_ids=int(np.count_nonzero(dead)),
        duplicate_ids=duplicate_count(ids),
        distance_computations=None if counts is None else float(counts.mean()),
        qps=float(len(queries) / seconds) if seconds > 0 else float("inf"),
        qps_runs=tuple(len(queries) / s if s > 0 else float("inf") for s in timing.seconds),
        search_seconds=float(seconds),
        index_bytes=engine.index_memory_bytes(),
    )
    return measured, ids


def _gather(base: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float32 copies of the data rows ``rows`` (read in row order)."""
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), base.shape[1]), dtype=np.float32)
    out[order] = base[rows[order]]
    return out


def _settings_document(
    settings: StreamSettings,
    resolved: dict[str, Any],
    runbook: Runbook,
    dataset: Dataset,
    labelled: bool,
) -> dict[str, Any]:
    """What identifies a stream's output folder (a rerun with the same resumes it)."""
    measure = settings.measure
    labels = None
    if labelled:
        assert dataset.base_labels is not None and dataset.query_labels is not None
        digest = hashlib.sha256()
        for part in (dataset.base_labels, dataset.query_labels):
            digest.update(np.ascontiguousarray(part.indptr, dtype=np.int64).tobytes())
            digest.update(np.ascontiguousarray(part.indices, dtype=np.int64).tobytes())
        labels = digest.hexdigest()[:16]
    return json_ready(
        {
            "engine": settings.engine,
            "build_params": resolved,
            "query_params": settings.query_params,
            "k": measure.k,
            "runs": measure.runs,
            "qps_tolerance": measure.qps_tolerance,
            "recall_rule": measure.recall_rule,
            "search_threads": measure.search_threads,
            "threads": settings.threads,
            "rebuild_every": settings.rebuild_every,
            "runbook_digest": runbook.digest,
            "entry": runbook.entry,
            "dataset": dataset.name,
            "metric": dataset.metric,
            "base": fingerprint_vectors(dataset.base),
            "queries": fingerprint_vectors(dataset.queries),
            "labels": labels,
            "filter_strategy": "post" if labelled else None,
        }
    )


def _read_finished(path: Path) -> list[StepRecord]:
    """The records of ``steps.jsonl`` (a last line cut short by a kill is dropped, and the
    file rewritten without it)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    records: list[StepRecord] = []
    kept = 0
    for line in lines:
        if not line.endswith("\n"):
            break
        try:
            records.append(StepRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            break
        kept += 1
    if kept < len(lines):
        write_text(path, "".join(lines[:kept]))
    for expected, record in enumerate(records, start=1):
        if record.step != expected:
            raise InputError(f"{path}: records are not the runbook's steps 1, 2, ... in order")
    return records


def _append(path: Path, record: StepRecord) -> None:
    """Append one JSON line and fsync it: a finished step survives a kill."""
    line = json.dumps(json_ready(record.to_dict()), allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _prepare_output(output: Path, identity: dict[str, Any], force: bool) -> list[StepRecord]:
    """Create or reopen the output folder: the records already finished (resume), none when
    it is new or ``force``. Another stream's folder is refused."""
    settings_path = output / SETTINGS_FILE
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder")
    if settings_path.is_file() and not force:
        try:
            stored = json.loads(settings_path.read_text(encoding="utf-8"))
        except ValueError:
            stored = None
        if stored != identity:
            differs = (
                "unreadable"
                if not isinstance(stored, dict)
                else next((key for key in identity if stored.get(key) != identity[key]), "settings")
            )
            raise InputError(
                f"{output} holds a stream with other settings ({differs} differs); "
                "use another -o, or --force to start it over"
            )
        return _read_finished(output / STEPS_FILE)
    if force:
        for name in (STEPS_FILE, REPORT_FILE, SETTINGS_FILE):
            (output / name).unlink(missing_ok=True)
        shutil.rmtree(output / IDS_FOLDER, ignore_errors=True)
    elif output.is_dir() and any(child.name not in (TRUTH_FOLDER,) for child in output.iterdir()):
        raise InputError(f"{output} exists and is not a stream's folder; use another -o")
    output.mkdir(parents=True, exist_ok=True)
    write_text(settings_path, json.dumps(identity, indent=2) + "\n")
    return []


def _save_ids(path: Path, ids: np.ndarray) -> None:
    with atomic_write(path, make_parents=True) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(ids, dtype=np.int64))


def write_ids_hdf5(output: Path, report: StreamReport, target: str | Path) -> None:
    """Each search step's returned ids as dataset ``step_<n>`` (n: the runbook's step
    number; queries x k int64, padded with -1), written atomically."""
    import h5py

    with atomic_write(target) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs["engine"] = report.engine
        handle.attrs["k"] = report.k
        handle.attrs["runbook"] = report.runbook
        handle.attrs["entry"] = report.entry
        handle.attrs["dataset"] = report.dataset
        for record in report.steps:
            path = output / IDS_FOLDER / f"step_{record.step}.npy"
            if record.operation == "search" and path.is_file():
                handle.create_dataset(f"step_{record.step}", data=np.load(path, allow_pickle=False))


def run_stream(
    runbook_path: str | Path,
    data: str | Path,
    settings: StreamSettings,
    output: str | Path,
    *,
    entry: str | None = None,
    metric: str | None = None,
    max_queries: int | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    ids_out: str | Path | None = None,
    progress: Progress | None = None,
) -> StreamReport:
    """Run the runbook ``runbook_path`` (its entry for ``data``'s name, else the only one,
    else ``entry``) over the rows of ``data`` with ``settings``, recording into the folder
    ``output``: each finished step is appended to ``steps.jsonl`` at once (fsync'd), each
    search step's ids to ``ids/step_<n>.npy``, the report to ``report.json`` at the end.

    The runbook, the engine's ability to make its changes and the params are all checked
    before anything runs. Rerunning with the same settings resumes: the finished steps are
    kept and their changes applied again without measuring, so the records are those of an
    uninterrupted run (QPS and seconds aside; with ``settings.threads`` 1, which keeps the
    builds deterministic). Exact truth per search step is cached in ``cache_dir`` (default
    ``output/truth``), keyed by the data's fingerprint, the step and the live set."""
    dataset = open_dataset(data, metric=metric, max_queries=max_queries)
    runbook = read_runbook(runbook_path, dataset.name, dataset.n_base, entry=entry)
    labelled = check_labels(dataset, settings.measure)
    cls = get_engine(settings.engine)
    probe = cls(dataset.metric, dataset.dim, **settings.build_params)
    resolved = probe.built_params()
    check_engine(cls, resolved, runbook)
    checked = resolve_params(cls.name, cls.query_specs(resolved), settings.query_params, "query")
    # the given query params with their types (e.g. "64" from the command line -> 64)
    settings = replace(
        settings, query_params={name: checked[name] for name in settings.query_params}
    )
    if settings.measure.k > runbook.max_pts:
        raise InputError(f"k={settings.measure.k} exceeds max_pts {runbook.max_pts}")
    out = Path(output)
    identity = _settings_document(settings, resolved, runbook, dataset, labelled)
    finished = _prepare_output(out, identity, force)
    truth_dir = Path(cache_dir) if cache_dir is not None else out / TRUTH_FOLDER
    fingerprint = f"{identity['base']}-{identity['queries']}-{identity['labels']}"
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    profile = band_profile(dataset)
    live = LiveSet(dataset.n_base)
    engine: Engine | None = None
    records = list(finished)
    searches = 0
    total = len(runbook.steps)

    for step in runbook.steps:
        replay = step.number <= len(finished)
        started = time.perf_counter()
        if step.is_change:
            engine = _apply(engine, cls, settings, dataset, runbook, live, step)
            live.apply(step)
        else:
            searches += 1
        if replay:
            if progress is not None:
                progress(StreamEvent("replayed", step, total))
            continue
        record = StepRecord(
            step=step.number,
            operation=step.operation,
            live=live.count,
            changed=len(step.ids()),
            seconds=time.perf_counter() - started,
        )
        if not step.is_change and engine is not None and live.count > 0:
            record = _search_step(
                engine,
                cls,
                settings,
                dataset,
                queries,
                runbook,
                live,
                step,
                profile,
                truth_dir,
                fingerprint,
                out,
                searches,
            )
        _append(out / STEPS_FILE, record)
        records.append(record)
        if progress is not None:
            progress(StreamEvent("finished", step, total, record))

    report = StreamReport(
        engine=settings.engine,
        build_params=resolved if engine is None else engine.built_params(),
        query_params=dict(settings.query_params),
        dataset=dataset.name,
        metric=dataset.metric,
        runbook=str(runbook_path),
        entry=runbook.entry,
        max_pts=runbook.max_pts,
        k=settings.measure.k,
        recall_rule=settings.measure.recall_rule,
        threads=settings.threads,
        rebuild_every=settings.rebuild_every,
        queries=dataset.n_queries,
        steps=records,
        resumed_from=len(finished) or None,
        filtered_queries=filtered_count(dataset) if labelled else None,
    )
    write_text(out / REPORT_FILE, json.dumps(json_ready(report.to_dict()), indent=1) + "\n")
    if ids_out is not None:
        write_ids_hdf5(out, report, ids_out)
    return report


def _apply(
    engine: Engine | None,
    cls: type[Engine],
    settings: StreamSettings,
    dataset: Dataset,
    runbook: Runbook,
    live: LiveSet,
    step: Step,
) -> Engine:
    """Make ``step``'s change to the live index (building it at the first insert)."""
    ids, rows = step.ids(), step.rows()
    if engine is None:  # the runbook check guarantees the first change is an insert
        engine = cls(dataset.metric, dataset.dim, **settings.build_params)
        engine.build_changeable(
            _gather(dataset.base, rows), ids, runbook.max_pts, threads=settings.threads
        )
        engine.set_query_params(**settings.query_params)
    elif step.operation == "insert":
        engine.insert(_gather(dataset.base, rows), ids, threads=settings.threads)
    elif step.operation == "delete":
        engine.delete(ids)
    elif step.operation == "replace":
        engine.replace(_gather(dataset.base, rows), ids, threads=settings.threads)
    return engine


def _search_step(
    engine: Engine,
    cls: type[Engine],
    settings: StreamSettings,
    dataset: Dataset,
    queries: np.ndarray,
    runbook: Runbook,
    live: LiveSet,
    step: Step,
    profile: QueryProfile | None,
    truth_dir: Path,
    fingerprint: str,
    out: Path,
    searches: int,
) -> StepRecord:
    """Measure one search step (and a fresh build beside it when due)."""
    started = time.perf_counter()
    live_ids = live.ids()
    live_rows = live.rows(live_ids)
    measure = settings.measure
    key = truth_key(fingerprint, step.number, live.digest(), measure.k, dataset.metric)
    truth_started = time.perf_counter()
    filters = None
    if dataset.base_labels is not None and dataset.query_labels is not None:
        filters = LiveFilters.of(dataset.base_labels, dataset.query_labels, live_ids, live_rows)
    truth, cached = cached_live_ground_truth(
        truth_dir,
        key,
        dataset.base,
        queries,
        live_ids,
        live_rows,
        measure.k,
        dataset.metric,
        base_labels=None if filters is None else dataset.base_labels,
        query_labels=None if filters is None else dataset.query_labels,
    )
    truth_seconds = 0.0 if cached else time.perf_counter() - truth_started
    measured, ids = measure_search(engine, dataset, queries, truth, live, measure, profile, filters)
    _save_ids(out / IDS_FOLDER / f"step_{step.number}.npy", ids)
    fresh = None
    if settings.rebuild_every is not None and searches % settings.rebuild_every == 0:
        fresh_engine = cls(dataset.metric, dataset.dim, **settings.build_params)
        build_started = time.perf_counter()
        fresh_engine.build_changeable(
            _gather(dataset.base, live_rows), live_ids, runbook.max_pts, threads=settings.threads
        )
        build_seconds = time.perf_counter() - build_started
        fresh_engine.set_query_params(**settings.query_params)
        fresh_measure, _ = measure_search(
            fresh_engine, dataset, queries, truth, live, measure, profile, filters
        )
        fresh = FreshBuild(build_seconds=build_seconds, measure=fresh_measure)
        del fresh_engine
    return StepRecord(
        step=step.number,
        operation=step.operation,
        live=live.count,
        changed=0,
        seconds=time.perf_counter() - started,
        search=measured,
        fresh=fresh,
        truth_seconds=truth_seconds,
    )
