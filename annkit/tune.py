"""Tuning to a recall target on a query slice: for each build setting, the smallest query
effort whose recall@k on the slice meets the target, and the fastest setting overall.

Each build setting is built once (or reused from a cache keyed like the bench cache) and its
effort grid is bisected, measuring every probe with :func:`annkit.evaluate.evaluate` (the
one evaluation path) with the exact truth and query profile computed once.

Bisection assumes that the slice's recall is monotone in the effort parameter. Mean recall
over many queries is very nearly so, but not exactly: a query can lose a neighbour at a
higher effort. Where the curve dips, bisection returns a grid value that meets the target
and whose tested predecessor does not, which may be above the exhaustive scan's smallest.

The grid answer is then refined: the integer efforts between the last failing and the first
passing grid value are bisected until they are ``resolution`` apart (1 = exact), so a
doubling grid's 320 can become 240. Settings whose QPS intervals (min-max over the timed
runs) overlap the fastest one's are tied: timing cannot tell them apart, and the cheaper
build among them (smaller index, then shorter build) is chosen.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annkit.bundle import fingerprint_vectors
from annkit.cache import cache_params, index_dir, index_key, obtain_index
from annkit.effort import RECALL_TOLERANCE, check_grid, effort_parameter
from annkit.engines.base import get_engine, resolve_params
from annkit.engines.labels import index_labels
from annkit.errors import InputError, ParamError
from annkit.evaluate import (
    DEFAULT_QPS_TOLERANCE,
    DEFAULT_RUNS,
    Truth,
    check_recall_rule,
    measure_setting,
    true_neighbor_distances,
    true_neighbor_ids,
)
from annkit.longtail import DEFAULT_CUTS
from annkit.measure import Measure
from annkit.memory import check_memory
from annkit.slices import QueryProfile, build_profile
from annkit.types import Dataset, Evaluation, slices_to_dict

ALL = "all"
"""The slice of every query."""

CHOICE_RULE = (
    "fastest setting meeting the target; settings whose QPS min-max interval "
    "overlaps the fastest one's are tied, and the tied setting with the smallest "
    "index (then the shortest build) is chosen"
)


def build_settings(engine_name: str, build_grid: Mapping[str, Sequence[Any]]) -> list[dict]:
    """The product of the build grid's value lists (values coerced, duplicates dropped), in
    the grid's order; unknown parameter names are a ParamError."""
    specs = get_engine(engine_name).build_specs
    unknown = [name for name in build_grid if name not in specs]
    if unknown:
        raise ParamError(
            f"engine {engine_name} has no build parameter {unknown[0]!r} "
            f"(known: {', '.join(sorted(specs)) or 'none'})"
        )
    axes = []
    for name, values in build_grid.items():
        coerced = list(dict.fromkeys(specs[name].coerce(name, value) for value in values))
        if not coerced:
            raise ParamError(f"build grid for {name} is empty")
        axes.append([(name, value) for value in coerced])
    return [dict(combination) for combination in itertools.product(*axes)]


def split_values(text: str, whole: bool = False) -> list[str]:
    """The values of one ``NAME=VALUES`` grid item. The rule: values are separated by
    commas; a value in double quotes is kept whole (``factory="HNSW32,Flat"``); with
    ``whole`` (a free-text string parameter: ``str`` without fixed choices, such as a
    faiss factory string) and no quotes, ``text`` is one value (repeat the option for
    several). ParamError for an unclosed quote."""
    if '"' not in text:
        values = [text.strip()] if whole else [part.strip() for part in text.split(",")]
        return [value for value in values if value]
    values, current, quoted, inside = [], "", False, False
    for char in text:
        if char == '"':
            inside, quoted = not inside, True
        elif char == "," and not inside:
            values.append(current if quoted else current.strip())
            current, quoted = "", False
        else:
            current += char
    if inside:
        raise ParamError(f"unclosed double quote in {text!r}")
    values.append(current if quoted else current.strip())
    return [value.strip() for value in values if value.strip()]


def free_text(engines: Sequence[str], name: str) -> bool:
    """True when build parameter ``name`` is free text for the first of ``engines`` that
    has it (a ``str`` without fixed choices, such as a faiss factory string)."""
    for engine in engines:
        spec = get_engine(engine).build_specs.get(name)
        if spec is not None:
            return spec.type is str and spec.choices is None
    return False


