"""Why did one query fail? Its returned and true neighbours side by side, with exact
distances, ranks and texts, and for each missed true neighbour the least effort at which the
index finds it.

``annkit explain`` makes one call: :func:`explain_query`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bundle import Bundle, load_bundle
from annkit.effort import check_grid, effort_parameter
from annkit.errors import InputError
from annkit.evaluate import check_compatible, refuse_filters, true_neighbor_distances
from annkit.groundtruth import compute_ground_truth
from annkit.hardness import HARDER_IS_HIGHER, hardness_measures
from annkit.metrics import EPSILON, exact_distances
from annkit.sources import base_texts, open_dataset, query_texts
from annkit.types import Dataset


@dataclass(frozen=True)
class Neighbour:
    """One neighbour of the query: its base id, exact distance (float64, the metric's
    convention), rank (1 = nearest) in its list, and text when the file has ``train_text``.

    For a returned neighbour ``true_rank`` is its rank among the true top-k (None when it is
    not one of them) and ``counted`` whether recall's tolerant rule counts it. For a true
    neighbour ``found`` says whether the index returned it, and for a missed one
    ``least_effort`` is the smallest effort-grid value at which the index returns it (None
    when not within the grid, or for an exact engine)."""

    id: int
    distance: float
    rank: int
    text: str | None = None
    true_rank: int | None = None
    counted: bool | None = None
    found: bool | None = None
    least_effort: int | float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "distance": self.distance,
            "rank": self.rank,
            "text": self.text,
            "true_rank": self.true_rank,
            "counted": self.counted,
            "found": self.found,
            "least_effort": self.least_effort,
        }


@dataclass(frozen=True)
class Hardness:
    """One hardness measure of the query: its ``value`` and ``harder_than``, the share of the
    dataset's queries that are easier by this measure (its percentile, 0..1)."""

    value: float
    harder_than: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "value": None if np.isnan(self.value) else round(float(self.value), 6),
            "harder_than": round(float(self.harder_than), 4),
        }


#: missed neighbours this close (relative) to the farthest returned one are "barely nearer"
LOW_CONTRAST = 0.05


def search_ending(returned: np.ndarray, missed: np.ndarray, true_kth: float) -> str | None:
    """Where the search ended, from exact distances (float64, the metric's convention) of
    the returned neighbours and of the true ones it missed: None when none was missed;
    "wrong basin" when even the best returned neighbour lies beyond the true k-th (the
    search ended in another region); "low contrast" when every missed neighbour is within
    LOW_CONTRAST (relative) of the farthest returned one (barely nearer: the region was
    right, the order hard to tell); else "partial" (the right region, stopped before the
    clearly nearer ones)."""
    if missed.size == 0:
        return None
    valid = returned[np.isfinite(returned)]
    if valid.size == 0 or float(valid.min()) > true_kth + EPSILON:
        return "wrong basin"
    farthest = float(valid.max())
    scale = max(abs(farthest), 1e-12)
    if (farthest - float(missed.min())) / scale <= LOW_CONTRAST:
        return "low contrast"
    return "partial"


def _hardness_of(dataset: Dataset, row: int, k: int) -> dict[str, Hardness]:
    """The query's hardness measures and their percentiles among the dataset's queries."""
    truth = true_neighbor_distances(dataset, k, memory_check=False)
    measures = hardness_measures(truth, dataset.base, dataset.queries, dataset.metric, k)
    out: dict[str, Hardness] = {}
    for name, values in measures.items():
        value = float(values[row])
        finite = values[np.isfinite(values)]
        if np.isnan(value):
            share = 1.0  # undefined: slices put it with the hardest
        elif HARDER_IS_HIGHER[name]:
            share = float(np.mean(finite < value)) if finite.size else 0.0
        else:
            share = float(np.mean(finite > value)) if finite.size else 0.0
        out[name] = Hardness(value, share)
    return out


