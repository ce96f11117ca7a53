"""The records of a stream: one :class:`StepRecord` per runbook step, a
:class:`FreshBuild` beside a search step measured with ``--rebuild-every``, and the
:class:`StreamReport` (settings, steps, the average over the search steps and when a fresh
build would have paid off)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from annkit.types import SliceRecall, TailSummary, slices_from_dict, slices_to_dict

#: a live index has drifted past a fresh build once its mean recall is this much lower...
RECALL_DRIFT = 0.01
#: ...or its distance computations per query this share higher
WORK_DRIFT = 0.05


@dataclass(frozen=True)
class SearchMeasure:
    """One search of all queries over an index (the live one or a fresh build): recall@k
    (mean, and the tail: p1 / p5 / p10, shares; the cost tail when counted), slices (the
    frequency bands where the data has weights), traffic-weighted recall, short results
    (queries with fewer valid ids than min(k, live)), ids returned that are not live (an
    engine error), duplicates, distance computations per query (None where the engine
    cannot count), QPS (the fastest timed run) and the index's memory."""

    k: int
    recall: float
    p5_recall: float
    tail: TailSummary
    slices: dict[str, SliceRecall]
    weighted_recall: float | None
    short_results: int
    dead_ids: int
    duplicate_ids: int
    distance_computations: float | None
    qps: float
    qps_runs: tuple[float, ...]
    search_seconds: float
    index_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "tail":
                value = value.to_dict()
            elif item.name == "slices":
                value = slices_to_dict(value)
            elif item.name == "qps_runs":
                value = list(value)
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchMeasure:
        values: dict[str, Any] = {item.name: data.get(item.name) for item in fields(cls)}
        values["tail"] = TailSummary.from_dict(data["tail"])
        values["slices"] = slices_from_dict(data.get("slices") or {})
        values["qps_runs"] = tuple(data.get("qps_runs") or ())
        return cls(**values)


