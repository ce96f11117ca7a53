"""Runbooks of common shapes, seeded: a sliding window, clustered arrivals, random deletes.

Each shape is a list of :class:`~annkit.stream.runbook.Step` over a dataset's rows, written
in big-ann-benchmarks' format under an entry named after the dataset. Clustered arrivals need
the rows of each cluster next to each other (runbook ids are row numbers): they come with a
copy of the dataset whose rows are grouped by cluster, as big-ann's
``clustered_data_gen.py`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.errors import InputError
from annkit.files import write_text
from annkit.stream.runbook import Step, check_steps, runbook_document
from annkit.types import Dataset

SHAPES: tuple[str, ...] = ("sliding-window", "clustered", "random-deletes")


@dataclass(frozen=True)
class MadeRunbook:
    """What :func:`make_runbook` wrote: the runbook file, its entry, steps and search steps,
    max_pts, and the reordered dataset file (clustered arrivals only)."""

    output: str
    entry: str
    shape: str
    steps: int
    search_steps: int
    max_pts: int
    seed: int
    data_output: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _Steps:
    """Numbers steps as they are added."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, operation: str, **fields: int) -> None:
        self.steps.append(Step(number=len(self.steps) + 1, operation=operation, **fields))


def sliding_window(n_rows: int, searches: int, window: int | None = None) -> tuple[int, list[Step]]:
    """Insert the first ``window`` rows (default half of them) and search; then, ``searches``
    - 1 times, insert the next batch, delete the oldest batch of the same size, search. The
    window slides over all ``n_rows`` rows; max_pts is the window and one batch (the insert
    comes before its delete). (max_pts, steps)."""
    window = n_rows // 2 if window is None else int(window)
    if searches < 2:
        raise InputError("a sliding window needs --searches >= 2")
    if not 0 < window < n_rows:
        raise InputError(f"--window must be in 1..{n_rows - 1}, got {window}")
    batch = (n_rows - window) // (searches - 1)
    if batch < 1:
        raise InputError(
            f"{n_rows:,} rows leave no room to slide a window of {window:,} "
            f"{searches - 1} times; lower --window or --searches"
        )
    made = _Steps()
    made.add("insert", start=0, end=window)
    made.add("search")
    for slide in range(searches - 1):
        made.add("insert", start=window + slide * batch, end=window + (slide + 1) * batch)
        made.add("delete", start=slide * batch, end=(slide + 1) * batch)
        made.add("search")
    return window + batch, made.steps