@dataclass(frozen=True)
class Explanation:
    """One query searched at one setting: what came back and what should have.

    ``returned`` / ``truth``: k neighbours each, nearest first. ``recall`` is recall@k under
    the tolerant (ann-benchmarks) rule, ``strict_recall`` the plain id overlap. ``param`` /
    ``grid``: the effort parameter and the grid bisected for the missed neighbours (None /
    empty for an exact engine)."""

    index: str
    engine: str
    dataset: str
    metric: str
    query: int
    query_text: str | None
    k: int
    query_params: dict[str, Any]
    returned: list[Neighbour]
    truth: list[Neighbour]
    recall: float
    strict_recall: float
    param: str | None = None
    grid: list[Any] = field(default_factory=list)
    #: per hardness measure (lid, rc, expansion, ood): the query's value and the share of
    #: the dataset's queries it is harder than (0 = easiest, 1 = hardest)
    hardness: dict[str, Hardness] = field(default_factory=dict)
    #: where the search ended (see :func:`search_ending`); None when every neighbour was found
    ending: str | None = None

    @property
    def missed(self) -> list[Neighbour]:
        """The true neighbours the index did not return."""
        return [entry for entry in self.truth if not entry.found]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "engine": self.engine,
            "dataset": self.dataset,
            "metric": self.metric,
            "query": self.query,
            "query_text": self.query_text,
            "k": self.k,
            "query_params": dict(self.query_params),
            "recall": self.recall,
            "strict_recall": self.strict_recall,
            "param": self.param,
            "grid": list(self.grid),
            "missed": [entry.id for entry in self.missed],
            "hardness": {name: value.to_dict() for name, value in self.hardness.items()},
            "ending": self.ending,
            "returned": [entry.to_dict() for entry in self.returned],
            "truth": [entry.to_dict() for entry in self.truth],
        }


def find_query(dataset: Dataset, query: int | None, query_text: str | None) -> int:
    """The query row named by number or by its ``test_text``; InputError otherwise."""
    if (query is None) == (query_text is None):
        raise InputError("name one query: --query N or --query-text TEXT")
    if query is not None:
        if not 0 <= query < dataset.n_queries:
            raise InputError(
                f"--query {query} is out of range: {dataset.name} has "
                f"{dataset.n_queries} queries (0..{dataset.n_queries - 1})"
            )
        return int(query)
    texts = query_texts(dataset)
    if texts is None:
        raise InputError(f"{dataset.name} has no query texts (test_text): use --query N")
    assert query_text is not None
    exact = [row for row, text in enumerate(texts) if text == query_text]
    if exact:
        return exact[0]
    wanted = query_text.casefold()
    starting = [row for row, text in enumerate(texts) if text.casefold().startswith(wanted)]
    if len(starting) == 1:
        return starting[0]
    if not starting:
        raise InputError(f"no query of {dataset.name} has the text {query_text!r}")
    shown = ", ".join(f"{row}: {texts[row]!r}" for row in starting[:5])
    more = f" and {len(starting) - 5} more" if len(starting) > 5 else ""
    raise InputError(
        f"{len(starting)} queries of {dataset.name} start with {query_text!r} ({shown}{more}): "
        "give more of the text or --query N"
    )


def _true_ids(dataset: Dataset, row: int, k: int) -> np.ndarray:
    if dataset.neighbors is not None and dataset.gt_depth >= k:
        return np.asarray(dataset.neighbors[row, :k], dtype=np.int64)
    truth = compute_ground_truth(
        dataset.base, dataset.queries[row : row + 1], k, dataset.metric, memory_check=False
    )
    return np.asarray(truth.ids[0, :k], dtype=np.int64)


def _search(bundle: Bundle, vector: np.ndarray, k: int, params: Mapping[str, Any]) -> np.ndarray:
    bundle.engine.set_query_params(**params)
    return np.asarray(bundle.engine.search(vector, k).ids[0], dtype=np.int64)


def _least_efforts(
    bundle: Bundle,
    vector: np.ndarray,
    k: int,
    fixed: Mapping[str, Any],
    param: str,
    grid: Sequence[Any],
    wanted: Sequence[int],
) -> dict[int, Any]:
    """For each id in ``wanted``, the smallest grid value at which a search returns it,
    by bisection over ``grid`` (assuming larger effort never loses a neighbour); None when
    not returned even at the largest value."""
    found_at: dict[int, list[int]] = {}  # grid position -> ids returned there (memo)

    def returned(position: int) -> set[int]:
        if position not in found_at:
            found_at[position] = _search(
                bundle, vector, k, {**fixed, param: grid[position]}
            ).tolist()
        return set(found_at[position])

    out: dict[int, Any] = {}
    for target in wanted:
        low, high = 0, len(grid)  # first position not ruled out, first known to find it
        while low < high:
            middle = (low + high) // 2
            if target in returned(middle):
                high = middle
            else:
                low = middle + 1
        out[target] = grid[low] if low < len(grid) and target in returned(low) else None
    return out


