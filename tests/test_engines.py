"""The shared engine contract, run over every registered engine (its engine list and
settings come from the registry: an engine added as one file is tested with no edit here),
plus the built-in engines' own parameters, grids and checks.

Each engine is tested at two sizes: ``small`` (2,000 vectors of words-10k at the engine's
``small_contract_settings``, in the quick loop) and ``words10k`` (all of it at its
``contract_settings``, marked slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from annkit.bundle import MANIFEST, build_index, load_bundle, save_bundle
from annkit.engines import engine_names, get_engine
from annkit.engines.base import Engine, ParamSpec, register, unregister
from annkit.errors import BundleError, ParamError
from annkit.evaluate import evaluate, true_neighbor_distances
from annkit.metrics import exact_distances
from annkit.types import Dataset, SearchResult

K = 10
ENGINES = engine_names()
SMALL_BASE = 2000
SMALL_QUERIES = 200
SIZES = ("small", "words10k")


def contract_settings(engine_class: type[Engine], size: str) -> tuple[dict, dict]:
    """(build params, query params) the engine declares for the contract at ``size``."""
    if size == "small" and engine_class.small_contract_settings is not None:
        return engine_class.small_contract_settings
    return engine_class.contract_settings


def contract_params() -> list:
    """One (engine, size) per registered engine and size; the words-10k size is slow."""
    return [
        pytest.param(
            (name, size),
            id=f"{name}-{size}",
            marks=pytest.mark.slow if size == "words10k" else (),
        )
        for name in engine_names()
        for size in SIZES
    ]


@dataclass
class Built:
    """One engine built at its contract settings and saved as a bundle."""

    name: str
    engine: Engine
    path: Path
    query_params: dict
    dataset: Dataset
    size: str


@pytest.fixture(scope="module")
def contract_datasets(words10k) -> dict[str, Dataset]:
    small = Dataset(
        name="words-10k-small",
        metric=words10k.metric,
        base=words10k.base[:SMALL_BASE],
        queries=words10k.queries[:SMALL_QUERIES],
    )
    return {"small": small, "words10k": words10k}


@pytest.fixture(scope="module")
def truths(contract_datasets) -> dict[str, np.ndarray]:
    """Exact top-K distances per size, computed when first asked for."""

    class Lazy(dict):
        def __missing__(self, size: str) -> np.ndarray:
            self[size] = true_neighbor_distances(contract_datasets[size], K)
            return self[size]

    return Lazy()


@pytest.fixture(scope="module", params=contract_params())
def built(request, contract_datasets, tmp_path_factory) -> Built:
    """One engine built at its contract settings for one size and saved as a bundle."""
    name, size = request.param
    dataset = contract_datasets[size]
    build_params, query_params = contract_settings(get_engine(name), size)
    engine, seconds = build_index(name, dataset.base, "angular", build_params, threads=2)
    path = tmp_path_factory.mktemp(f"{name}-{size}") / "index"
    save_bundle(engine, path, build_seconds=seconds)
    engine.set_query_params(**query_params)
    return Built(name, engine, path, query_params, dataset, size)


def test_contract_search(built):
    name, engine, dataset = built.name, built.engine, built.dataset
    result = engine.search(dataset.queries, K)
    assert result.ids.shape == (dataset.n_queries, K) and result.ids.dtype == np.int64
    assert result.distances.shape == (dataset.n_queries, K)
    assert np.all((result.ids >= 0) & (result.ids < dataset.n_base))
    assert all(len(set(row)) == K for row in result.ids.tolist()), "duplicate ids"
    assert np.all(np.diff(result.distances, axis=1) >= -1e-5), "not best first"
    # distances are in the metric's convention: they match the exact ones
    exact = exact_distances(dataset.base, dataset.queries, result.ids, "angular")
    np.testing.assert_allclose(result.distances, exact, atol=1e-3)
    counts = result.distance_computations
    if type(engine).counts_distances:
        assert isinstance(counts, np.ndarray) and counts.dtype == np.int64
        assert counts.shape == (dataset.n_queries,) and np.all(counts > 0)
    else:
        assert counts is None, f"{name} does not count distances, so it must report None"


def _returned_ids(answer) -> list[int]:
    """The ids one call of an engine's per-query path returned, in the library's own form:
    a SearchResult, a list of ids, a matches object with ``keys``, or a tuple of arrays
    (the integer one holds the ids)."""
    if isinstance(answer, SearchResult):
        return answer.ids[0].tolist()
    if isinstance(answer, list):
        return [int(value) for value in answer]
    if hasattr(answer, "keys"):  # a matches object: its keys are the ids
        return np.asarray(answer.keys).reshape(-1).tolist()
    ids = next(part for part in answer if np.issubdtype(np.asarray(part).dtype, np.integer))
    return np.asarray(ids).reshape(-1).tolist()


def test_contract_single_queries_path(built):
    """The per-query path single-mode timing calls (Engine.single_queries) searches each
    query once for the same neighbours as the batch search (as sets: ties may order
    differently)."""
    engine, dataset = built.engine, built.dataset
    queries = np.asarray(dataset.queries[:20])
    expected = engine.search(queries, K).ids
    with engine.single_queries(queries, K) as (items, search_one):
        assert len(items) == len(queries)
        answers = [_returned_ids(search_one(item)) for item in items]
    agree = [set(found) == set(row.tolist()) for found, row in zip(answers, expected, strict=True)]
    assert sum(agree) >= 18, f"{built.name}: the per-query path found other neighbours"


def tie_ordered(result) -> np.ndarray:
    """Each row's ids ordered by (distance, id): equal-distance neighbours in a fixed order."""
    order = np.lexsort((result.ids, result.distances), axis=1)
    return np.take_along_axis(result.ids, order, axis=1)