def grid_from_items(
    items: Sequence[tuple[str, str]], engines: Sequence[str] = (), kind: str = "build"
) -> dict[str, list[str]] | None:
    """``[("M", "8,16"), ("factory", "HNSW32,Flat")]`` -> ``{"M": ["8", "16"], "factory":
    ["HNSW32,Flat"]}`` under :func:`split_values`' rule (repeated names add values); None
    when empty. ``kind`` "build" looks the names up in ``engines``' build params."""
    if not items:
        return None
    grid: dict[str, list[str]] = {}
    for name, text in items:
        whole = kind == "build" and free_text(engines, name)
        grid.setdefault(name, []).extend(split_values(text, whole))
    return grid


def slice_recall(evaluation: Evaluation, slice_name: str) -> float:
    """Mean recall@k of ``evaluation`` on one slice (``all`` = every query)."""
    if slice_name == ALL:
        return evaluation.recall
    recall = evaluation.slices[slice_name].recall
    assert recall is not None  # measured slices always hold a recall
    return recall


def available_slices(profile: QueryProfile) -> list[str]:
    """Slice names a target can be set on: ``all`` and every non-empty profile slice."""
    return [ALL] + [name for name, mask in profile.masks.items() if mask.any()]


def check_slice(slice_name: str, profile: QueryProfile) -> str:
    """``slice_name`` when the profile has it; InputError listing the available ones."""
    names = available_slices(profile)
    if slice_name not in names:
        raise InputError(f"unknown slice {slice_name!r} (available: {', '.join(names)})")
    return slice_name


@dataclass(frozen=True)
class OperatingPoint:
    """One measured run of a tuned index: its label, query params, recall on the tuned
    slice, QPS (fastest run, with the slowest) and work (mean distance computations per
    query on the slice; None where the engine does not count)."""

    label: str
    build_params: dict
    query_params: dict
    recall: float
    qps: float
    qps_min: float
    work: float | None

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "build_params": dict(self.build_params),
            "query_params": dict(self.query_params),
            "slice_recall": self.recall,
            "qps": self.qps,
            "qps_min": self.qps_min,
            "distance_computations": self.work,
        }


def slice_work(evaluation: Evaluation, slice_name: str) -> float | None:
    """Mean distance computations per query on one slice (``all``: every query's); None
    when the engine does not count them."""
    if slice_name == ALL:
        return evaluation.distance_computations
    work = evaluation.slices[slice_name].work
    return None if work is None else work.mean


def operating_point(
    evaluation: Evaluation, slice_name: str, label: str, build_params: dict
) -> OperatingPoint:
    """The :class:`OperatingPoint` of one run."""
    return OperatingPoint(
        label=label,
        build_params=dict(build_params),
        query_params=dict(evaluation.query_params),
        recall=slice_recall(evaluation, slice_name),
        qps=evaluation.qps,
        qps_min=evaluation.qps_min if evaluation.qps_min is not None else evaluation.qps,
        work=slice_work(evaluation, slice_name),
    )


def pareto_points(points: Sequence[OperatingPoint]) -> list[OperatingPoint]:
    """The points no other point beats on both slice recall and QPS (as faiss'
    OperatingPoints keeps them), by increasing recall."""
    ordered = sorted(points, key=lambda p: (-p.qps, -p.recall))
    kept: list[OperatingPoint] = []
    for candidate in ordered:
        if not kept or candidate.recall > kept[-1].recall:
            kept.append(candidate)
    return sorted(kept, key=lambda p: (p.recall, -p.qps))