def random_deletes(
    n_rows: int, searches: int, seed: int, share: float = 0.5, block: int | None = None
) -> tuple[int, list[Step]]:
    """Insert every row and search; then, ``searches`` - 1 times, delete randomly chosen live
    blocks of ``block`` ids (default n/200) and search, until ``share`` of the rows are gone.
    (max_pts, steps)."""
    if searches < 2:
        raise InputError("random deletes need --searches >= 2")
    if not 0.0 < share < 1.0:
        raise InputError(f"--delete-share must be between 0 and 1, got {share}")
    block = max(1, n_rows // 200) if block is None else int(block)
    if block < 1:
        raise InputError(f"--block must be >= 1, got {block}")
    n_blocks = n_rows // block
    to_delete = int(round(share * n_blocks))
    rounds = searches - 1
    if to_delete < rounds:
        raise InputError(
            f"{to_delete} blocks of {block} ids to delete cannot spread over "
            f"{rounds} rounds; lower --block or --searches"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n_blocks, size=to_delete, replace=False)
    made = _Steps()
    made.add("insert", start=0, end=n_rows)
    made.add("search")
    for part in np.array_split(chosen, rounds):
        for number in np.sort(part).tolist():
            made.add("delete", start=number * block, end=(number + 1) * block)
        made.add("search")
    return n_rows, made.steps


def cluster_order(base: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row order grouping the rows by k-means cluster, in a seeded random cluster order;
    the cluster sizes in that order). k-means (faiss, seeded) on a sample of at most 100,000
    rows, every row assigned to its nearest centroid."""
    import faiss

    from annkit.faiss_util import as_float32_rows

    n_rows, dim = int(base.shape[0]), int(base.shape[1])
    if not 2 <= clusters <= n_rows:
        raise InputError(f"--clusters must be in 2..{n_rows:,}, got {clusters}")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n_rows, size=min(n_rows, 100_000), replace=False))
    kmeans = faiss.Kmeans(dim, clusters, niter=20, seed=seed, verbose=False)
    kmeans.train(as_float32_rows(base[sample]))
    assignment = np.empty(n_rows, dtype=np.int64)
    for start in range(0, n_rows, 65_536):
        _, nearest = kmeans.index.search(as_float32_rows(base[start : start + 65_536]), 1)
        assignment[start : start + len(nearest)] = nearest[:, 0]
    arrival = rng.permutation(clusters)  # the order the clusters arrive in
    rank = np.empty(clusters, dtype=np.int64)
    rank[arrival] = np.arange(clusters)
    order = np.lexsort((np.arange(n_rows), rank[assignment]))
    sizes = np.bincount(rank[assignment], minlength=clusters)
    return order, sizes[sizes > 0]


def clustered(sizes: np.ndarray, window: int | None = None) -> tuple[int, list[Step]]:
    """One cluster arrives per step (rows grouped by cluster), then a search; with
    ``window``, the oldest clusters are deleted while more than ``window`` rows are live.
    (max_pts, steps)."""
    made = _Steps()
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    oldest = 0
    live = 0
    most = 0
    for cluster in range(len(sizes)):
        start, end = int(bounds[cluster]), int(bounds[cluster + 1])
        made.add("insert", start=start, end=end)
        live += end - start
        most = max(most, live)  # inserts come before the deletes that make room
        while window is not None and live > window and oldest < cluster:
            first, last = int(bounds[oldest]), int(bounds[oldest + 1])
            made.add("delete", start=first, end=last)
            live -= last - first
            oldest += 1
        made.add("search")
    return most, made.steps


def make_runbook(
    shape: str,
    dataset: Dataset,
    output: str | Path,
    *,
    searches: int = 10,
    seed: int = 0,
    window: int | None = None,
    clusters: int = 10,
    delete_share: float = 0.5,
    block: int | None = None,
    data_output: str | Path | None = None,
    entry: str | None = None,
) -> MadeRunbook:
    """Write a runbook of ``shape`` (:data:`SHAPES`) over ``dataset`` to ``output`` (YAML,
    atomically) under the entry ``entry`` (default: the dataset's name, or for clustered
    arrivals the stem of ``data_output``, the dataset copy whose rows are grouped by cluster,
    which that shape needs and writes)."""
    import yaml

    n_rows = dataset.n_base
    written_data = None
    if shape == "sliding-window":
        max_pts, steps = sliding_window(n_rows, searches, window)
        name = entry or dataset.name
    elif shape == "random-deletes":
        max_pts, steps = random_deletes(n_rows, searches, seed, delete_share, block)
        name = entry or dataset.name
    elif shape == "clustered":
        if data_output is None:
            raise InputError(
                "clustered arrivals need --data-out FILE.hdf5: the dataset with its rows "
                "grouped by cluster (runbook ids are row numbers)"
            )
        order, sizes = cluster_order(dataset.base, clusters, seed)
        max_pts, steps = clustered(sizes, window)
        written_data = str(data_output)
        _write_reordered(dataset, order, Path(data_output))
        name = entry or Path(data_output).stem
    else:
        raise InputError(f"unknown runbook shape {shape!r} (known: {', '.join(SHAPES)})")
    check_steps(steps, max_pts, n_rows, f"{output} [{name}]")  # an invariant, checked anyway
    text = yaml.safe_dump(runbook_document({name: (max_pts, steps)}), sort_keys=False)
    write_text(output, text)
    return MadeRunbook(
        output=str(output),
        entry=name,
        shape=shape,
        steps=len(steps),
        search_steps=sum(1 for step in steps if step.operation == "search"),
        max_pts=max_pts,
        seed=seed,
        data_output=written_data,
    )


def _write_reordered(dataset: Dataset, order: np.ndarray, target: Path) -> None:
    """The dataset with its base rows in ``order`` (queries, weights kept; ground truth is
    left out: a stream computes its own for each step)."""
    from annkit.io import write_dataset_hdf5

    write_dataset_hdf5(
        target,
        base=np.asarray(dataset.base, dtype=np.float32)[order],
        queries=np.asarray(dataset.queries, dtype=np.float32),
        metric=dataset.metric,
        weights=dataset.weights,
    )
