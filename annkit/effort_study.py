"""The effort study behind ``annkit effort``: for an index bundle and a dataset, every
query's minimum effort (:func:`annkit.effort.minimum_effort`), its distribution over the
frequency and hardness slices (:func:`annkit.effort.effort_report`) and, optionally, a
per-query CSV. One call with the command's options; the command only renders the result."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annkit.bundle import load_bundle, read_manifest
from annkit.effort import (
    EffortResult,
    check_grid,
    effort_parameter,
    effort_report,
    minimum_effort,
    per_query_columns,
)
from annkit.engines.base import get_engine, resolve_params
from annkit.evaluate import (
    check_compatible,
    check_recall_rule,
    ground_truth_notice,
    true_neighbor_distances,
)
from annkit.io.table import write_csv_columns
from annkit.longtail import DEFAULT_CUTS
from annkit.slices import build_profile
from annkit.sources import open_dataset, query_texts
from annkit.types import QueryProfile


@dataclass(frozen=True)
class EffortStudy:
    """What :func:`study_effort` found.

    report: :func:`annkit.effort.effort_report`'s JSON-ready dict plus ``index``;
    result: the per-query minimum effort; profile: the query slices and hardness;
    query_text: the dataset's query strings (None when it has none).
    """

    index: str
    report: dict
    result: EffortResult = field(repr=False)
    profile: QueryProfile = field(repr=False)
    query_text: list[str] | None = field(default=None, repr=False)
    #: one-line notices for the user (e.g. ground truth recomputed), shown on stderr
    notices: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The JSON-ready report (``index`` included)."""
        return dict(self.report)


def study_effort(
    index: str | Path,
    data: str | Path | None = None,
    *,
    queries: str | Path | None = None,
    groundtruth: str | Path | None = None,
    weights: str | Path | None = None,
    base_labels: str | Path | None = None,
    query_labels: str | Path | None = None,
    metric: str | None = None,
    max_queries: int | None = None,
    name: str | None = None,
    k: int = 10,
    target: float = 0.9,
    grid: Sequence[Any] | None = None,
    query_params: Mapping[str, Any] | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    per_query_file: str | Path | None = None,
    memory_check: bool = True,
    progress: Callable[[int, int], None] | None = None,
    recall_rule: str = "tolerant",
    filter_strategy: str = "auto",
) -> EffortStudy:
    """Per query of ``data`` (opened as :func:`annkit.sources.open_dataset` does), the least
    effort at which ``index`` reaches recall@``k`` >= ``target``, bisected over ``grid``
    (default: the engine's effort grid) with ``query_params`` held fixed; reported overall
    and per slice (frequency bands at ``cuts``, hardness), and written per query to
    ``per_query_file`` (.csv) when given. Exact engines, a bad grid and unknown query
    params are refused before the index or the data is loaded. ``progress(round, rounds)``
    follows the bisection; ``memory_check`` as in exact ground truth; ``recall_rule``
    "tolerant" (ann-benchmarks) or "strict" (id overlap with the true top-k)."""
    manifest = read_manifest(index)
    engine_name, built = manifest["engine"], manifest["build_params"]
    effort_parameter(engine_name, built)  # refuse exact engines before any work
    check_recall_rule(recall_rule)
    checked_grid = None if grid is None else check_grid(engine_name, grid, built)
    fixed = dict(query_params or {})
    resolve_params(engine_name, get_engine(engine_name).query_specs(built), fixed, "query")
    bundle = load_bundle(index)
    dataset = open_dataset(
        data,
        queries=queries,
        groundtruth=groundtruth,
        weights=weights,
        metric=metric,
        max_queries=max_queries,
        name=name,
        fallback_metric=(f"index {index}", manifest["metric"]),
        base_labels=base_labels,
        query_labels=query_labels,
    )
    check_compatible(bundle, dataset)
    truth = true_neighbor_distances(dataset, k, memory_check=memory_check)
    profile = build_profile(dataset, truth, k, cuts=cuts)
    result = minimum_effort(
        bundle,
        dataset,
        k,
        target,
        checked_grid,
        truth,
        query_params=fixed,
        progress=progress,
        recall_rule=recall_rule,
        filter_strategy=filter_strategy,
    )
    report = {**effort_report(result, profile), "index": str(index), "recall_rule": recall_rule}
    text = query_texts(dataset)
    if per_query_file is not None:
        write_csv_columns(per_query_file, per_query_columns(result, profile, text))
    notice = ground_truth_notice(dataset, k)
    return EffortStudy(
        index=str(index),
        report=report,
        result=result,
        profile=profile,
        query_text=text,
        notices=(notice,) if notice else (),
    )