@dataclass(frozen=True)
class FreshBuild:
    """A fresh build over the live set at a search step, measured like the live index."""

    build_seconds: float
    measure: SearchMeasure

    def to_dict(self) -> dict[str, Any]:
        return {"build_seconds": self.build_seconds, **self.measure.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FreshBuild:
        return cls(
            build_seconds=float(data["build_seconds"]), measure=SearchMeasure.from_dict(data)
        )


@dataclass(frozen=True)
class StepRecord:
    """One runbook step as it ran: its number (the runbook's), operation, the live count
    after it, the ids it changed and the seconds it took; a search also its measurement
    (None while nothing is live) and, with ``--rebuild-every``, a fresh build's."""

    step: int
    operation: str
    live: int
    changed: int
    seconds: float
    search: SearchMeasure | None = None
    fresh: FreshBuild | None = None
    #: seconds the step's exact ground truth took (0 when read from the cache)
    truth_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: step, operation, live, changed, seconds, and for a search the
        measurement's fields at the top level plus ``fresh``."""
        data: dict[str, Any] = {
            "step": self.step,
            "operation": self.operation,
            "live": self.live,
            "changed": self.changed,
            "seconds": self.seconds,
        }
        if self.operation == "search":
            data["truth_seconds"] = self.truth_seconds
            if self.search is not None:
                data.update(self.search.to_dict())
            data["fresh"] = None if self.fresh is None else self.fresh.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        search = None
        if data.get("operation") == "search" and data.get("recall") is not None:
            search = SearchMeasure.from_dict(data)
        fresh = data.get("fresh")
        return cls(
            step=int(data["step"]),
            operation=str(data["operation"]),
            live=int(data["live"]),
            changed=int(data.get("changed") or 0),
            seconds=float(data.get("seconds") or 0.0),
            search=search,
            fresh=None if fresh is None else FreshBuild.from_dict(fresh),
            truth_seconds=data.get("truth_seconds"),
        )

    def comparable(self) -> dict[str, Any]:
        """The record without what depends on the machine's speed (seconds, QPS): an
        interrupted and resumed stream gives exactly these."""
        data = self.to_dict()
        for key in ("seconds", "truth_seconds", "qps", "qps_runs", "search_seconds"):
            data.pop(key, None)
        if data.get("fresh"):
            data["fresh"] = {
                key: value
                for key, value in data["fresh"].items()
                if key not in ("build_seconds", "qps", "qps_runs", "search_seconds")
            }
        return data


@dataclass(frozen=True)
class Drift:
    """The first search step where the live index has drifted past a fresh build: its
    recall lower by :data:`RECALL_DRIFT` or more, or its work higher by :data:`WORK_DRIFT`
    or more without recall higher by :data:`RECALL_DRIFT` (``reason``); None fields when it
    never did."""

    step: int | None
    reason: str | None
    live_recall: float | None = None
    fresh_recall: float | None = None
    live_work: float | None = None
    fresh_work: float | None = None
    compared_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def find_drift(steps: list[StepRecord]) -> Drift:
    """:class:`Drift` from the search steps that carry a fresh build."""
    compared = [step for step in steps if step.search is not None and step.fresh is not None]
    for step in compared:
        assert step.search is not None and step.fresh is not None
        live, fresh = step.search, step.fresh.measure
        reasons = []
        if live.recall <= fresh.recall - RECALL_DRIFT:
            reasons.append("recall")
        if (
            live.distance_computations is not None
            and fresh.distance_computations is not None
            and live.distance_computations >= fresh.distance_computations * (1 + WORK_DRIFT)
            and live.recall < fresh.recall + RECALL_DRIFT  # extra work that buys no recall
        ):
            reasons.append("work")
        if reasons:
            return Drift(
                step=step.step,
                reason=" and ".join(reasons),
                live_recall=live.recall,
                fresh_recall=fresh.recall,
                live_work=live.distance_computations,
                fresh_work=fresh.distance_computations,
                compared_steps=len(compared),
            )
    return Drift(step=None, reason=None, compared_steps=len(compared))


@dataclass(frozen=True)
class StreamReport:
    """A stream's settings and its records, with the averages over the search steps (mean
    recall is big-ann-benchmarks' streaming score)."""

    engine: str
    build_params: dict[str, Any]
    query_params: dict[str, Any]
    dataset: str
    metric: str
    runbook: str
    entry: str
    max_pts: int
    k: int
    recall_rule: str
    threads: int
    rebuild_every: int | None
    queries: int
    steps: list[StepRecord] = field(default_factory=list)
    #: steps replayed without measuring when this run resumed an interrupted one
    resumed_from: int | None = None
    #: queries carrying a filter (labelled data: searched over-fetching and dropping what
    #: fails, scored by filtered recall); None without labels
    filtered_queries: int | None = None

    def searches(self) -> list[StepRecord]:
        return [step for step in self.steps if step.search is not None]

    def summary(self) -> dict[str, Any]:
        """mean recall, mean p5 and lowest recall over the measured search steps; mean
        distance computations and QPS; short results in all; the fresh builds' mean recall
        and the drift step."""
        measured = [step.search for step in self.searches() if step.search is not None]
        fresh = [step.fresh.measure for step in self.steps if step.fresh is not None]

        def mean(values: list[float | None]) -> float | None:
            kept = [value for value in values if value is not None]
            return float(sum(kept) / len(kept)) if kept and len(kept) == len(values) else None

        return {
            "search_steps": len(measured),
            "mean_recall": mean([m.recall for m in measured]),
            "mean_p5_recall": mean([m.p5_recall for m in measured]),
            "min_recall": min((m.recall for m in measured), default=None),
            "mean_distance_computations": mean([m.distance_computations for m in measured]),
            "mean_qps": mean([m.qps for m in measured]),
            "short_results": sum(m.short_results for m in measured),
            "dead_ids": sum(m.dead_ids for m in measured),
            "fresh_mean_recall": mean([m.recall for m in fresh]),
            "drift": find_drift(self.steps).to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        data = {
            item.name: getattr(self, item.name) for item in fields(self) if item.name != "steps"
        }
        data["summary"] = self.summary()
        data["steps"] = [step.to_dict() for step in self.steps]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamReport:
        values: dict[str, Any] = {
            item.name: data.get(item.name) for item in fields(cls) if item.name != "steps"
        }
        return cls(**values, steps=[StepRecord.from_dict(step) for step in data["steps"]])
