"""annkit's own compiled search over a faiss HNSW graph: the same ids and distance
computations as faiss at every efSearch of the default grid, resuming equals a fresh search,
and a damaged graph is refused with one line at load, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from bundles import head_subset, make_index

from annkit.bundle import build_index, fingerprint_vectors, load_bundle, save_bundle
from annkit.engines.faiss_graph import HnswGraph, check_graph, read_hnsw_graph
from annkit.errors import AnnkitError, BundleError
from annkit.types import Dataset

pytest.importorskip("numba")

from annkit.engines.hnsw_kernel import DONE, PATIENT, HnswKernel, kernel_for  # noqa: E402

K = 10


@pytest.fixture(scope="module")
def small(words10k, tmp_path_factory):
    """HNSW16 over 3,000 words-10k vectors (one thread, deterministic), 300 queries."""
    data = head_subset(words10k, 3000, 300)
    folder = tmp_path_factory.mktemp("kernel") / "faiss-hnsw"
    bundle = make_index(folder, data, "faiss", {"factory": "HNSW16,Flat", "efConstruction": 64})
    return bundle, data


def _agreement(engine, kernel, queries, ef):
    engine.set_query_params(efSearch=ef)
    theirs = engine.search(queries, K)
    counts = engine.count_distances(queries, K)
    mine = kernel.search(queries, K, ef)
    same_ids = float((np.sort(theirs.ids, 1) == np.sort(mine.ids, 1)).all(axis=1).mean())
    same_counts = float((counts == mine.distance_computations).mean())
    total = abs(float(mine.distance_computations.sum()) / float(counts.sum()) - 1.0)
    return same_ids, same_counts, total, theirs, mine


def test_kernel_matches_faiss_on_a_small_graph(small):
    bundle, data = small
    kernel = kernel_for(bundle.engine)
    assert kernel is not None
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    for ef in (10, 16, 40, 100):
        same_ids, same_counts, total, theirs, mine = _agreement(bundle.engine, kernel, queries, ef)
        assert same_ids >= 0.999, ef
        assert total <= 0.01, ef
        rows = (theirs.ids == mine.ids).all(axis=1)
        np.testing.assert_allclose(mine.distances[rows], theirs.distances[rows], atol=1e-5)


@pytest.mark.slow
def test_kernel_matches_faiss_at_every_grid_effort(words10k, tmp_path):
    """words-10k, faiss HNSW16 efConstruction 200, one thread: every efSearch of the faiss
    engine's default grid, all 1,000 queries."""
    bundle = make_index(
        tmp_path / "idx", words10k, "faiss", {"factory": "HNSW16,Flat", "efConstruction": 200}
    )
    kernel = kernel_for(bundle.engine)
    queries = np.ascontiguousarray(words10k.queries, dtype=np.float32)
    for ef in bundle.engine.effort_grid(K, words10k.n_base):
        same_ids, same_counts, total, _, _ = _agreement(bundle.engine, kernel, queries, ef)
        assert same_ids >= 0.999, ef
        assert total <= 0.01, ef
        assert same_counts >= 0.99, ef


def test_resumed_search_is_the_fresh_search(small):
    """Paused by the rule of ef a and resumed to b (state capacity b): the same ids and
    distance computations as a fresh search at b, never more work; the pause itself is
    the fresh search at a."""
    bundle, data = small
    kernel = kernel_for(bundle.engine)
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    grid = [10, 20, 40, 80, 160]
    fresh = {ef: kernel.search(queries, K, ef) for ef in grid}
    for low, high in zip(grid, grid[1:], strict=False):
        state = kernel.start(queries, K, high)
        kernel.advance(state, low)
        paused = kernel.result(state)
        assert (paused.ids == fresh[low].ids).all(axis=1).mean() >= 0.99
        kernel.advance(state, high)
        resumed = kernel.result(state)
        np.testing.assert_array_equal(resumed.ids, fresh[high].ids)
        np.testing.assert_array_equal(
            resumed.distance_computations, fresh[high].distance_computations
        )
        assert (state.status == DONE).all()


def test_resuming_only_some_queries_leaves_the_others(small):
    bundle, data = small
    kernel = kernel_for(bundle.engine)
    queries = np.ascontiguousarray(data.queries[:20], dtype=np.float32)
    state = kernel.start(queries, K, 64)
    kernel.advance(state, 16)
    before = kernel.result(state)
    rows = np.arange(0, 20, 2)
    kernel.advance(state, 64, rows=rows)
    after = kernel.result(state)
    fresh = kernel.search(queries, K, 64)
    others = np.arange(1, 20, 2)
    np.testing.assert_array_equal(after.ids[rows], fresh.ids[rows])
    np.testing.assert_array_equal(after.ids[others], before.ids[others])
    np.testing.assert_array_equal(
        after.distance_computations[others], before.distance_computations[others]
    )


def test_patience_stops_earlier_with_less_patience(small):
    bundle, data = small
    kernel = kernel_for(bundle.engine)
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    work = []
    for patience in (2, 8, 32):
        state = kernel.start(queries, K, 128)
        kernel.advance(state, 128, patience=patience)
        assert set(np.unique(state.status)) <= {DONE, PATIENT}
        work.append(float(kernel.result(state).distance_computations.mean()))
    full = float(kernel.search(queries, K, 128).distance_computations.mean())
    assert work[0] < work[1] < work[2] <= full


# ------------------------------------------------------------------ damaged graphs


def _graph_arrays(graph: HnswGraph) -> dict[str, np.ndarray]:
    return {
        "vectors": graph.vectors.copy(),
        "neighbors": graph.neighbors.copy(),
        "offsets": graph.offsets.copy(),
        "levels": graph.levels.copy(),
        "cum": graph.cum.copy(),
    }


