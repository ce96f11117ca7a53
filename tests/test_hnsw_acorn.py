"""The acorn filter strategy: annkit's own filtered traversal of a faiss HNSW graph, checked
against a plain-Python rendering of the same rules (ids and distance counts), against the
exact filtered truth on the bundled labelled words, and refused where it cannot run."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.engines.base import Engine, get_engine
from annkit.errors import InputError
from annkit.filtering import FilteredSearch, Workload, filtered_recall, selectivity_band
from annkit.io import load_dataset
from annkit.metrics import EPSILON, exact_distances
from annkit.types import Dataset

pytest.importorskip("numba")

from annkit.engines.hnsw_acorn import acorn_filter, acorn_search  # noqa: E402
from annkit.engines.hnsw_kernel import kernel_for  # noqa: E402

K = 10


def built(dataset: Dataset, factory: str, query: dict, count: int | None = None) -> Engine:
    base = dataset.base if count is None else dataset.base[:count]
    graph = {"efConstruction": 64} if factory.startswith("HNSW") else {}
    engine = get_engine("faiss")(dataset.metric, dataset.dim, factory=factory, **graph)
    engine.build(base, threads=1)
    engine.count = int(base.shape[0])
    engine.set_query_params(**query)
    return engine


def reference(graph, query: np.ndarray, k: int, ef: int, mask: np.ndarray):
    """The traversal's rules in plain Python (heapq), on float64 distances."""
    vectors = graph.vectors.astype(np.float64)
    q = query.astype(np.float64)

    def dist(node: int) -> float:
        if graph.inner_product:
            return -float(vectors[node] @ q)
        return float(((vectors[node] - q) ** 2).sum())

    def level_list(node: int, level: int) -> list[int]:
        begin = graph.offsets[node] + graph.cum[level]
        found = [
            int(v) for v in graph.neighbors[begin : graph.offsets[node] + graph.cum[level + 1]]
        ]
        return found[: found.index(-1)] if -1 in found else found

    count, nearest = 0, graph.entry_point
    d_nearest = dist(nearest)
    for level in range(graph.max_level, 0, -1):
        while True:
            before = nearest
            for node in level_list(nearest, level):
                count += 1
                d = dist(node)
                if d < d_nearest:
                    nearest, d_nearest = node, d
            if nearest == before:
                break
    degree = int(graph.cum[1])
    seen = {nearest}
    candidates = [(d_nearest, nearest)]
    results = [(-d_nearest, nearest)] if mask[nearest] else []
    while candidates:
        best_d, node0 = candidates[0]
        if len(results) >= ef and best_d > -results[0][0]:
            break
        heapq.heappop(candidates)
        hop: list[int] = []
        for node in level_list(node0, 0):
            if len(hop) >= degree:
                break
            if mask[node]:
                if node not in seen:
                    seen.add(node)
                    hop.append(node)
                continue
            for other in level_list(node, 0):
                if len(hop) >= degree:
                    break
                if mask[other] and other not in seen:
                    seen.add(other)
                    hop.append(other)
        for node in hop:
            count += 1
            d = dist(node)
            if len(results) < ef or d < -results[0][0]:
                heapq.heappush(candidates, (d, node))
                heapq.heappush(results, (-d, node))
                if len(results) > ef:
                    heapq.heappop(results)
    ordered = sorted((-d, node) for d, node in results)[:k]
    return [node for _, node in ordered], count


@pytest.fixture(scope="module")
def labelled() -> Dataset:
    return load_dataset("words-10k-labelled")


@pytest.fixture(scope="module")
def workload(labelled: Dataset) -> Workload:
    assert labelled.base_labels is not None and labelled.query_labels is not None
    return Workload.of(labelled.base_labels, labelled.query_labels)