@dataclass(frozen=True)
class TuneSetting:
    """The outcome for one build setting.

    chosen: the smallest effort found whose slice recall meets the target (None = the target
    is not met even at the grid's largest value); evaluation: the run at ``chosen``, or at
    the largest effort tried when not reached; trace: effort -> slice recall of every run.
    grid_choice: the first passing grid value; bracket: (last failing, first passing) grid
    values the answer was refined between (None when the grid's first value passes or
    nothing does); resolution: how far apart the last failing and the first passing effort
    ended (1 = exact; None when not refined).
    """

    build_params: dict
    grid: list[int]
    chosen: int | None
    evaluation: Evaluation = field(repr=False)
    trace: dict[int, float]
    cached: bool
    build_seconds: float
    grid_choice: int | None = None
    bracket: tuple[int, int] | None = None
    resolution: int | None = None
    #: the engine, its effort parameter and the index's label (index_labels over the tuned
    #: builds: ``hnsw M=16``, ``faiss HNSW16,Flat``)
    engine: str = ""
    param: str = ""
    label: str = ""
    #: the other query knobs' values of the reported run (one combination of the query grid;
    #: {} without one), every combination's outcome, evaluate runs over all of them, and
    #: the Pareto-optimal (slice recall, QPS) operating points of every run on this build
    knobs: dict = field(default_factory=dict)
    combinations: tuple[dict, ...] = ()
    probes: int | None = None
    points: tuple[OperatingPoint, ...] = ()
    #: evaluate runs at grid values (the rest refined between them), every combination's
    grid_probes: int | None = None

    @property
    def reached(self) -> bool:
        return self.chosen is not None

    @property
    def evaluations(self) -> int:
        """Evaluate runs made on this build (every query-grid combination)."""
        return self.probes if self.probes is not None else len(self.trace)

    @property
    def qps(self) -> float:
        return self.evaluation.qps

    @property
    def qps_interval(self) -> tuple[float, float]:
        """(slowest, fastest) QPS over the timed runs of the reported evaluation."""
        evaluation = self.evaluation
        low = evaluation.qps_min if evaluation.qps_min is not None else evaluation.qps
        return low, evaluation.qps

    @property
    def index_bytes(self) -> int:
        return self.evaluation.index_bytes

    def best_slice_recall(self) -> tuple[int, float]:
        """(effort, slice recall) of the run with the highest slice recall."""
        effort = max(self.trace, key=lambda value: (self.trace[value], -value))
        return effort, self.trace[effort]

    def precision(self) -> str:
        """How fine the answer is, in words."""
        if self.chosen is None:
            return "not reached"
        if self.bracket is not None:
            exact = "exact" if self.resolution == 1 else f"exact to {self.resolution}"
            return f"refined between {self.bracket[0]:,} and {self.bracket[1]:,}; {exact}"
        if self.grid and self.chosen == self.grid[0]:
            return "the grid's smallest value; smaller values not tried"
        return "grid value"

    def recall_by_slice(self) -> dict[str, float]:
        """Recall@k of the reported run on ``all`` and every slice."""
        recall = {ALL: self.evaluation.recall}
        recall.update(
            {
                name: entry.recall
                for name, entry in self.evaluation.slices.items()
                if entry.recall is not None
            }
        )
        return recall

    def to_dict(self, param: str | None = None) -> dict:
        """JSON-ready summary; ``param`` names the effort parameter (default its own)."""
        evaluation = self.evaluation
        param = self.param or param or "effort"
        return {
            "engine": self.engine,
            "label": self.label,
            "param": param,
            "knobs": dict(self.knobs),
            "build_params": dict(self.build_params),
            "reached": self.reached,
            "effort": self.chosen,
            "grid_effort": self.grid_choice,
            "bracket": None if self.bracket is None else list(self.bracket),
            "resolution": self.resolution,
            "precision": self.precision(),
            "query_params": dict(evaluation.query_params),
            "qps": evaluation.qps,
            "qps_min": evaluation.qps_min,
            "qps_median": evaluation.qps_median,
            "qps_max": evaluation.qps_max,
            "qps_runs": list(evaluation.qps_runs),
            "runs": evaluation.runs,
            "timed_queries": evaluation.timed_queries,
            "recall": dict(self.recall_by_slice()),
            "recall_rule": evaluation.recall_rule,
            "slices": slices_to_dict(evaluation.slices),
            "tail": None if evaluation.tail is None else evaluation.tail.to_dict(),
            "weighted_recall": evaluation.weighted_recall,
            "distance_computations": evaluation.distance_computations,
            "evaluations": self.evaluations,
            "grid": list(self.grid),
            "trace": [
                {param: effort, "slice_recall": recall}
                for effort, recall in sorted(self.trace.items())
            ],
            "cached": self.cached,
            "build_seconds": self.build_seconds,
            "index_bytes": evaluation.index_bytes,
            "combinations": [dict(entry) for entry in self.combinations],
            "operating_points": [point.to_dict() for point in self.points],
        }


