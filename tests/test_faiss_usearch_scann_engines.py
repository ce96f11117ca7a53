"""The engines people deploy: faiss index_factory strings, USearch and ScaNN.

Recall sanity on a words-10k subset, query knobs per factory string, one-line errors for bad
strings and knobs, distance computations checked against the libraries' own counters and an
independent count, and damaged payloads refused without a native crash."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bundle import MANIFEST, build_index, load_bundle, save_bundle, sha256_file
from annkit.engines import get_engine
from annkit.engines.scann import AVAILABLE as SCANN_AVAILABLE
from annkit.errors import EngineError, ParamError
from annkit.faiss_util import normalized_rows

K = 10
N_BASE = 3000
N_QUERIES = 100


@pytest.fixture(scope="module")
def subset(words10k):
    """(base, queries, exact top-10 ids) of a words-10k subset."""
    base = words10k.base[:N_BASE]
    queries = words10k.queries[:N_QUERIES]
    flat, _ = build_index("flat", base, "angular")
    return base, queries, flat.search(queries, K).ids


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


# ------------------------------------------------------------------------------ faiss


@pytest.mark.parametrize(
    "factory, query_params, least_recall",
    [
        ("IVF32,Flat", {"nprobe": 8}, 0.8),
        pytest.param(
            "IVF32,PQ48x4fs,RFlat", {"nprobe": 16, "k_factor": 10}, 0.85, marks=pytest.mark.slow
        ),  # PQ training: about 10 s
        ("HNSW16,Flat", {"efSearch": 64}, 0.95),
        ("IVF32,SQ8", {"nprobe": 32}, 0.85),
        ("Flat", {}, 1.0),
    ],
)
def test_faiss_factory_strings_build_and_recall(subset, factory, query_params, least_recall):
    base, queries, truth = subset
    engine, _ = build_index("faiss", base, "angular", {"factory": factory}, threads=2)
    engine.set_query_params(**query_params)
    result = engine.search(queries, K)
    assert recall(result.ids, truth) >= least_recall, factory
    assert result.distance_computations is not None
    assert result.distance_computations.shape == (N_QUERIES,)


@pytest.mark.slow
def test_faiss_opq_ivf_pq_counts_every_list_when_all_are_probed():
    base = np.random.default_rng(3).standard_normal((1000, 32)).astype(np.float32)
    engine, _ = build_index("faiss", base, "euclidean", {"factory": "OPQ8_16,IVF8,PQ8x4"})
    engine.set_query_params(nprobe=8)
    result = engine.search(base[:20], K)
    np.testing.assert_array_equal(result.distance_computations, np.full(20, 1000 + 8))
    assert recall(result.ids, np.arange(20)[:, None].repeat(K, axis=1)) > 0  # finds itself


@pytest.mark.parametrize(
    "factory, knobs, effort",
    [
        ("IVF1024,PQ192x4fs,RFlat", {"nprobe", "k_factor"}, "nprobe"),
        ("HNSW32,Flat", {"efSearch"}, "efSearch"),
        ("HNSW32_SQ8", {"efSearch"}, "efSearch"),
        ("OPQ48_192,IVF4096,PQ48", {"nprobe"}, "nprobe"),
        ("IVF1024,SQ8", {"nprobe"}, "nprobe"),
        ("IVF4096_HNSW32,Flat", {"nprobe", "quantizer_efSearch"}, "nprobe"),
        ("PCA64,HNSW16,Flat,Refine(SQfp16)", {"efSearch", "k_factor"}, "efSearch"),
        ("Flat", set(), None),
        ("SQ8,RFlat", {"k_factor"}, None),
    ],
)
def test_faiss_query_specs_follow_the_factory_string(factory, knobs, effort):
    engine_class = get_engine("faiss")
    assert set(engine_class.query_specs({"factory": factory})) == knobs
    assert engine_class.effort_param_for({"factory": factory}) == effort


@pytest.mark.parametrize(
    "factory, message",
    [
        (
            "IVF,PQ",
            "faiss rejects index_factory string 'IVF,PQ': could not parse index string IVF,PQ",
        ),
        ("HNSWx", "faiss rejects index_factory string 'HNSWx': could not parse index string HNSWx"),
        ("HNSW0,Flat", "faiss: HNSW0 in 'HNSW0,Flat': the graph degree must be between 2 and 2048"),
        ("IVF16,PQ16x0", "faiss: PQ16x0 in 'IVF16,PQ16x0': sizes must be at least 1"),
        ("RR0,Flat", "faiss: RR0 in 'RR0,Flat': sizes must be at least 1"),
        (
            "OPQ16_64,IVF16,PQ7",
            "faiss: PQ7 in 'OPQ16_64,IVF16,PQ7': 7 sub-quantizers must divide the dimension 64",
        ),
        ("IVF16,,Flat", "faiss: index_factory string 'IVF16,,Flat' has an empty component"),
    ],
)
def test_faiss_bad_factory_string_is_one_line_param_error(factory, message):
    """Refused when the engine is made, whatever the dimension (no data needed)."""
    for dim in (1, 384):
        with pytest.raises(ParamError) as info:
            get_engine("faiss")("angular", dim, factory=factory)
        assert str(info.value) == message


@pytest.mark.parametrize(
    "factory, message",
    [
        ("PQ7", "faiss: PQ7 in 'PQ7': 7 sub-quantizers must divide the dimension 384"),
        (
            "PCA500,Flat",
            "faiss: PCA500 in 'PCA500,Flat': PCA cannot output 500 dimensions from 384",
        ),
    ],
)
def test_faiss_factory_string_wrong_for_the_dimension(subset, factory, message):
    """Refused at build time, before faiss trains or adds anything."""
    get_engine("faiss")("angular", 1, factory=factory)  # a placeholder dimension passes
    with pytest.raises(ParamError) as info:
        build_index("faiss", subset[0][:300], "angular", {"factory": factory})
    assert str(info.value) == message


def _cli_build(tmp_path, base, factory):
    data = tmp_path / "base.npy"
    np.save(data, base)
    return run_cli(
        "build",
        str(data),
        "-e",
        "faiss",
        "-p",
        f"factory={factory}",
        "--metric",
        "angular",
        "-o",
        str(tmp_path / "index"),
    )


@pytest.mark.parametrize(
    "factory, message",
    [
        (
            "IVF,PQ",
            "Error: faiss rejects index_factory string 'IVF,PQ': could not parse index "
            "string IVF,PQ\n",
        ),
        ("PQ7", "Error: faiss: PQ7 in 'PQ7': 7 sub-quantizers must divide the dimension 384\n"),
    ],
)
def test_faiss_bad_factory_string_cli_exit_2(tmp_path, words10k, factory, message):
    outcome = _cli_build(tmp_path, words10k.base[:200], factory)
    assert outcome.exit_code == 2, outcome.output
    assert outcome.stderr == message


def test_faiss_cli_build_with_a_pq_factory(tmp_path, words10k):
    outcome = _cli_build(tmp_path, words10k.base[:300], "IVF4,PQ48x4fs,RFlat")
    assert outcome.exit_code == 0, outcome.output
    bundle = load_bundle(tmp_path / "index")
    assert bundle.manifest["build_params"]["factory"] == "IVF4,PQ48x4fs,RFlat"
    assert set(bundle.engine.index_query_specs()) == {"nprobe", "k_factor"}


def test_faiss_too_few_training_vectors(subset):
    base = subset[0][:500]
    with pytest.raises(ParamError) as info:
        build_index("faiss", base, "angular", {"factory": "IVF1000,Flat"})
    assert str(info.value) == (
        "faiss: IVF1000 needs at least 1000 training vectors, have 500 (of 500 base vectors)"
    )


def test_faiss_unknown_query_param_for_the_index_kind():
    engine = get_engine("faiss")("angular", 16, factory="IVF16,Flat")
    with pytest.raises(ParamError) as info:
        engine.set_query_params(efSearch=64)
    assert str(info.value) == "engine faiss has no query parameter 'efSearch' (known: nprobe)"
    hnsw = get_engine("faiss")("angular", 16, factory="HNSW8,Flat")
    with pytest.raises(ParamError, match="has no query parameter 'nprobe'"):
        hnsw.set_query_params(nprobe=4)
    with pytest.raises(ParamError, match="efConstruction applies to HNSW graphs only"):
        get_engine("faiss")("angular", 16, factory="IVF16,Flat", efConstruction=80)


def test_faiss_query_settings_do_not_leak(subset):
    """Searches pass faiss SearchParameters per call: a setting never sticks to the index."""
    base, queries, _ = subset
    engine, _ = build_index("faiss", base, "angular", {"factory": "IVF32,Flat"})
    engine.set_query_params(nprobe=1)
    narrow = engine.search(queries, K)
    engine.set_query_params(nprobe=32)
    wide = engine.search(queries, K)
    engine.set_query_params(nprobe=1)
    np.testing.assert_array_equal(engine.search(queries, K).ids, narrow.ids)
    assert wide.distance_computations.sum() > narrow.distance_computations.sum()


def _faiss_counters_per_query(index, queries, params) -> np.ndarray:
    """faiss' own counters, one query per call, read here independently of the engine."""
    import faiss

    counts = []
    faiss.omp_set_num_threads(1)
    for row in range(len(queries)):
        faiss.cvar.indexIVF_stats.reset()
        faiss.cvar.hnsw_stats.reset()
        index.search(queries[row : row + 1], K, params=params)
        counts.append(faiss.cvar.indexIVF_stats.ndis + faiss.cvar.hnsw_stats.ndis)
    return np.array(counts)