@pytest.mark.parametrize("share", [0.02, 0.2, 1.0])
def test_the_traversal_follows_its_rules_exactly(words10k, share):
    """Ids (as sets) and the distance count of every query equal the plain-Python
    traversal's, on a graph of 2,000 vectors and a seeded filter of the given share."""
    engine = built(words10k, "HNSW8,Flat", {"efSearch": 32}, count=2000)
    graph = kernel_for(engine).graph
    rng = np.random.default_rng(5)
    allowed = np.sort(rng.choice(2000, size=int(2000 * share), replace=False))
    mask = np.zeros(2000, dtype=bool)
    mask[allowed] = True
    queries = np.ascontiguousarray(words10k.queries[:40])
    found = acorn_search(graph, queries, K, 32, allowed)
    prepared = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    agree = 0
    for row in range(len(queries)):
        ids, count = reference(graph, prepared[row], K, 32, mask)
        kept = [int(i) for i in found.ids[row] if i >= 0]
        agree += int(set(kept) == set(ids) and count == found.distance_computations[row])
    assert agree >= 39  # float32 against float64 sums may flip one near-tie


def test_only_passing_ids_come_back_with_their_exact_distances(labelled, workload):
    engine = built(labelled, "HNSW16,Flat", {"efSearch": 64})
    rows = np.flatnonzero(workload.filtered)
    result = FilteredSearch(
        engine, labelled.base, labelled.queries, "angular", workload, "acorn", K
    ).search(rows)
    assert (workload.passes(rows, result.ids) | (result.ids < 0)).all()
    valid = result.ids >= 0
    exact = exact_distances(labelled.base, labelled.queries[rows], result.ids, "angular")
    np.testing.assert_allclose(result.distances[valid], exact[valid], atol=1e-4)
    assert all(len(set(r[r >= 0].tolist())) == (r >= 0).sum() for r in result.ids)


def test_acorn_finds_the_rare_filters_neighbours(labelled, workload):
    """On the bundled labelled words at efSearch 64, acorn's filtered recall is high in
    every selectivity band, and where under 10% of the base passes it computes fewer
    distances than faiss' own selector does (which evaluates failing nodes too)."""
    engine = built(labelled, "HNSW16,Flat", {"efSearch": 64})
    rows = np.flatnonzero(workload.filtered)
    truth = exact_distances(
        labelled.base, labelled.queries[rows], labelled.neighbors[rows, :K], "angular"
    )
    share = workload.counts[rows] / labelled.n_base
    rare = share < 0.1
    outcome = {}
    for strategy in ("acorn", "native"):
        found = FilteredSearch(
            engine, labelled.base, labelled.queries, "angular", workload, strategy, K
        ).search(rows)
        distances = exact_distances(labelled.base, labelled.queries[rows], found.ids, "angular")
        passes = workload.passes(rows, found.ids)
        recall, _ = filtered_recall(
            truth, found.ids, distances, passes, workload.counts[rows], K, EPSILON
        )
        outcome[strategy] = (recall, found.distance_computations)
    recall, work = outcome["acorn"]
    assert recall.mean() >= 0.98 and recall[rare].mean() >= 0.98
    assert work[rare].mean() < 0.6 * outcome["native"][1][rare].mean()
    assert {selectivity_band(s, True) for s in share} >= {"sel1-10%", "sel>=10%"}


def test_acorn_is_refused_where_the_graph_search_cannot_read_the_index(labelled, workload):
    engine = built(labelled, "IVF16,Flat", {"nprobe": 4})
    assert acorn_filter(engine) is None
    with pytest.raises(InputError) as caught:
        FilteredSearch(engine, labelled.base, labelled.queries, "angular", workload, "acorn", K)
    assert "acorn" in str(caught.value) and "\n" not in str(caught.value)


def test_evaluate_takes_the_acorn_strategy(tmp_path):
    data = "words-10k-labelled"
    for name, factory in (("graph", "HNSW16,Flat"), ("ivf", "IVF16,Flat")):
        made = run_cli(
            "build", data, "-e", "faiss", "-p", f"factory={factory}", "-o", tmp_path / name
        )
        assert made.exit_code == 0, made.output
    ok = run_cli("evaluate", tmp_path / "graph", data, "--filter-strategy", "acorn", "--json")
    assert ok.exit_code == 0, ok.output
    bad = run_cli("evaluate", tmp_path / "ivf", data, "--filter-strategy", "acorn")
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