def explain_query(
    index: str | Path,
    data: str | Path | None = None,
    *,
    query: int | None = None,
    query_text: str | None = None,
    k: int = 10,
    query_params: Mapping[str, Any] | None = None,
    grid: Sequence[Any] | None = None,
    queries: str | Path | None = None,
    groundtruth: str | Path | None = None,
    metric: str | None = None,
    max_queries: int | None = None,
    name: str | None = None,
) -> Explanation:
    """Search one query of ``data`` (opened as :func:`annkit.sources.open_dataset` does)
    with ``index`` at ``query_params`` and set its k returned neighbours beside its k true
    ones (distances recomputed exactly in float64; texts from ``train_text``). For each
    missed true neighbour, the least effort in ``grid`` (default: the engine's
    ``effort_grid``) at which the index returns it, bisected; none for exact engines."""
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    bundle = load_bundle(index)
    dataset = open_dataset(
        data,
        queries=queries,
        groundtruth=groundtruth,
        metric=metric,
        max_queries=max_queries,
        name=name,
        fallback_metric=(f"index {index}", bundle.manifest["metric"]),
    )
    check_compatible(bundle, dataset)
    refuse_filters(dataset, "explain")
    if k > dataset.n_base:
        raise InputError(f"k={k} exceeds the {dataset.n_base} base vectors")
    row = find_query(dataset, query, query_text)
    engine = bundle.engine
    fixed = dict(query_params or {})
    engine.set_query_params(**fixed)
    settings = dict(engine.query)
    vector = np.ascontiguousarray(dataset.queries[row : row + 1], dtype=np.float32)
    returned_ids = _search(bundle, vector, k, settings)
    true_ids = _true_ids(dataset, row, k)
    both = np.stack([returned_ids, true_ids])
    distances = exact_distances(dataset.base, np.repeat(vector, 2, axis=0), both, dataset.metric)
    returned_dist, true_dist = distances
    kth = float(true_dist.max())
    base_text = base_texts(dataset)
    texts = query_texts(dataset)

    def text(node: int) -> str | None:
        return base_text[node] if base_text is not None and node >= 0 else None

    true_rank = {int(node): rank for rank, node in enumerate(true_ids.tolist(), start=1)}
    returned_set = {int(node) for node in returned_ids.tolist() if node >= 0}
    missed = [int(node) for node in true_ids.tolist() if int(node) not in returned_set]
    param = effort_parameter(type(engine), engine.params) if _has_effort(engine) else None
    efforts: dict[int, Any] = {}
    values: list[Any] = []
    if param is not None:
        values = (
            check_grid(type(engine), grid, engine.params)
            if grid is not None
            else list(engine.effort_grid(k, dataset.n_base))
        )
        if missed:
            others = {name: value for name, value in settings.items() if name != param}
            efforts = _least_efforts(bundle, vector, k, others, param, values, missed)
    engine.set_query_params(**settings)
    seen: set[int] = set()
    returned = []
    for rank, (node, distance) in enumerate(
        zip(returned_ids.tolist(), returned_dist.tolist(), strict=True), start=1
    ):
        counted = node >= 0 and node not in seen and distance <= kth + EPSILON
        seen.add(node)
        returned.append(
            Neighbour(
                id=int(node),
                distance=float(distance),
                rank=rank,
                text=text(node),
                true_rank=true_rank.get(int(node)),
                counted=bool(counted),
            )
        )
    truth = [
        Neighbour(
            id=int(node),
            distance=float(distance),
            rank=rank,
            text=text(node),
            found=int(node) in returned_set,
            least_effort=None if int(node) in returned_set else efforts.get(int(node)),
        )
        for rank, (node, distance) in enumerate(
            zip(true_ids.tolist(), true_dist.tolist(), strict=True), start=1
        )
    ]
    recall = sum(bool(entry.counted) for entry in returned) / k
    strict_recall = sum(bool(entry.found) for entry in truth) / k
    return Explanation(
        index=str(index),
        engine=engine.name,
        dataset=dataset.name,
        metric=dataset.metric,
        query=row,
        query_text=texts[row] if texts is not None else None,
        k=k,
        query_params=settings,
        returned=returned,
        truth=truth,
        recall=recall,
        strict_recall=strict_recall,
        param=param,
        grid=values,
        hardness=_hardness_of(dataset, row, k),
        ending=search_ending(
            returned_dist,
            np.asarray([entry.distance for entry in truth if not entry.found]),
            kth,
        ),
    )


def _has_effort(engine: Any) -> bool:
    """True when the engine has an effort parameter (exact engines have none)."""
    return type(engine).effort_param_for(engine.params) is not None