def test_faiss_hnsw_counts_equal_faiss_counters(subset):
    import faiss

    base, queries, _ = subset
    engine, _ = build_index("faiss", base, "angular", {"factory": "HNSW16,Flat"})
    engine.set_query_params(efSearch=40)
    batch = engine.search(queries, K).distance_computations
    single = [
        engine.search(queries[row : row + 1], K).distance_computations[0]
        for row in range(N_QUERIES)
    ]
    expected = _faiss_counters_per_query(
        engine._index, normalized_rows(queries), faiss.SearchParametersHNSW(efSearch=40)
    )
    np.testing.assert_array_equal(batch, expected)
    np.testing.assert_array_equal(single, expected)
    assert expected.min() > 0
    # a timed (uncounted) batch does no counting pass; count_distances counts on its own
    with engine.uncounted():
        timed = engine.search(queries, K)
    assert timed.distance_computations is None
    np.testing.assert_array_equal(timed.ids, engine.search(queries, K).ids)
    np.testing.assert_array_equal(engine.count_distances(queries, K), expected)
    engine.set_query_params(efSearch=16)
    narrow = engine.count_distances(queries, K)
    assert narrow.sum() < batch.sum()
    np.testing.assert_array_equal(engine.search(queries, K).distance_computations, narrow)