@dataclass(frozen=True)
class TuneResult:
    """Per build setting the smallest effort meeting ``target`` on ``slice_name``, and the
    fastest of them. ``evaluations`` counts evaluate runs; ``exhaustive`` is what scanning
    every (build setting, effort) pair would have needed."""

    engine: str
    param: str
    dataset: str
    k: int
    target: float
    slice_name: str
    mode: str
    runs: int
    query_params: dict
    settings: list[TuneSetting]
    evaluations: int
    exhaustive: int

    qps_tolerance: float = DEFAULT_QPS_TOLERANCE
    resolution: int = 1

    @property
    def reached(self) -> list[TuneSetting]:
        return [setting for setting in self.settings if setting.reached]

    @property
    def fastest(self) -> TuneSetting | None:
        """The setting with the highest QPS among those meeting the target (None if none)."""
        reached = self.reached
        return (
            reached[choose_fastest([setting.qps_interval for setting in reached])]
            if reached
            else None
        )

    @property
    def tied(self) -> list[TuneSetting]:
        """The settings meeting the target whose QPS intervals overlap the fastest one's
        (the fastest included; one setting = no tie)."""
        reached = self.reached
        return [
            reached[index]
            for index in tied_with_fastest([setting.qps_interval for setting in reached])
        ]

    @property
    def best(self) -> TuneSetting | None:
        """The chosen setting: the cheapest build among those tied with the fastest (see
        :data:`CHOICE_RULE`); None when no setting meets the target."""
        tied = self.tied
        if not tied:
            return None
        return tied[cheapest([(setting.index_bytes, setting.build_seconds) for setting in tied])]

    @property
    def operating_points(self) -> list[OperatingPoint]:
        """The Pareto-optimal (slice recall, QPS) points over every run of every index."""
        return pareto_points([point for setting in self.settings for point in setting.points])

    @property
    def least_work(self) -> TuneSetting | None:
        """The setting reaching the target with the fewest distance computations per query
        on the slice, among those whose engine counts them (None when none does)."""
        counted = [
            setting
            for setting in self.reached
            if slice_work(setting.evaluation, self.slice_name) is not None
        ]
        if not counted:
            return None
        return min(
            counted,
            key=lambda setting: (slice_work(setting.evaluation, self.slice_name), -setting.qps),
        )

    def best_reached(self) -> tuple[TuneSetting, int, float] | None:
        """(setting, effort, slice recall) of the highest slice recall measured."""
        if not self.settings:
            return None
        setting = max(self.settings, key=lambda entry: entry.best_slice_recall()[1])
        effort, recall = setting.best_slice_recall()
        return setting, effort, recall

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        best, fastest, least_work = self.best, self.fastest, self.least_work
        tied = self.tied
        closest = self.best_reached()
        return {
            "engine": self.engine,
            "engines": list(dict.fromkeys(setting.engine for setting in self.settings)),
            "param": self.param,
            "dataset": self.dataset,
            "k": self.k,
            "target": self.target,
            "slice": self.slice_name,
            "recall_rule": (
                self.settings[0].evaluation.recall_rule if self.settings else "tolerant"
            ),
            "mode": self.mode,
            "runs": self.runs,
            "query_params": dict(self.query_params),
            "evaluations": self.evaluations,
            "exhaustive": self.exhaustive,
            "qps_tolerance": self.qps_tolerance,
            "resolution": self.resolution,
            "settings": [setting.to_dict(self.param) for setting in self.settings],
            "best": None if best is None else best.to_dict(self.param),
            "fastest": None if fastest is None else fastest.to_dict(self.param),
            "least_work": None if least_work is None else least_work.to_dict(self.param),
            "operating_points": [point.to_dict() for point in self.operating_points],
            "tied": [
                {
                    "label": setting.label,
                    "build_params": dict(setting.build_params),
                    "effort": setting.chosen,
                    "qps": setting.qps,
                    "qps_min": setting.qps_interval[0],
                    "index_bytes": setting.index_bytes,
                    "build_seconds": setting.build_seconds,
                }
                for setting in tied
            ]
            if len(tied) > 1
            else [],
            "choice_rule": CHOICE_RULE,
            "best_reached": None
            if closest is None
            else {
                "build_params": dict(closest[0].build_params),
                "effort": closest[1],
                "slice_recall": closest[2],
            },
        }