def _damaged_bundle(tmp_path, data, damage):
    built, seconds = build_index(
        "faiss", data.base, data.metric, {"factory": "HNSW8,Flat", "efConstruction": 32}, 1
    )
    damage(built._index.hnsw)
    folder = tmp_path / "damaged"
    save_bundle(
        built, folder, build_seconds=seconds, dataset_fingerprint=fingerprint_vectors(data.base)
    )
    return load_bundle(folder)


def _extra_node(hnsw):
    """A graph node more than the stored vectors (levels, offsets and slots consistent, so
    faiss' own reader lets it through)."""
    faiss = pytest.importorskip("faiss")
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level)
    offsets = faiss.vector_to_array(hnsw.offsets)
    hnsw.levels.push_back(1)
    hnsw.offsets.push_back(int(offsets[-1]) + int(cum[1]))
    hnsw.neighbors.resize(hnsw.neighbors.size() + int(cum[1]))


def _low_entry_point(hnsw):
    faiss = pytest.importorskip("faiss")
    levels = faiss.vector_to_array(hnsw.levels)
    hnsw.entry_point = int(np.flatnonzero(levels == 1)[0])


def _link_to_a_lower_node(hnsw):
    """Node on level 1 whose first level-1 neighbour is a node of the base level only."""
    faiss = pytest.importorskip("faiss")
    levels = faiss.vector_to_array(hnsw.levels)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level)
    offsets = faiss.vector_to_array(hnsw.offsets)
    node = int(np.flatnonzero(levels >= 2)[0])
    slots = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
    slots[int(offsets[node]) + int(cum[1])] = int(np.flatnonzero(levels == 1)[0])


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_extra_node, "levels size 501 != index ntotal 500"),  # faiss' reader says it
        (lambda hnsw: setattr(hnsw, "max_level", hnsw.max_level + 1), "max_level"),
        (_low_entry_point, "entry point"),
        (_link_to_a_lower_node, "a neighbour on a level its node is not on"),
    ],
)
def test_a_bundle_whose_graph_does_not_match_its_vectors_is_refused(
    words10k, tmp_path, damage, words
):
    """A graph that does not fit its vectors is refused at load, before any search: by
    faiss' own reader where it checks, else when annkit reads the graph. One line, exit
    code 2."""
    data = head_subset(words10k, 500, 5)
    with pytest.raises(AnnkitError) as caught:
        kernel_for(_damaged_bundle(tmp_path, data, damage).engine)
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert caught.value.exit_code == 2
    if isinstance(caught.value, BundleError):
        assert "rebuild the index" in message


def test_random_byte_flips_are_refused_or_searched_safely(small):
    """Fuzz: one to four random byte flips in one of the graph's arrays give the one-line
    refusal, or a graph that is still searched without a crash (ids in range)."""
    bundle, data = small
    graph = read_hnsw_graph(bundle.engine._index, data.metric)
    queries = np.ascontiguousarray(data.queries[:8], dtype=np.float32)
    rng = np.random.default_rng(23)
    refused = searched = 0
    names = ["neighbors", "offsets", "levels", "cum", "vectors"]
    for trial in range(150):
        arrays = _graph_arrays(graph)
        name = names[trial % len(names)]
        raw = arrays[name].view(np.uint8).reshape(-1)
        for _ in range(int(rng.integers(1, 5))):
            raw[int(rng.integers(raw.size))] ^= np.uint8(rng.integers(1, 256))
        entry, top = graph.entry_point, graph.max_level
        if trial % 7 == 0:
            entry = int(rng.integers(-5, graph.count + 5))
        try:
            check_graph(
                arrays["vectors"],
                arrays["neighbors"],
                arrays["offsets"],
                arrays["levels"],
                arrays["cum"],
                entry,
                top,
                "fuzzed",
            )
        except BundleError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("fuzzed: damaged HNSW graph")
            refused += 1
            continue
        damaged = HnswGraph(
            vectors=arrays["vectors"],
            neighbors=arrays["neighbors"],
            offsets=arrays["offsets"],
            levels=arrays["levels"],
            cum=arrays["cum"],
            entry_point=entry,
            max_level=top,
            inner_product=graph.inner_product,
            metric=graph.metric,
        )
        result = HnswKernel(damaged).search(queries, K, 32)
        assert ((result.ids >= -1) & (result.ids < graph.count)).all()
        searched += 1
    assert refused > 20 and searched > 0


def test_an_engine_without_a_readable_graph_has_no_kernel(words10k):
    data = head_subset(words10k, 500, 5)
    built, _ = build_index("faiss", data.base, data.metric, {"factory": "IVF4,Flat"}, 1)
    assert kernel_for(built) is None


@pytest.mark.parametrize("metric", ["euclidean", "ip", "angular"])
def test_every_metric_matches_faiss(metric, tmp_path):
    """Seeded random data (2,000 x 24, some rows duplicated: exact ties) in each metric."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((2000, 24)).astype(np.float32)
    base[1000:1040] = base[:40]  # duplicates tie exactly
    queries = rng.standard_normal((200, 24)).astype(np.float32)
    data = Dataset(name="random", metric=metric, base=base, queries=queries)
    bundle = make_index(tmp_path / metric, data, "faiss", {"factory": "HNSW8,Flat"})
    kernel = kernel_for(bundle.engine)
    for ef in (10, 32, 100):
        same_ids, same_counts, total, _, _ = _agreement(bundle.engine, kernel, queries, ef)
        assert same_ids >= 0.99, (metric, ef)
        assert same_counts >= 0.99 and total <= 0.01, (metric, ef)