def test_faiss_ivf_flat_counts_equal_probed_list_sizes(subset):
    """IVF-Flat: nlist (the flat quantizer) + the sizes of the probed lists, computed here
    with numpy from the centroids, and faiss' own IVF counter agrees."""
    import faiss

    base, queries, _ = subset
    nlist, nprobe = 32, 5
    engine, _ = build_index("faiss", base, "angular", {"factory": f"IVF{nlist},Flat"})
    engine.set_query_params(nprobe=nprobe)
    counts = engine.search(queries, K).distance_computations
    centroids = faiss.extract_index_ivf(engine._index).quantizer.reconstruct_n(0, nlist)
    centroids = centroids.astype(np.float64)

    def nearest(vectors: np.ndarray, how_many: int) -> np.ndarray:
        vectors = normalized_rows(vectors).astype(np.float64)
        squared = ((vectors[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        return np.argsort(squared, axis=1, kind="stable")[:, :how_many]

    sizes = np.bincount(nearest(base, 1)[:, 0], minlength=nlist)
    expected = sizes[nearest(queries, nprobe)].sum(axis=1) + nlist
    np.testing.assert_array_equal(counts, expected)
    counters = _faiss_counters_per_query(
        engine._index, normalized_rows(queries), faiss.SearchParametersIVF(nprobe=nprobe)
    )
    np.testing.assert_array_equal(counts, counters + nlist)


def test_faiss_refine_adds_its_reranks_and_flat_counts_n(subset):
    base, queries, _ = subset
    ivf, _ = build_index("faiss", base, "angular", {"factory": "IVF32,Flat"})
    refined, _ = build_index("faiss", base, "angular", {"factory": "IVF32,Flat,RFlat"})
    ivf.set_query_params(nprobe=4)
    refined.set_query_params(nprobe=4, k_factor=3)
    plain = ivf.search(queries, K).distance_computations
    np.testing.assert_array_equal(refined.search(queries, K).distance_computations, plain + 3 * K)
    flat, _ = build_index("faiss", base, "angular", {"factory": "Flat"})
    np.testing.assert_array_equal(
        flat.search(queries, K).distance_computations, np.full(N_QUERIES, N_BASE)
    )


def test_faiss_build_is_seeded(subset):
    base, queries, _ = subset
    results = []
    for _ in range(2):
        engine, _ = build_index(
            "faiss", base, "angular", {"factory": "IVF16,PQ16x4fs", "train_size": 2000, "seed": 7}
        )
        engine.set_query_params(nprobe=4)
        results.append(engine.search(queries, K).ids)
    np.testing.assert_array_equal(results[0], results[1])


# ---------------------------------------------------------------------------- usearch


def test_usearch_recall_and_counts_equal_computed_distances(subset):
    base, queries, truth = subset
    engine, _ = build_index("usearch", base, "angular", {"connectivity": 16}, threads=1)
    engine.set_query_params(expansion_search=64)
    result = engine.search(queries, K)
    assert recall(result.ids, truth) >= 0.95
    prepared = normalized_rows(queries)
    total = engine._index.search(prepared, K, threads=1).computed_distances
    per_query = [
        engine._index.search(prepared[row], K, threads=1).computed_distances
        for row in range(N_QUERIES)
    ]
    assert result.distance_computations.sum() == total
    np.testing.assert_array_equal(result.distance_computations, per_query)
    with engine.uncounted():  # a timed batch does no counting pass
        assert engine.search(queries, K).distance_computations is None
    np.testing.assert_array_equal(engine.count_distances(queries, K), per_query)
    engine.set_query_params(expansion_search=16)  # counts follow the params
    assert engine.count_distances(queries, K).sum() < total
    engine.set_query_params(expansion_search=64)
    assert engine.search(queries[:1], K).distance_computations[0] == per_query[0]


@pytest.mark.parametrize("dtype", ["f16", "i8"])
def test_usearch_compact_dtypes(subset, dtype):
    base, queries, truth = subset
    engine, _ = build_index("usearch", base, "angular", {"dtype": dtype})
    engine.set_query_params(expansion_search=64)
    assert recall(engine.search(queries, K).ids, truth) >= 0.9


def test_usearch_single_thread_build_is_deterministic(subset):
    base, queries, _ = subset
    first, _ = build_index("usearch", base[:1000], "angular", {"connectivity": 8}, threads=1)
    second, _ = build_index("usearch", base[:1000], "angular", {"connectivity": 8}, threads=1)
    np.testing.assert_array_equal(first.search(queries, K).ids, second.search(queries, K).ids)


def test_usearch_i8_needs_angular(subset):
    with pytest.raises(ParamError) as info:
        build_index("usearch", subset[0][:100], "euclidean", {"dtype": "i8"})
    assert str(info.value) == (
        "usearch: dtype i8 suits unit-length vectors; use it with the angular metric, not euclidean"
    )


# ------------------------------------------------------------------------------ scann


@pytest.mark.slow
@pytest.mark.skipif(not SCANN_AVAILABLE, reason="the scann extra is not installed")
def test_scann_recall_no_counts_and_quiet(subset, capfd):
    base, queries, truth = subset
    engine, _ = build_index("scann", base, "angular", {"num_leaves": 40}, threads=1)
    engine.set_query_params(leaves_to_search=20, reorder=100)
    result = engine.search(queries, K)
    assert recall(result.ids, truth) >= 0.9
    assert result.distance_computations is None
    assert capfd.readouterr().err == ""  # absl's INFO lines are kept off stderr
    again, _ = build_index("scann", base, "angular", {"num_leaves": 40}, threads=1)
    again.set_query_params(leaves_to_search=20, reorder=100)
    np.testing.assert_array_equal(again.search(queries, K).ids, result.ids)  # seeded


@pytest.mark.skipif(not SCANN_AVAILABLE, reason="the scann extra is not installed")
def test_scann_param_checks(subset):
    with pytest.raises(ParamError, match="num_leaves=5000 exceeds the 3000 base vectors"):
        build_index("scann", subset[0], "angular", {"num_leaves": 5000})
    small = subset[0][:500, :8]
    with pytest.raises(ParamError, match="dims_per_block=9 exceeds the dimension 8"):
        build_index("scann", small, "angular", {"dims_per_block": 9, "num_leaves": 4})


@pytest.mark.skipif(not SCANN_AVAILABLE, reason="the scann extra is not installed")
def test_scann_cli_build(tmp_path, words10k):
    data = tmp_path / "base.npy"
    np.save(data, words10k.base[:500])
    outcome = run_cli(
        "build",
        str(data),
        "-e",
        "scann",
        "-p",
        "num_leaves=8",
        "--metric",
        "angular",
        "-o",
        str(tmp_path / "index"),
    )
    assert outcome.exit_code == 0, outcome.output
    assert load_bundle(tmp_path / "index").engine.count == 500


# ---------------------------------------------------------------------- damaged payloads

_SETTINGS = {
    "faiss-ivf": ("faiss", {"factory": "IVF8,Flat"}),
    "faiss-hnsw": ("faiss", {"factory": "HNSW8,Flat"}),
    "usearch": ("usearch", {"connectivity": 8}),
}
if SCANN_AVAILABLE:
    _SETTINGS["scann"] = ("scann", {"num_leaves": 4})

_CHILD = textwrap.dedent("""
    import sys
    from annkit.bundle import load_bundle
    from annkit.errors import AnnkitError
    import numpy as np
    for path in sys.argv[1:]:
        try:
            bundle = load_bundle(path)
            bundle.engine.search(np.zeros((2, 16), np.float32), 3)
            print("LOADED", path)
        except AnnkitError as exc:
            print("ERROR", str(exc).replace(chr(10), "<newline>"))
        sys.stdout.flush()
""")


def _rehash(bundle, name) -> None:
    """Make the manifest match a damaged payload file, so the engine's own checks are what
    stands between the file and the native loader."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    path = bundle / name
    manifest["files"][name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    (bundle / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("label", sorted(_SETTINGS))
def test_damaged_payloads_are_one_line_errors_not_crashes(label, tmp_path):
    engine_name, params = _SETTINGS[label]
    base = np.random.default_rng(11).standard_normal((700, 16)).astype(np.float32)
    engine, seconds = build_index(engine_name, base, "euclidean", params, threads=1)
    source = save_bundle(engine, tmp_path / "valid", build_seconds=seconds)
    payloads = sorted(json.loads((source / MANIFEST).read_text())["files"])
    main = max(payloads, key=lambda name: (source / name).stat().st_size)
    cases: dict[str, str] = {}  # case folder -> what must happen

    def damaged(expect: str, data: bytes, rehash: bool) -> None:
        target = tmp_path / f"case{len(cases)}"
        target.mkdir()
        for name in [MANIFEST, *payloads]:
            (target / name).write_bytes((source / name).read_bytes())
        (target / main).write_bytes(data)
        if rehash:
            _rehash(target, main)
        cases[str(target)] = expect

    data = (source / main).read_bytes()
    for cut in (0, 8, 64, len(data) // 2, len(data) - 1):
        damaged("checksum", data[:cut], rehash=False)
        damaged("refused", data[:cut], rehash=True)  # the engine's own checks refuse it
    rng = np.random.default_rng(5)
    for position in rng.integers(0, len(data), size=6):
        flipped = bytearray(data)
        flipped[int(position)] ^= 0xFF
        damaged("checksum", bytes(flipped), rehash=False)
    if engine_name == "usearch":  # its header is checked against the manifest
        for position in range(0, 64, 4):
            flipped = bytearray(data)
            flipped[position] ^= 0xFF
            damaged("no crash", bytes(flipped), rehash=True)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, *cases], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, (child.returncode, child.stdout[-2000:], child.stderr[-2000:])
    lines = child.stdout.splitlines()
    assert len(lines) == len(cases)
    for (path, expect), line in zip(cases.items(), lines, strict=True):
        assert "<newline>" not in line
        if expect == "checksum":
            assert line.startswith("ERROR") and ("sha256" in line or "bytes" in line), line
        elif expect == "refused":
            assert line.startswith("ERROR") and path in line, line
        else:
            assert line.startswith(("ERROR", "LOADED")), line


def test_foreign_faiss_payload_refused(tmp_path):
    """An IVF payload under a manifest whose factory says HNSW: refused, not searched."""
    base = np.random.default_rng(2).standard_normal((500, 16)).astype(np.float32)
    engine, seconds = build_index("faiss", base, "euclidean", {"factory": "IVF8,Flat"})
    path = save_bundle(engine, tmp_path / "index", build_seconds=seconds)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["build_params"]["factory"] = "HNSW8,Flat"
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(
        EngineError,
        match="holds a faiss IndexIVFFlat, not what the manifest's factory 'HNSW8,Flat' builds",
    ):
        load_bundle(path)


_METRIC_SETTINGS = {
    "faiss-ivf": ("faiss", {"factory": "IVF16,Flat,RFlat"}, {"nprobe": 16, "k_factor": 4}),
    "faiss-hnsw": ("faiss", {"factory": "HNSW16,Flat"}, {"efSearch": 64}),
    "usearch": ("usearch", {}, {"expansion_search": 64}),
}
if SCANN_AVAILABLE:
    _METRIC_SETTINGS["scann"] = (
        "scann",
        {"num_leaves": 16},
        {"leaves_to_search": 16, "reorder": 100},
    )


@pytest.mark.parametrize("metric", ["euclidean", "ip", "angular"])
@pytest.mark.parametrize("label", sorted(_METRIC_SETTINGS))
def test_every_metric_returns_its_distances(label, metric):
    from annkit.metrics import exact_distances

    engine_name, build_params, query_params = _METRIC_SETTINGS[label]
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    engine, _ = build_index(engine_name, base, metric, build_params)
    engine.set_query_params(**query_params)
    result = engine.search(queries, 5)
    exact = exact_distances(base, queries, result.ids, metric)
    np.testing.assert_allclose(result.distances, exact, rtol=1e-4, atol=1e-4)
    flat, _ = build_index("flat", base, metric)
    assert np.mean(result.ids[:, 0] == flat.search(queries, 1).ids[:, 0]) >= 0.9