def choose_fastest(intervals: Sequence[tuple[float, float]]) -> int:
    """Index of the interval (slowest, fastest QPS) with the highest fastest QPS (the first
    on equal values)."""
    return max(range(len(intervals)), key=lambda index: (intervals[index][1], -index))


def tied_with_fastest(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """Indices, in order, of the QPS intervals (slowest, fastest over the runs) that overlap
    the fastest setting's interval, the fastest included; [] for no intervals."""
    if not intervals:
        return []
    fastest_low = intervals[choose_fastest(intervals)][0]
    return [index for index, (_, high) in enumerate(intervals) if high >= fastest_low]


def cheapest(costs: Sequence[tuple[float, float]]) -> int:
    """Index of the cheapest build among (index bytes, build seconds): the smallest index,
    then the shortest build, then the first."""
    return min(range(len(costs)), key=lambda index: (costs[index][0], costs[index][1], index))


def refine_effort(
    measure: Callable[[int], float],
    failing: int,
    passing: int,
    target: float,
    resolution: int = 1,
) -> tuple[int, int, dict[int, float]]:
    """Bisect the integers between ``failing`` (recall below target) and ``passing``
    (meeting it) until they are at most ``resolution`` apart; returns (smallest passing
    effort found, its distance from the largest failing one, effort -> recall of each
    probe)."""
    trace: dict[int, float] = {}
    while passing - failing > resolution:
        middle = (failing + passing) // 2
        trace[middle] = measure(middle)
        if trace[middle] >= target - RECALL_TOLERANCE:
            passing = middle
        else:
            failing = middle
    return passing, passing - failing, trace


def _bisect_setting(
    measure: Callable[[int], float], grid: list[int], target: float
) -> tuple[int | None, dict[int, float]]:
    """Smallest grid value whose measured slice recall meets ``target``, assuming recall is
    monotone in the effort; returns (value or None, effort -> recall of every probe)."""
    trace: dict[int, float] = {}
    low, high = 0, len(grid)
    while low < high:
        middle = (low + high) // 2
        trace[grid[middle]] = measure(grid[middle])
        if trace[grid[middle]] >= target - RECALL_TOLERANCE:
            high = middle
        else:
            low = middle + 1
    return (grid[high] if high < len(grid) else None), trace


def tune(
    dataset: Dataset,
    engine: str | Sequence[str],
    target: float = 0.95,
    slice_name: str = ALL,
    build_grid: Mapping[str, Sequence[Any]] | None = None,
    effort_grid: Sequence[Any] | None = None,
    k: int = 10,
    mode: str = "batch",
    runs: int = DEFAULT_RUNS,
    cache_dir: str | Path | None = None,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
    *,
    query_params: dict | None = None,
    query_grid: Mapping[str, Sequence[Any]] | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    memory_check: bool = True,
    qps_tolerance: float = DEFAULT_QPS_TOLERANCE,
    resolution: int = 1,
    recall_rule: str = "tolerant",
    filter_strategy: str = "auto",
) -> TuneResult:
    """Find, for each build setting of ``engine`` (the product of ``build_grid``, default
    the engine's ``tune_build_grid``), the smallest effort in ``effort_grid`` (default per
    build, the built engine's ``effort_grid``) whose recall@k on ``slice_name`` is
    >= ``target``, by bisection, refined between the last failing and the first passing
    grid value until they are ``resolution`` apart, and the chosen setting overall (see
    :data:`CHOICE_RULE`; QPS: best of up to ``runs`` runs, stopping once they agree within
    ``qps_tolerance``). Builds of one engine may be tuned by different effort parameters
    (a faiss IVF by nprobe, an HNSW graph by efSearch).

    ``engine`` may be several engines (``tune --any-engine``): each is tuned over its own
    build grid (``build_grid`` names are given to the engines that have them; an engine
    with none of them gets its default grid) and the answer is the cheapest of any.

    ``query_grid`` lists values of other query knobs (``k_factor``, ``quantizer_efSearch``):
    the effort is bisected for each combination of them (their product), as faiss'
    OperatingPoints does, and each build reports its fastest combination reaching the
    target; a knob applies to the builds that have it. Every run is an operating point;
    each setting keeps its Pareto-optimal (slice recall, QPS) points.

    Indexes are built with ``threads`` threads into ``cache_dir`` (reused when present;
    a temporary folder when None). ``query_params`` fixes the other query params;
    ``progress`` receives one line per build and per evaluate run. Unless not
    ``memory_check``, a build grid whose largest setting cannot fit in memory, or exact
    truth that cannot, is refused (ResourceError) before any work. ``recall_rule``:
    "tolerant" (ann-benchmarks) or "strict" (id overlap with the true top-k).
    """
    check_recall_rule(recall_rule)
    engines = [engine] if isinstance(engine, str) else list(dict.fromkeys(engine))
    if not engines:
        raise InputError("no engine to tune")
    grids = engine_build_grids(engines, build_grid, dataset.n_base)
    plans: list[tuple[str, dict, dict, str]] = []  # engine, given, resolved, effort param
    for name in engines:
        engine_class = get_engine(name)
        for given in build_settings(name, grids[name]):
            resolved = resolve_params(name, engine_class.build_specs, given, "build")
            plans.append((name, given, resolved, effort_parameter(engine_class, resolved)))
    if not 0.0 < float(target) <= 1.0:
        raise InputError(f"target recall must be in (0, 1], got {target}")
    if not 1 <= k <= dataset.n_base:
        raise InputError(f"k must be between 1 and the {dataset.n_base} base vectors, got {k}")
    probe_measure = Measure(
        k=k,
        mode=mode,
        runs=runs,
        qps_tolerance=qps_tolerance,
        recall_rule=recall_rule,
        filter_strategy=filter_strategy,
    )
    if resolution < 1:
        raise InputError(f"resolution must be >= 1, got {resolution}")
    fixed = dict(query_params or {})
    knob_grid = {name: list(values) for name, values in (query_grid or {}).items()}
    combinations_of: list[list[dict]] = []
    fixed_grids: list[list[int] | None] = []
    for name, _, resolved, param in plans:
        engine_class = get_engine(name)
        if param in fixed:
            raise ParamError(f"{param} is the effort parameter tuned; give it as the effort grid")
        if param in knob_grid:
            raise ParamError(
                f"{param} is the effort parameter tuned; give it as the effort grid, "
                "not in the query grid"
            )
        resolve_params(name, engine_class.query_specs(resolved), fixed, "query")
        combinations_of.append(query_combinations(name, resolved, knob_grid, fixed))
        fixed_grids.append(
            check_grid(engine_class, effort_grid, resolved) if effort_grid is not None else None
        )
    unused = [
        knob
        for knob in knob_grid
        if not any(knob in get_engine(n).query_specs(r) for n, _, r, _ in plans)
    ]
    if unused:
        raise ParamError(f"no build tuned has the query parameter {unused[0]!r} of the query grid")
    labels = index_labels([(name, resolved) for name, _, resolved, _ in plans])
    params = list(dict.fromkeys(param for *_, param in plans))
    notify = progress or (lambda message: None)

    if memory_check:
        for name in engines:
            engine_class = get_engine(name)
            need = max(
                engine_class(dataset.metric, dataset.dim, **given).estimate_build_bytes(
                    dataset.n_base
                )
                for plan_engine, given, _, _ in plans
                if plan_engine == name
            )
            check_memory(
                need,
                f"building {name} over {dataset.n_base:,} x {dataset.dim} vectors",
                "use fewer vectors or a smaller build grid",
            )
    notify("exact truth and query profile")
    truth = true_neighbor_distances(dataset, k, memory_check=memory_check)
    true_ids = (
        true_neighbor_ids(dataset, k, memory_check=memory_check)
        if recall_rule == "strict"
        else None
    )
    exact = Truth(dataset, k, truth, true_ids)
    profile = build_profile(dataset, truth, k, cuts=cuts)
    check_slice(slice_name, profile)
    fingerprint = fingerprint_vectors(dataset.base)

    with tempfile.TemporaryDirectory(prefix="annkit-tune-") as scratch:
        root = Path(cache_dir) if cache_dir is not None else Path(scratch)
        outcomes: list[TuneSetting] = []
        exhaustive = 0
        for number, ((name, given, resolved, param), label) in enumerate(
            zip(plans, labels, strict=True), start=1
        ):
            keyed = cache_params(name, resolved, dataset.metric, dataset.dim, dataset.n_base)
            directory = index_dir(root, index_key(fingerprint, name, keyed, dataset.metric))
            text = " ".join(f"{key}={value}" for key, value in given.items()) or "defaults"
            head = f"{name} {text}"
            notify(f"[{number}/{len(plans)}] {head}")
            bundle, cached = obtain_index(
                directory,
                name,
                given,
                dataset,
                fingerprint=fingerprint,
                threads=threads,
                memory_check=memory_check,
            )
            notify(
                f"{head}: "
                + (
                    "loaded from the cache"
                    if cached
                    else f"built in {float(bundle.manifest['build_seconds']):.1f} s"
                )
            )
            built_params = dict(bundle.manifest["build_params"])
            grid = fixed_grids[number - 1] or bundle.engine.effort_grid(k, dataset.n_base)
            runs_made: list[Evaluation] = []
            tried = []
            for knobs in combinations_of[number - 1]:
                exhaustive += len(grid)

                def run(
                    effort: int,
                    bundle: Any = bundle,
                    knobs: dict = knobs,
                    param: str = param,
                    head: str = head,
                    runs_made: list[Evaluation] = runs_made,
                ) -> Evaluation:
                    return _probe(
                        bundle,
                        dataset,
                        probe_measure,
                        {**fixed, **knobs, param: effort},
                        exact,
                        profile,
                        slice_name,
                        f"{head} {_knob_text(knobs)}{param}={effort}",
                        notify,
                        runs_made,
                    )

                tried.append(_tune_one(run, grid, float(target), resolution, knobs, slice_name))
            chosen = _choose_combination(tried)
            points = [operating_point(e, slice_name, label, built_params) for e in runs_made]
            outcomes.append(
                TuneSetting(
                    build_params=built_params,
                    grid=list(grid),
                    chosen=chosen.chosen,
                    evaluation=chosen.evaluation,
                    trace=chosen.trace,
                    cached=cached,
                    build_seconds=float(bundle.manifest["build_seconds"]),
                    grid_choice=chosen.grid_choice,
                    bracket=chosen.bracket,
                    resolution=chosen.gap,
                    engine=name,
                    param=param,
                    label=label,
                    knobs=dict(chosen.knobs),
                    combinations=tuple(
                        attempt.summary(param, slice_name)
                        for attempt in tried
                        if len(tried) > 1 or attempt.knobs
                    ),
                    probes=len(runs_made),
                    grid_probes=sum(len(set(attempt.trace) & set(grid)) for attempt in tried),
                    points=tuple(pareto_points(points)),
                )
            )
    return TuneResult(
        engine=", ".join(engines),
        param=" / ".join(params),
        dataset=dataset.name,
        k=k,
        target=float(target),
        slice_name=slice_name,
        mode=mode,
        runs=runs,
        query_params=fixed,
        settings=outcomes,
        evaluations=sum(setting.evaluations for setting in outcomes),
        exhaustive=exhaustive,
        qps_tolerance=qps_tolerance,
        resolution=resolution,
    )


@dataclass(frozen=True)
class _Attempt:
    """The bisection (and refinement) of the effort at one combination of the other knobs."""

    knobs: dict
    chosen: int | None
    evaluation: Evaluation
    trace: dict[int, float]
    grid_choice: int | None
    bracket: tuple[int, int] | None
    gap: int | None

    def summary(self, param: str, slice_name: str) -> dict:
        return {
            **self.knobs,
            param: self.chosen,
            "reached": self.chosen is not None,
            "slice_recall": slice_recall(self.evaluation, slice_name),
            "qps": self.evaluation.qps,
            "distance_computations": slice_work(self.evaluation, slice_name),
            "evaluations": len(self.trace),
        }


def _probe(
    bundle: Any,
    dataset: Dataset,
    measure: Measure,
    params: dict,
    truth: Truth,
    profile: QueryProfile,
    slice_name: str,
    text: str,
    notify: Callable[[str], None],
    runs_made: list[Evaluation],
) -> Evaluation:
    evaluation = measure_setting(bundle, dataset, measure, params, truth=truth, profile=profile)
    runs_made.append(evaluation)
    notify(
        f"{text}: {slice_name} recall {slice_recall(evaluation, slice_name):.4f}, "
        f"{evaluation.qps:,.0f} QPS"
    )
    return evaluation


def _tune_one(
    run: Callable[[int], Evaluation],
    grid: list[int],
    target: float,
    resolution: int,
    knobs: dict,
    slice_name: str,
) -> _Attempt:
    """Bisect ``grid`` for the least effort whose recall on ``slice_name`` reaches
    ``target``, then refine it between the last failing and the first passing value."""
    evaluations: dict[int, Evaluation] = {}

    def measure(effort: int) -> float:
        evaluations[effort] = run(effort)
        return slice_recall(evaluations[effort], slice_name)

    grid_choice, trace = _bisect_setting(measure, grid, target)
    chosen, bracket, gap = grid_choice, None, None
    if grid_choice is not None and grid_choice != grid[0]:
        failing = grid[grid.index(grid_choice) - 1]
        bracket = (failing, grid_choice)
        chosen, gap, refined = refine_effort(measure, failing, grid_choice, target, resolution)
        trace.update(refined)
    reported = evaluations[chosen if chosen is not None else max(evaluations)]
    return _Attempt(knobs, chosen, reported, trace, grid_choice, bracket, gap)


def _choose_combination(tried: list[_Attempt]) -> _Attempt:
    """The fastest combination reaching the target (the first on equal QPS), else the one
    with the highest recall measured."""
    reached = [attempt for attempt in tried if attempt.chosen is not None]
    if reached:
        return max(reached, key=lambda attempt: (attempt.evaluation.qps, -tried.index(attempt)))
    return max(tried, key=lambda attempt: (max(attempt.trace.values()), -tried.index(attempt)))


def _knob_text(knobs: Mapping[str, Any]) -> str:
    return "".join(f"{name}={value} " for name, value in knobs.items())


def query_combinations(
    engine: str,
    build_params: Mapping[str, Any],
    knob_grid: Mapping[str, Sequence[Any]],
    fixed: Mapping[str, Any],
) -> list[dict]:
    """The combinations (product) of the query grid's knobs this build has, values coerced
    by its query specs ([{}] when it has none of them); a knob also fixed is an error."""
    specs = get_engine(engine).query_specs(build_params)
    axes = []
    for name, values in knob_grid.items():
        if name not in specs:
            continue
        if name in fixed:
            raise ParamError(f"{name} is both fixed (-p) and in the query grid")
        coerced = list(dict.fromkeys(specs[name].coerce(name, value) for value in values))
        if not coerced:
            raise ParamError(f"query grid for {name} is empty")
        axes.append([(name, value) for value in coerced])
    return [dict(combination) for combination in itertools.product(*axes)]


def engine_build_grids(
    engines: Sequence[str],
    build_grid: Mapping[str, Sequence[Any]] | None,
    n_base: int,
) -> dict[str, Mapping[str, Sequence[Any]]]:
    """Each engine's build grid: with one engine, ``build_grid`` itself (default its
    ``tune_build_grid``); with several, the names of ``build_grid`` each engine has (its
    ``tune_build_grid`` when it has none of them). A name no engine has is a ParamError."""
    if len(engines) == 1:
        name = engines[0]
        return {
            name: build_grid if build_grid is not None else get_engine(name).tune_build_grid(n_base)
        }
    given = dict(build_grid or {})
    out: dict[str, Mapping[str, Sequence[Any]]] = {}
    for name in engines:
        specs = get_engine(name).build_specs
        own = {param: values for param, values in given.items() if param in specs}
        out[name] = own or get_engine(name).tune_build_grid(n_base)
    for param in given:
        if not any(param in get_engine(name).build_specs for name in engines):
            raise ParamError(f"no engine of {', '.join(engines)} has a build parameter {param!r}")
    return out


def exhaustive_choice(trace: dict[int, float], target: float) -> int | None:
    """The smallest effort in a full scan ``trace`` (effort -> slice recall) meeting target."""
    meeting = [
        effort for effort, recall in sorted(trace.items()) if recall >= target - RECALL_TOLERANCE
    ]
    return meeting[0] if meeting else None