def test_contract_recall_and_save_load(built, truths):
    name, engine, path, query_params = built.name, built.engine, built.path, built.query_params
    dataset, truth = built.dataset, truths[built.size]
    result = engine.search(dataset.queries, K)
    bundle = load_bundle(path)
    evaluation = evaluate(bundle, dataset, K, query_params, true_distances=truth)
    assert evaluation.recall >= 0.9, (name, evaluation.recall)
    again = bundle.engine.search(dataset.queries, K)
    # save/load gives identical results; the order among exact ties (duplicate vectors in the
    # corpus) is the library's choice, so rows are compared ordered by (distance, id)
    np.testing.assert_allclose(again.distances, result.distances)
    np.testing.assert_array_equal(tie_ordered(again), tie_ordered(result))
    if result.distance_computations is not None:
        np.testing.assert_array_equal(again.distance_computations, result.distance_computations)


def test_contract_damaged_payload_refused(built, tmp_path):
    path = built.path
    manifest = json.loads((path / MANIFEST).read_text())
    copy = tmp_path / "damaged"
    copy.mkdir()
    for name in [MANIFEST, *manifest["files"]]:
        (copy / name).write_bytes((path / name).read_bytes())
    payload = copy / sorted(manifest["files"])[0]
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="fails its sha256 check"):
        load_bundle(copy)


def test_contract_payload_not_fitting_its_manifest_refused(built, tmp_path):
    """A payload whose vector count differs from the manifest's (a hand-edited or foreign
    bundle) is refused with an AnnkitError, not loaded and not a crash (run in a child process
    so a native crash fails this test only)."""
    path = built.path
    manifest = json.loads((path / MANIFEST).read_text())
    copy = tmp_path / "edited"
    copy.mkdir()
    for name in manifest["files"]:
        (copy / name).write_bytes((path / name).read_bytes())
    manifest["count"] += 1
    (copy / MANIFEST).write_text(json.dumps(manifest))
    script = (
        "import sys\nfrom annkit.bundle import load_bundle\nfrom annkit.errors import "
        "AnnkitError\ntry:\n    load_bundle(sys.argv[1])\nexcept AnnkitError as exc:\n"
        "    print(exc)\n    sys.exit(3)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(copy)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 3, (child.returncode, child.stdout, child.stderr[-2000:])
    assert str(copy) in child.stdout


def test_contract_interface(built):
    """What effort, tune and the listing ask of every engine."""
    engine, query_params, dataset = built.engine, built.query_params, built.dataset
    engine_class = type(engine)
    assert set(query_params) <= set(engine.index_query_specs())
    param = engine.effort_param
    assert param == engine_class.effort_param_for(engine.params)
    if param is not None:
        assert engine.index_query_specs()[param].effort
        grid = engine.effort_grid(K, dataset.n_base)
        assert grid == sorted(set(grid)) and len(grid) >= 2 and grid[0] >= 1
    build_grid = engine_class.tune_build_grid(dataset.n_base)
    assert set(build_grid) <= set(engine_class.build_specs)
    assert all(isinstance(value, str) for value in engine_class.library_versions().values())


# ------------------------------------------------------------------- the built-in engines


def test_builtin_engines_are_registered():
    assert {"annoy", "flat", "hnsw", "ivfpq"} <= set(ENGINES)


def test_builtin_effort_grids():
    hnsw = get_engine("hnsw")("angular", 8)
    assert hnsw.effort_grid(10, 10_000) == [10, 20, 40, 80, 160, 320, 640, 1280, 2560]
    annoy = get_engine("annoy")("angular", 8, n_trees=50).effort_grid(10, 10_000)
    assert annoy[0] == 500 and annoy[-1] == 500 * 2**10 and len(annoy) == 11
    assert get_engine("annoy")("angular", 8, n_trees=10).effort_grid(10, 20) == [100, 200]
    ivfpq = get_engine("ivfpq")
    assert ivfpq("angular", 8, nlist=256).effort_grid(10, 10_000) == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
    ]
    assert ivfpq("angular", 8, nlist=100).effort_grid(10, 10_000)[-2:] == [64, 100]
    assert ivfpq("angular", 8, nlist=1).effort_grid(10, 10_000) == [1]
    assert get_engine("flat").effort_param_for({}) is None
    with pytest.raises(ParamError, match="engine flat has no effort parameter"):
        get_engine("flat")("angular", 8).effort_grid(10, 100)


