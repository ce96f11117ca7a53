"""Throughput under concurrency: the engine's own threaded batch search (--search-threads)
and concurrent single-query clients (--clients) give the same recall as one thread."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from cli_runner import run_cli
from sweep_files import sweep_text

from annkit.bundle import build_index, fingerprint_vectors, load_bundle, save_bundle
from annkit.engines.base import Engine, ParamSpec, engine_names, get_engine
from annkit.errors import InputError, ParamError
from annkit.evaluate import evaluate
from annkit.types import Dataset, RunRecord, SearchResult

pytestmark = pytest.mark.slow  # builds every engine once (~40 s on 2 cores)

N_BASE, N_QUERIES = 4000, 300


@pytest.fixture(scope="module")
def small(words10k) -> Dataset:
    """A real slice of words-10k: 4,000 base vectors, 300 queries (truth computed)."""
    return Dataset(
        name="words-4k",
        metric=words10k.metric,
        base=words10k.base[:N_BASE],
        queries=words10k.queries[:N_QUERIES],
    )


@pytest.fixture(scope="module")
def bundles(small, tmp_path_factory):
    """One bundle per registered engine, built single-threaded with its contract settings."""
    made = {}
    for name in engine_names():
        build_params, query_params = get_engine(name).contract_settings
        engine, seconds = build_index(name, small.base, small.metric, dict(build_params), threads=1)
        path = save_bundle(
            engine,
            tmp_path_factory.mktemp(name) / "idx",
            build_seconds=seconds,
            dataset_fingerprint=fingerprint_vectors(small.base),
        )
        made[name] = (load_bundle(path), dict(query_params))
    return made


@pytest.mark.parametrize("name", engine_names())
def test_threaded_batch_search_gives_the_same_recall(name, bundles, small):
    bundle, query_params = bundles[name]
    one = evaluate(bundle, small, 10, query_params, runs=1)
    if type(bundle.engine).max_search_threads == 1:
        with pytest.raises(ParamError, match="at most 1 thread"):
            evaluate(bundle, small, 10, query_params, runs=1, search_threads=2)
        return
    two = evaluate(bundle, small, 10, query_params, runs=1, search_threads=2)
    assert one.search_threads == 1 and two.search_threads == 2 and two.clients is None
    np.testing.assert_array_equal(one.per_query_recall, two.per_query_recall)
    assert one.recall == two.recall
    if one.per_query_distance_computations is not None:
        np.testing.assert_array_equal(
            one.per_query_distance_computations, two.per_query_distance_computations
        )
    assert bundle.engine.search_threads == 2  # until the next evaluate sets it again
    assert evaluate(bundle, small, 10, query_params, runs=1).search_threads == 1


@pytest.mark.parametrize("name", engine_names())
def test_concurrent_clients_give_the_same_recall(name, bundles, small):
    bundle, query_params = bundles[name]
    alone = evaluate(bundle, small, 10, query_params, mode="single", runs=1)
    loaded = evaluate(bundle, small, 10, query_params, mode="single", runs=1, clients=3)
    np.testing.assert_array_equal(alone.per_query_recall, loaded.per_query_recall)
    assert loaded.clients == 3 and loaded.mode == "single"
    assert loaded.timed_queries == N_QUERIES  # every query sent, none sampled
    latency = loaded.latency_ms
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert loaded.qps == pytest.approx(N_QUERIES / loaded.search_seconds)
    # counted after the timed pass, one query per call: the same as without load
    assert loaded.distance_computations == alone.distance_computations
    one_client = evaluate(bundle, small, 10, query_params, mode="single", runs=1, clients=1)
    assert one_client.distance_computations == alone.distance_computations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "single", "clients": 0}, "--clients must be >= 1, got 0"),
        (
            {"mode": "batch", "clients": 2},
            "--clients sends one query per call: use it with --mode single",
        ),
        ({"mode": "single", "clients": 2, "search_threads": 2}, "use either --search-threads"),
        ({"mode": "single", "search_threads": 2}, "--search-threads applies to batch mode"),
        ({"search_threads": 0}, "--search-threads must be >= 1, got 0"),
    ],
)
def test_concurrency_settings_that_do_not_fit_are_refused(kwargs, message, bundles, small):
    bundle, query_params = bundles["hnsw"]
    with pytest.raises(InputError) as caught:
        evaluate(bundle, small, 10, query_params, runs=1, **kwargs)
    assert str(caught.value).startswith(message)


class OldStyleEngine(Engine):
    """An engine written before threaded search: search(queries, k) and nothing else."""

    name = "old-style-exact"
    description = "numpy brute force"
    build_specs: ClassVar[dict[str, ParamSpec]] = {}

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        self._base = np.asarray(base, dtype=np.float32)
        self.count = len(base)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        scores = np.asarray(queries, dtype=np.float32) @ self._base.T
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return SearchResult(
            ids=ids.astype(np.int64),
            distances=(1 - np.take_along_axis(scores, ids, 1)).astype(np.float32),
        )

    def save(self, directory):  # pragma: no cover - not saved here
        return []

    @classmethod
    def load(cls, directory, metric, dim, count, params):  # pragma: no cover
        raise NotImplementedError


def test_an_engine_without_threads_keeps_working_and_refuses_more():
    engine = OldStyleEngine("angular", 4)
    engine.build(np.eye(4, dtype=np.float32))
    engine.set_search_threads(1)
    assert engine.search(np.eye(4, dtype=np.float32)[:1], 1).ids[0, 0] == 0
    with pytest.raises(ParamError) as caught:
        engine.set_search_threads(2)
    assert str(caught.value) == (
        "engine old-style-exact searches with at most 1 thread; use "
        "--search-threads 1 (or --clients for concurrent single-query "
        "callers)"
    )


def test_records_carry_threads_and_clients_and_old_ones_read_as_one_and_none():
    old = RunRecord.from_dict({"run_id": "hnsw-1", "status": "ok", "engine": "hnsw"})
    assert old.search_threads == 1 and old.clients is None
    new = RunRecord(run_id="hnsw-2", status="ok", engine="hnsw", search_threads=2, clients=4)
    again = RunRecord.from_dict(new.to_dict())
    assert again == new and again.to_dict()["search_threads"] == 2


def test_evaluate_cli_takes_clients_and_search_threads(tmp_path, words10k):

    engine, seconds = build_index("hnsw", words10k.base, "angular", {"M": 8}, threads=1)
    index = save_bundle(
        engine,
        tmp_path / "idx",
        build_seconds=seconds,
        dataset_fingerprint=fingerprint_vectors(words10k.base),
    )
    zero = run_cli("evaluate", str(index), "--clients", "0")
    assert (
        zero.exit_code == 2
        and "Invalid value for '--clients': 0 is not in the range x>=1" in zero.output
    )
    both = run_cli("evaluate", str(index), "--clients", "2", "--mode", "batch")
    assert both.exit_code == 2
    assert both.output.strip().endswith(
        "--clients sends one query per call: use it with --mode single"
    )
    import json

    loaded = run_cli("evaluate", str(index), "--clients", "2", "--runs", "1", "--json", "-q")
    threaded = run_cli(
        "evaluate", str(index), "--search-threads", "2", "--runs", "1", "--json", "-q"
    )
    assert loaded.exit_code == 0 and threaded.exit_code == 0, loaded.output + threaded.output
    loaded_out, threaded_out = json.loads(loaded.stdout), json.loads(threaded.stdout)
    assert loaded_out["clients"] == 2 and loaded_out["mode"] == "single"
    assert threaded_out["search_threads"] == 2 and threaded_out["clients"] is None
    assert loaded_out["recall"] == threaded_out["recall"]


def test_bench_measures_each_setting_at_each_level(tmp_path):
    from annkit.bench.plot import plot_sweep
    from annkit.bench.report import build_report
    from annkit.bench.runner import run_sweep
    from annkit.bench.spec import parse_sweep

    spec = parse_sweep(sweep_text("concurrency-hnsw-flat", mode="batch"))
    outcome = run_sweep(
        spec, tmp_path / "res", results_root=tmp_path, threads=1, search_threads=[1, 2]
    )
    records = {record.run_id: record.to_dict() for record in outcome.records}
    assert len(records) == 6 and outcome.failed == 0
    for run_id in spec.run_ids():  # level 1 keeps the plain run id: older folders resume
        one, two = records[run_id], records[f"{run_id}-t2"]
        assert (one["search_threads"], two["search_threads"]) == (1, 2)
        assert one["recall"] == two["recall"] and one["query_params"] == two["query_params"]
    report = build_report(outcome.records).to_dict()
    assert len(report["concurrency"]) == 3
    assert {row["by"] for row in report["concurrency"]} == {"threads"}
    assert plot_sweep(outcome.records, tmp_path / "t.png", x="threads").is_file()
    with pytest.raises(InputError, match="nothing to plot against clients"):
        plot_sweep(outcome.records, tmp_path / "c.png", x="clients")
    again = run_sweep(
        spec, tmp_path / "res", results_root=tmp_path, threads=1, search_threads=[1, 2]
    )
    assert again.ran == 0 and again.skipped == 6
    with pytest.raises(InputError, match='set mode = "single" in the sweep'):
        run_sweep(spec, tmp_path / "other", results_root=tmp_path, clients=[2])


def test_bench_with_clients(tmp_path):
    from annkit.bench.runner import run_sweep
    from annkit.bench.spec import parse_sweep

    spec = parse_sweep(sweep_text("concurrency-hnsw-flat", mode="single"))
    outcome = run_sweep(spec, tmp_path / "res", results_root=tmp_path, threads=1, clients=[1, 2])
    by_id = {record.run_id: record.to_dict() for record in outcome.records}
    for run_id in spec.run_ids():
        one, two = by_id[f"{run_id}-c1"], by_id[f"{run_id}-c2"]
        assert (one["clients"], two["clients"]) == (1, 2) and one["recall"] == two["recall"]
        assert two["latency_ms"]["p99"] is not None


def test_bench_cli_refuses_zero_clients(tmp_path):

    result = run_cli("bench", "--clients", "0", "-o", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "Invalid value for --clients: expected counts >= 1 like 1,2,4, got '0'" in result.output
