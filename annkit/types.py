"""Typed values that flow between annkit's modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Metric = Literal["euclidean", "angular", "ip"]
METRICS: tuple[str, ...] = ("euclidean", "angular", "ip")
METRIC_ALIASES: dict[str, str] = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "angular": "angular",
    "cosine": "angular",
    "ip": "ip",
    "dot": "ip",
    "inner_product": "ip",
}


def normalize_metric(name: str) -> str:
    """Map a metric name or alias (``cosine``, ``l2``, ``dot``...) to euclidean/angular/ip."""
    from annkit.errors import InputError

    key = str(name).strip().lower()
    if key not in METRIC_ALIASES:
        raise InputError(
            f"unknown metric {name!r}: use one of euclidean, angular (cosine), ip (dot)"
        )
    return METRIC_ALIASES[key]


@dataclass(frozen=True)
class Dataset:
    """Base vectors, queries and (optionally) their exact neighbours and query weights.

    base: (n, d) float32; queries: (nq, d) float32; neighbors: (nq, gk) int64 exact
    neighbour ids best first, or None; weights: (nq,) float64 query frequency, or None.
    """

    name: str
    metric: str
    base: np.ndarray
    queries: np.ndarray
    neighbors: np.ndarray | None = None
    weights: np.ndarray | None = None
    source: str = ""

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    @property
    def n_base(self) -> int:
        return int(self.base.shape[0])

    @property
    def n_queries(self) -> int:
        return int(self.queries.shape[0])

    @property
    def gt_depth(self) -> int:
        return 0 if self.neighbors is None else int(self.neighbors.shape[1])


@dataclass(frozen=True)
class SearchResult:
    """Result of a batch search: ids (nq, k) int64 padded with -1, distances (nq, k) float32
    in the metric's convention (padded with +inf), and distance_computations (nq,) int64: the
    exact number of distance computations each query did, or None where the library cannot
    count them (never an estimate)."""

    ids: np.ndarray
    distances: np.ndarray
    distance_computations: np.ndarray | None = None


@dataclass(frozen=True)
class GroundTruth:
    """Exact neighbours: ids (nq, k) int64 best first and distances (nq, k) float64."""

    ids: np.ndarray
    distances: np.ndarray
    metric: str


@dataclass(frozen=True)
class Evaluation:
    """Everything measured for one (index, query params) setting on one query set."""

    engine: str
    build_params: dict
    query_params: dict
    metric: str
    k: int
    mode: str
    queries: int
    recall: float
    qps: float
    latency_ms: dict
    build_seconds: float
    index_bytes: int
    search_seconds: float
    runs: int
    per_query_recall: np.ndarray = field(repr=False)
    dataset: str = ""
    extra: dict = field(default_factory=dict)
    profile: Any = field(default=None, repr=False)  # annkit.slices.QueryProfile or None

    def to_dict(self) -> dict:
        """A JSON-ready dict (per-query recall left out)."""
        out = {
            "engine": self.engine,
            "build_params": dict(self.build_params),
            "query_params": dict(self.query_params),
            "metric": self.metric,
            "dataset": self.dataset,
            "k": self.k,
            "mode": self.mode,
            "queries": self.queries,
            "recall": self.recall,
            "qps": self.qps,
            "latency_ms": dict(self.latency_ms),
            "build_seconds": self.build_seconds,
            "index_bytes": self.index_bytes,
            "search_seconds": self.search_seconds,
            "runs": self.runs,
        }
        out.update(self.extra)
        return out