def test_builtin_tune_build_grids_and_versions():
    assert get_engine("hnsw").tune_build_grid(10_000) == {"M": [8, 16, 32]}
    assert get_engine("annoy").tune_build_grid(10_000) == {"n_trees": [10, 50, 100]}
    assert get_engine("ivfpq").tune_build_grid(10_000) == {"nlist": [64, 128, 256]}
    assert get_engine("flat").tune_build_grid(10_000) == {}
    assert set(get_engine("hnsw").library_versions()) == {"hnswlib"}
    assert set(get_engine("annoy").library_versions()) == {"annoy"}
    assert set(get_engine("flat").library_versions()) == {"faiss"}


def test_flat_counts_every_base_vector():
    base = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    engine, _ = build_index("flat", base, "euclidean", {})
    result = engine.search(base[:7], 5)
    np.testing.assert_array_equal(result.distance_computations, np.full(7, 300))


@pytest.mark.parametrize("metric", ["euclidean", "ip"])
@pytest.mark.parametrize("name", ["annoy", "flat", "hnsw", "ivfpq"])
def test_other_metrics_return_metric_distances(name, metric):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    contract_build, contract_query = get_engine(name).contract_settings
    build_params = {"nlist": 16, "m": 4} if name == "ivfpq" else contract_build
    engine, _ = build_index(name, base, metric, build_params)
    query_params = {"nprobe": 16, "rerank": 20} if name == "ivfpq" else contract_query
    engine.set_query_params(**query_params)
    result = engine.search(queries, 5)
    exact = exact_distances(base, queries, result.ids, metric)
    np.testing.assert_allclose(result.distances, exact, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_top1_distance_agrees_with_flat(words10k):
    base = words10k.base[:3000]
    flat, _ = build_index("flat", base, "angular", {})
    expected = flat.search(words10k.queries[:200], 1)
    for name in ("hnsw", "annoy", "ivfpq"):
        build_params, query_params = get_engine(name).contract_settings
        engine, _ = build_index(
            name,
            base,
            "angular",
            {**build_params, "nlist": 32} if name == "ivfpq" else build_params,
        )
        engine.set_query_params(
            **({**query_params, "nprobe": 32} if name == "ivfpq" else query_params)
        )
        result = engine.search(words10k.queries[:200], 1)
        same = result.ids[:, 0] == expected.ids[:, 0]
        assert same.mean() > 0.95, name
        np.testing.assert_allclose(
            result.distances[same, 0], expected.distances[same, 0], atol=1e-4
        )


def test_k_larger_than_count_is_padded():
    base = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    for name in ("hnsw", "annoy", "flat"):
        engine, _ = build_index(name, base, "euclidean", {})
        result = engine.search(base[:3], 40)
        assert result.ids.shape == (3, 40)
        assert np.all(result.ids[:, 30:] == -1) and np.all(np.isinf(result.distances[:, 30:]))


def test_hnsw_single_thread_build_is_deterministic(words10k):
    base = words10k.base[:2000]
    first, _ = build_index("hnsw", base, "angular", {"M": 8}, threads=1)
    second, _ = build_index("hnsw", base, "angular", {"M": 8}, threads=1)
    first.set_query_params(ef=20)
    second.set_query_params(ef=20)
    np.testing.assert_array_equal(
        first.search(words10k.queries, 10).ids, second.search(words10k.queries, 10).ids
    )


@pytest.mark.parametrize(
    "name, params, message",
    [
        (
            "hnsw",
            {"MM": 3},
            "engine hnsw has no build parameter 'MM' (known: M, ef_construction, seed)",
        ),
        ("hnsw", {"M": "x"}, "parameter M: expected int, got 'x'"),
        ("hnsw", {"M": 1}, "parameter M: must be >= 2, got 1"),
        ("annoy", {"n_trees": 2.5}, "parameter n_trees: expected int, got 2.5"),
    ],
)
def test_bad_build_params(name, params, message):
    with pytest.raises(ParamError) as info:
        get_engine(name)("euclidean", 8, **params)
    assert str(info.value) == message


def test_ivfpq_param_validation():
    base = np.random.default_rng(0).standard_normal((500, 12)).astype(np.float32)
    with pytest.raises(ParamError, match="m=5 must divide the dimension 12"):
        build_index("ivfpq", base, "euclidean", {"m": 5})
    with pytest.raises(ParamError, match="nlist=900 exceeds the 500 base vectors"):
        build_index("ivfpq", base, "euclidean", {"nlist": 900})
    engine, _ = build_index(
        "ivfpq", base, "euclidean", {"refine": False, "nlist": 4, "m": 4, "nbits": 4}
    )
    engine.set_query_params(rerank=4)
    with pytest.raises(ParamError, match="rerank needs an index built with refine=1"):
        engine.search(base[:2], 3)


# --------------------------------------------------------------------------- the registry


def test_unknown_engine():
    message = f"unknown engine 'nope' (known: {', '.join(engine_names())})"
    with pytest.raises(ParamError) as info:
        get_engine("nope")
    assert str(info.value) == message


class _KnobEngine(Engine):
    """Query knobs that depend on the build: ``mode=a`` searches with ``alpha``, else ``beta``."""

    name = "knob-test"
    description = "test double"
    build_specs = {"mode": ParamSpec(str, "a", "a or b", choices=("a", "b"))}

    @classmethod
    def query_specs(cls, build_params):  # type: ignore[no-untyped-def]
        knob = "alpha" if build_params.get("mode", "a") == "a" else "beta"
        return {knob: ParamSpec(int, 4, "effort", minimum=1, effort=True)}

    def build(self, base, threads=1):  # type: ignore[no-untyped-def]
        self.count = len(base)

    def search(self, queries, k):  # type: ignore[no-untyped-def]
        ids = np.zeros((len(queries), k), dtype=np.int64)
        return SearchResult(ids=ids, distances=np.zeros(ids.shape, dtype=np.float32))

    def save(self, directory):  # type: ignore[no-untyped-def]
        return []

    @classmethod
    def load(cls, directory, metric, dim, count, params):  # type: ignore[no-untyped-def]
        return cls(metric, dim, **params)


def test_register_unregister_and_build_dependent_knobs():
    assert "knob-test" not in engine_names()
    register(_KnobEngine)
    try:
        assert get_engine("knob-test") is _KnobEngine
        a = _KnobEngine("euclidean", 4)
        b = _KnobEngine("euclidean", 4, mode="b")
        assert (a.effort_param, b.effort_param) == ("alpha", "beta")
        assert b.query == {"beta": 4}
        b.set_query_params(beta=8)
        assert b.query == {"beta": 8}
        with pytest.raises(ParamError, match="engine knob-test has no query parameter 'alpha'"):
            b.set_query_params(alpha=8)
        assert a.effort_grid(10, 100) == [1, 2, 4, 8, 16, 32]  # the default: 4/8 .. 4*8
    finally:
        assert unregister("knob-test") is _KnobEngine
    assert "knob-test" not in engine_names()
    assert unregister("knob-test") is None
    with pytest.raises(TypeError):
        register(object)  # type: ignore[arg-type]


def test_old_interface_engines_still_work():
    """A dict ``query_params`` class attribute (the pre-issue-9 interface) is accepted."""

    class Old(_KnobEngine):
        name = "old-test"
        query_params = {"ef": ParamSpec(int, 3, "effort", minimum=1, effort=True)}  # type: ignore[assignment]
        effort_param = "ef"  # type: ignore[assignment]

        @classmethod
        def query_specs(cls, build_params):  # type: ignore[no-untyped-def]
            return dict(cls.default_query_params)

    engine = Old("euclidean", 4)
    assert engine.index_query_specs() == {"ef": ParamSpec(int, 3, "effort", minimum=1, effort=True)}
    assert engine.effort_param == "ef" and engine.query == {"ef": 3}


def test_sweep_query_params_are_checked_against_each_build():
    """A sweep's query grid is validated per build setting: the knob of mode=b is beta."""
    from annkit.bench.spec import SweepError, parse_sweep

    sweep = (
        '[bench]\ndataset = "words-10k"\n\n[[engine]]\nname = "knob-test"\n'
        'build = {{ mode = "{mode}" }}\nquery = {{ {knob} = [1, 2] }}\n'
    )
    register(_KnobEngine)
    try:
        spec = parse_sweep(sweep.format(mode="b", knob="beta"))
        (build,) = spec.builds
        assert [query.params for query in build.queries] == [{"beta": 1}, {"beta": 2}]
        with pytest.raises(SweepError, match="engine 'knob-test' has no query parameter 'beta'"):
            parse_sweep(sweep.format(mode="a", knob="beta"))
    finally:
        unregister("knob-test")
