"""The database engines (pgvector, lancedb, duckdb, chroma) and nmslib, against their real
servers and files: no mocks. Each test is skipped only when the engine's extra is not
installed (CI installs them all)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bundle import MANIFEST, build_index, load_bundle, save_bundle, sha256_file
from annkit.engines import engine_names, get_engine
from annkit.engines.base import unavailable_engines
from annkit.errors import AnnkitError, EngineError, ParamError
from annkit.evaluate import evaluate
from annkit.metrics import EPSILON
from annkit.types import Dataset

DATABASES = ("pgvector", "lancedb", "duckdb", "chroma", "nmslib")
K = 10
N_BASE = 2000
N_QUERIES = 100


def needs(name: str):  # type: ignore[no-untyped-def]
    return pytest.mark.skipif(
        name not in engine_names(), reason=f"{name}: {unavailable_engines().get(name)}"
    )


def _all_engines() -> list:
    """Every database engine; pgvector's are slow (each starts a PostgreSQL server)."""
    return [
        pytest.param(
            name, marks=[needs(name), pytest.mark.slow] if name == "pgvector" else needs(name)
        )
        for name in DATABASES
    ]


@pytest.fixture(scope="module")
def small(words10k) -> Dataset:
    return Dataset(
        name="words-small",
        metric="angular",
        base=words10k.base[:N_BASE],
        queries=words10k.queries[:N_QUERIES],
    )


@pytest.fixture(scope="module")
def bundles(small, tmp_path_factory) -> dict[str, Path]:
    """Each available engine built once at its small contract settings, saved as a bundle."""

    class Lazy(dict):
        def __missing__(self, name: str) -> Path:
            build_params, _ = (
                get_engine(name).small_contract_settings or get_engine(name).contract_settings
            )
            engine, seconds = build_index(name, small.base, "angular", build_params, threads=1)
            path = tmp_path_factory.mktemp(name) / "index"
            save_bundle(engine, path, build_seconds=seconds)
            self[name] = path
            return path

    return Lazy()


def _brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact angular top-k (ids, 1 - cosine) in plain numpy."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    distances = 1.0 - q.astype(np.float64) @ b.T.astype(np.float64)
    ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(distances, ids, axis=1)


# --------------------------------------------------------------------------- every engine


def test_all_database_engines_are_known_to_the_registry():
    """Each is registered, or listed as unavailable with what to install."""
    missing = unavailable_engines()
    for name in DATABASES:
        assert name in engine_names() or "pip install 'annkit[" in missing[name]


@pytest.mark.parametrize("name", _all_engines())
def test_recall_equals_an_independent_recomputation(name, small, bundles):
    """annkit's recall (both rules) equals a numpy brute-force recomputation from the ids the
    database returned."""
    bundle = load_bundle(bundles[name])
    _, query_params = get_engine(name).small_contract_settings or get_engine(name).contract_settings
    true_ids, true_distances = _brute_force(small.base, small.queries, K)
    for rule in ("strict", "tolerant"):
        evaluation = evaluate(bundle, small, K, query_params, runs=1, recall_rule=rule)
        found = evaluation.returned_ids
        assert found is not None and found.shape == (N_QUERIES, K)
        if rule == "strict":
            hits = [len(set(found[row]) & set(true_ids[row])) for row in range(N_QUERIES)]
        else:
            base = small.base / np.linalg.norm(small.base, axis=1, keepdims=True)
            q = small.queries / np.linalg.norm(small.queries, axis=1, keepdims=True)
            hits = [
                int(
                    np.sum(
                        1.0 - base[found[row]].astype(np.float64) @ q[row].astype(np.float64)
                        <= true_distances[row, K - 1] + EPSILON
                    )
                )
                for row in range(N_QUERIES)
            ]
        assert evaluation.recall == pytest.approx(np.mean(hits) / K, abs=1e-9), rule
        assert evaluation.recall >= 0.9
        assert evaluation.distance_computations is None  # no database counts them


@pytest.mark.parametrize("name", _all_engines())
def test_clients_give_the_batch_results(name, small, bundles):
    """--clients C: C concurrent callers (C connections for the SQL engines) return what one
    batch search returns."""
    bundle = load_bundle(bundles[name])
    _, query_params = get_engine(name).small_contract_settings or get_engine(name).contract_settings
    batch = evaluate(bundle, small, K, query_params, runs=1, recall_rule="strict")
    clients = evaluate(
        bundle, small, K, query_params, runs=1, recall_rule="strict", mode="single", clients=3
    )
    np.testing.assert_array_equal(clients.returned_ids, batch.returned_ids)


@pytest.mark.parametrize("name", _all_engines())
def test_save_load_round_trip_and_build_phases(name, small, bundles, tmp_path):
    """A bundle holds the database's own files; loaded again it answers the same; the build
    time is broken down into phases (not for nmslib, a library)."""
    bundle = load_bundle(bundles[name])
    engine = bundle.engine
    _, query_params = get_engine(name).small_contract_settings or get_engine(name).contract_settings
    engine.set_query_params(**query_params)
    first = engine.search(small.queries, K)
    again = load_bundle(bundles[name]).engine
    again.set_query_params(**query_params)
    second = again.search(small.queries, K)
    np.testing.assert_array_equal(first.ids, second.ids)
    np.testing.assert_allclose(first.distances, second.distances, atol=1e-6)
    if name != "nmslib":
        build_params, _ = (
            get_engine(name).small_contract_settings or get_engine(name).contract_settings
        )
        built, _ = build_index(name, small.base[:300], "angular", {}, threads=1)
        assert built.build_phases and "load" in built.build_phases
        assert all(seconds >= 0 for seconds in built.build_phases.values())


@pytest.mark.parametrize("name", _all_engines())
def test_damaged_database_bundle_is_one_line_and_exit_2(name, bundles, tmp_path):
    """A damaged payload whose checksum was made to match (a hand-edited bundle) is refused by
    the engine itself: one line, exit 2, no traceback."""
    source = bundles[name]
    copy = tmp_path / "damaged"
    copy.mkdir()
    manifest = json.loads((source / MANIFEST).read_text())
    for file_name in manifest["files"]:
        (copy / file_name).write_bytes((source / file_name).read_bytes())
    payload = max(manifest["files"], key=lambda n: manifest["files"][n]["bytes"])
    (copy / payload).write_bytes(b"this is not a database" * 100)
    manifest["files"][payload] = {
        "bytes": (copy / payload).stat().st_size,
        "sha256": sha256_file(copy / payload),
    }
    (copy / MANIFEST).write_text(json.dumps(manifest))
    result = run_cli("evaluate", copy, "words-10k", "--runs", "1")
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and str(copy) in result.stderr


# --------------------------------------------------------------------------- pgvector


def _pg_params(**extra: object) -> dict:
    return {"index": "hnsw", "m": 8, "ef_construction": 32, **extra}


def _processes_of(folder: str) -> list[int]:
    """Pids of processes whose command line names ``folder`` (a throwaway server's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode()
            except OSError:
                continue
            if folder in command and "postgres" in command:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a parent that does not reap it has
    stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
@needs("pgvector")
def test_pgvector_server_is_stopped_after_sigkill(tmp_path):
    """SIGKILL leaves no exit handler to run: the watchdog stops the server and removes its
    throwaway data directory within a few seconds."""
    script = textwrap.dedent(
        """
        import sys, time
        import numpy as np
        from annkit.bundle import build_index
        base = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
        engine, _ = build_index("pgvector", base, "euclidean", {})
        print(engine.server_pid, engine._server.folder, flush=True)
        time.sleep(120)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()  # type: ignore[union-attr]
        assert line, "the child did not start a server"
        pid, folder = int(line[0]), line[1]
        assert _processes_of(folder)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 15
        while (_running(pid) or Path(folder).exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [p for p in _processes_of(folder) if _running(p)]
        assert not alive, "postgres still running after its owner was killed"
        assert not Path(folder).exists(), "throwaway data directory left behind"
        assert not _running(pid)
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.slow
@needs("pgvector")
def test_pgvector_server_killed_mid_run_fails_that_setting_and_next_build_starts_anew(small):
    """A server killed during a run makes that search fail with the reason (an AnnkitError the
    sweep records as a failed setting); the next build starts a new server."""
    engine, _ = build_index("pgvector", small.base[:500], "angular", _pg_params(), threads=1)
    first_pid = engine.server_pid
    assert first_pid is not None
    engine.search(small.queries[:2], K)
    os.kill(first_pid, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(EngineError, match=r"^pgvector: the search failed: "):
        engine.search(small.queries[:2], K)
    engine.close()
    second, _ = build_index("pgvector", small.base[:500], "angular", _pg_params(), threads=1)
    assert second.server_pid not in (None, first_pid)
    assert second.search(small.queries[:2], K).ids.shape == (2, K)
    second.close()


@pytest.fixture(scope="module")
def user_postgres():
    """Stands in for the user's own PostgreSQL: a server annkit did not build into, with a
    table of the user's whose name looks like annkit's."""
    if "pgvector" not in engine_names():
        pytest.skip("pgvector extra not installed")
    import psycopg2

    from annkit.engines.pg_server import ThrowawayServer

    server = ThrowawayServer()
    connection = psycopg2.connect(server.uri)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE annkit_users (name text)")
        cursor.execute("INSERT INTO annkit_users VALUES ('ada'), ('grace')")
    connection.close()
    yield server
    server.stop()


def _user_rows(server) -> list:  # type: ignore[no-untyped-def]
    import psycopg2

    connection = psycopg2.connect(server.uri)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM annkit_users ORDER BY name")
        rows = cursor.fetchall()
    connection.close()
    return rows


@needs("pgvector")
def test_dsn_mode_refuses_a_table_annkit_did_not_make(user_postgres, small):
    with pytest.raises(ParamError) as info:
        build_index(
            "pgvector",
            small.base[:200],
            "angular",
            _pg_params(dsn=user_postgres.uri, table="annkit_users"),
        )
    assert str(info.value) == (
        "pgvector: table annkit_users exists and was not created by annkit; "
        "refusing to build into it (it was left unchanged)"
    )
    assert _user_rows(user_postgres) == [("ada",), ("grace",)]  # never dropped


@needs("pgvector")
def test_dsn_mode_builds_reports_and_reuses_its_own_table(user_postgres, small, tmp_path):
    params = _pg_params(dsn=user_postgres.uri, table="annkit_words")
    engine, seconds = build_index("pgvector", small.base[:300], "angular", params)
    assert engine.table == "annkit_words" and engine.built_params()["table"] == "annkit_words"
    engine.set_query_params(ef_search=100)
    result = engine.search(small.queries[:5], K)
    save_bundle(engine, tmp_path / "dsn", build_seconds=seconds)
    assert json.loads((tmp_path / "dsn" / MANIFEST).read_text())["files"].keys() == {
        "pgvector.json"
    }
    loaded = load_bundle(tmp_path / "dsn").engine
    loaded.set_query_params(ef_search=100)
    np.testing.assert_array_equal(loaded.search(small.queries[:5], K).ids, result.ids)
    # building again under the same name replaces annkit's own table
    again, _ = build_index("pgvector", small.base[:200], "angular", params)
    assert again.count == 200


@needs("pgvector")
@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"table": "annkit_users; DROP TABLE annkit_users"},
            "pgvector: table 'annkit_users; DROP TABLE annkit_users' must match "
            "annkit_[a-z0-9_]+ (annkit only touches tables it names itself)",
        ),
        (
            {"table": 'annkit_x"; DROP TABLE annkit_users; --'},
            "pgvector: table 'annkit_x\"; DROP TABLE annkit_users; --' must match "
            "annkit_[a-z0-9_]+ (annkit only touches tables it names itself)",
        ),
        (
            {"maintenance_work_mem": "1GB'); DROP TABLE annkit_users; --"},
            'pgvector: maintenance_work_mem "1GB\'); DROP TABLE annkit_users; --" is not a '
            "size like 512MB or 2GB",
        ),
    ],
)
def test_injection_looking_parameters_never_execute(user_postgres, small, params, message):
    with pytest.raises(ParamError) as info:
        build_index(
            "pgvector", small.base[:100], "angular", _pg_params(dsn=user_postgres.uri, **params)
        )
    assert str(info.value) == message
    assert _user_rows(user_postgres) == [("ada",), ("grace",)]


@needs("pgvector")
def test_query_settings_are_bound_parameters(user_postgres, small):
    """A query setting reaches the server through set_config's bound parameters: a value
    that looks like SQL is refused by the parameter check, and one the server rejects is
    the server's own error, never executed as SQL."""
    engine, _ = build_index(
        "pgvector", small.base[:200], "angular", _pg_params(dsn=user_postgres.uri)
    )
    with pytest.raises(ParamError, match="must be one of"):
        engine.set_query_params(iterative_scan="off'; DROP TABLE annkit_users; --")
    assert _user_rows(user_postgres) == [("ada",), ("grace",)]


@needs("pgvector")
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("-p", "dsn=postgresql://nobody@/nowhere?host=/nonexistent-annkit"),
            "Error: pgvector: cannot connect with the dsn: connection to server on socket "
            '"/nonexistent-annkit/.s.PGSQL.5432" failed: No such file or directory',
        ),
        (
            ("-p", "dsn=env:ANNKIT_TEST_UNSET_DSN"),
            "Error: pgvector: dsn=env:ANNKIT_TEST_UNSET_DSN: the environment variable is not set",
        ),
        (
            ("-p", "index=hnsw", "-p", "lists=10"),
            "Error: pgvector: lists is not a parameter of index=hnsw (it has m, ef_construction)",
        ),
        (
            ("-p", "index=ivfflat", "-p", "m=8"),
            "Error: pgvector: m is not a parameter of index=ivfflat (it has lists)",
        ),
    ],
)
def test_pgvector_bad_build_input_is_one_line_exit_2(args, message, tmp_path):
    result = run_cli("build", "words-10k", "-e", "pgvector", *args, "-o", tmp_path / "x")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == message


@needs("pgvector")
def test_pgvector_query_param_of_the_other_index_kind(bundles):
    engine = load_bundle(bundles["pgvector"]).engine
    with pytest.raises(ParamError) as info:
        engine.set_query_params(probes=4)
    assert str(info.value) == (
        "engine pgvector has no query parameter 'probes' "
        "(known: ef_search, iterative_scan, max_scan_tuples)"
    )
    engine.close()


@needs("pgvector")
def test_pgvector_server_that_will_not_start_says_why(bundles, tmp_path):
    """A bundle whose server configuration is broken: the server's own FATAL line, exit 2."""
    source = bundles["pgvector"]
    copy = tmp_path / "broken"
    copy.mkdir()
    manifest = json.loads((source / MANIFEST).read_text())
    for file_name in manifest["files"]:
        (copy / file_name).write_bytes((source / file_name).read_bytes())
    rebuilt = tmp_path / "pgdata.tar"
    with tarfile.open(source / "pgdata.tar") as old, tarfile.open(rebuilt, "w") as new:
        for member in old.getmembers():
            data = old.extractfile(member) if member.isfile() else None
            if member.name.endswith("postgresql.auto.conf"):
                content = b"shared_buffers = 'lots'\n"
                member.size = len(content)
                import io

                data = io.BytesIO(content)
            new.addfile(member, data)
    (copy / "pgdata.tar").write_bytes(rebuilt.read_bytes())
    manifest["files"]["pgdata.tar"] = {
        "bytes": rebuilt.stat().st_size,
        "sha256": sha256_file(rebuilt),
    }
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(AnnkitError) as info:
        load_bundle(copy)
    message = str(info.value)
    assert message.startswith(f"{copy}: pgvector: the PostgreSQL server would not start: ")
    assert "shared_buffers" in message and "\n" not in message
    result = run_cli("evaluate", copy, "words-10k")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the others


@needs("lancedb")
def test_lancedb_parameters_of_other_index_kinds_are_refused():
    with pytest.raises(ParamError, match="m is a parameter of the HNSW kinds"):
        get_engine("lancedb")("angular", 8, index_type="IVF_PQ", m=8)
    with pytest.raises(ParamError, match="num_sub_vectors is a parameter of the PQ kinds"):
        get_engine("lancedb")("angular", 8, index_type="IVF_FLAT", num_sub_vectors=2)
    hnsw = get_engine("lancedb")("angular", 8, index_type="IVF_HNSW_SQ")
    assert hnsw.effort_param == "ef"
    with pytest.raises(ParamError, match="no query parameter 'ef'"):
        get_engine("lancedb")("angular", 8).set_query_params(ef=10)


@needs("lancedb")
def test_lancedb_hnsw_kind_reaches_recall(small):
    engine, _ = build_index(
        "lancedb", small.base, "angular", {"index_type": "IVF_HNSW_SQ", "m": 16}, threads=1
    )
    engine.set_query_params(ef=200, refine_factor=4)
    dataset = Dataset(name="s", metric="angular", base=small.base, queries=small.queries)
    ids, _ = _brute_force(dataset.base, dataset.queries, K)
    found = engine.search(dataset.queries, K).ids
    recall = np.mean([len(set(found[r]) & set(ids[r])) for r in range(N_QUERIES)]) / K
    assert recall >= 0.9


@pytest.mark.parametrize("name", _all_engines())
@pytest.mark.parametrize("metric", ["euclidean", "ip"])
def test_other_metrics_return_metric_distances(name, metric):
    from annkit.metrics import exact_distances

    rng = np.random.default_rng(5)
    base = rng.standard_normal((600, 16)).astype(np.float32)
    queries = rng.standard_normal((10, 16)).astype(np.float32)
    build_params, query_params = (
        get_engine(name).small_contract_settings or get_engine(name).contract_settings
    )
    if name == "lancedb":
        build_params = {"index_type": "IVF_FLAT", "num_partitions": 2}
        query_params = {"nprobes": 2}
    engine, _ = build_index(name, base, metric, build_params)
    engine.set_query_params(**query_params)
    result = engine.search(queries, 5)
    exact = exact_distances(base, queries, result.ids, metric)
    np.testing.assert_allclose(result.distances, exact, rtol=1e-4, atol=1e-4)
    if hasattr(engine, "close"):
        engine.close()


def test_unavailable_engine_is_listed_with_the_reason(monkeypatch):
    from annkit.engines import base

    monkeypatch.setitem(base._UNAVAILABLE, "fakedb", "needs the fakedb extra: pip install 'x'")
    with pytest.raises(ParamError) as info:
        get_engine("fakedb")
    assert str(info.value) == (
        "engine fakedb is not available here: needs the fakedb extra: pip install 'x'"
    )
    result = run_cli("engines")
    assert result.exit_code == 0
    assert "engine fakedb not available: needs the fakedb extra" in result.stderr
    assert "fakedb" in result.stdout
    assert "fakedb" not in json.loads(run_cli("engines", "--json").stdout)


@needs("duckdb")
def test_duckdb_never_autoinstalls_extensions(bundles):
    engine = load_bundle(bundles["duckdb"]).engine
    settings = dict(
        engine._connection.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions')"
        ).fetchall()
    )
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }


@pytest.mark.slow
@needs("pgvector")
def test_pgvector_ctrl_c_during_a_build_stops_the_server(tmp_path):
    """Ctrl-C while the throwaway server builds the index: exit 130, no bundle, and the
    server and its data directory gone within seconds (the process ends with os._exit while
    the build thread is in the database, so the watchdog is what stops the server)."""
    server_dir = tmp_path / "servers"
    child = subprocess.Popen(
        [sys.executable, "-m", "annkit", "build", "words-10k", "-e", "pgvector"]
        + ["-p", "ef_construction=200", "-o", str(tmp_path / "index")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ANNKIT_PG_DIR": str(server_dir)},
    )
    try:
        deadline = time.monotonic() + 60
        while not list(server_dir.glob("annkit-pg-*/data/postmaster.pid")):
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.2)
        time.sleep(2.0)  # the server runs and the build is under way
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr
    assert "interrupted" in stderr and not (tmp_path / "index").exists()
    deadline = time.monotonic() + 15
    while list(server_dir.glob("annkit-pg-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(server_dir.glob("annkit-pg-*")), "the throwaway server was left behind"
    assert not _processes_of(str(server_dir))


@pytest.mark.slow
@needs("pgvector")
def test_a_sweep_records_a_killed_server_as_failed_and_goes_on(tmp_path, monkeypatch):
    """The first build's PostgreSQL server is killed (SIGKILL) as soon as it runs: that
    build's settings become failed records with the reason, and the next build starts a new
    server and measures."""
    import threading

    from annkit.bench.runner import run_sweep
    from annkit.bench.spec import parse_sweep
    from annkit.bench.store import read_runs
    from annkit.io.hdf5 import write_dataset_hdf5

    rng = np.random.default_rng(3)
    data = tmp_path / "tiny.hdf5"
    write_dataset_hdf5(
        data,
        base=rng.standard_normal((300, 8)).astype(np.float32),
        queries=rng.standard_normal((20, 8)).astype(np.float32),
        metric="euclidean",
    )
    server_dir = tmp_path / "servers"
    monkeypatch.setenv("ANNKIT_PG_DIR", str(server_dir))
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_first_server() -> None:
        while not stop.is_set() and not killed:
            for pid_file in server_dir.glob("annkit-pg-*/data/postmaster.pid"):
                try:
                    lines = pid_file.read_text().split("\n")
                    pid = int(lines[0])
                    if lines[7].strip() != "ready":  # postmaster.pid's status line
                        continue
                    os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    continue
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_server, daemon=True)
    killer.start()
    spec = parse_sweep(
        f'[bench]\ndataset = "{data}"\nk = 5\nruns = 1\ntimeout = 120\n\n'
        '[[engine]]\nname = "pgvector"\nbuild = { m = [8, 12], ef_construction = 32 }\n'
        "query = { ef_search = [10, 40] }\n"
    )
    try:
        run_sweep(spec, tmp_path / "res", results_root=tmp_path, threads=1)
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no server was seen to kill"
    records = read_runs(tmp_path / "res" / "runs.jsonl")
    outcome = [(r["build_params"]["m"], r["status"], r["error"]) for r in records]
    assert [m for m, _, _ in outcome] == [8, 8, 12, 12]
    assert all(status == "failed" and error for m, status, error in outcome if m == 8), outcome
    assert all(status == "ok" for m, status, _ in outcome if m == 12), outcome
    assert all("pgvector" in error for m, _, error in outcome if m == 8), outcome


@needs("pgvector")
def test_a_dsn_password_is_never_written_to_the_manifest():
    engine = get_engine("pgvector")(
        "angular", 8, dsn="postgresql://ann:secret@127.0.0.1/db", table="annkit_t"
    )
    assert engine.built_params()["dsn"] == "user=ann dbname=db host=127.0.0.1"
    assert get_engine("pgvector")("angular", 8, dsn="env:MY_DSN").built_params()["dsn"] == (
        "env:MY_DSN"
    )


@needs("lancedb")
def test_lancedb_nprobes_limits_the_search(small):
    """More partitions probed, more recall: the build must not leave an index LanceDB
    searches as a whole (an optimize() after create_index() did, on lancedb 0.40)."""
    engine, _ = build_index(
        "lancedb", small.base, "angular", {"index_type": "IVF_FLAT", "num_partitions": 40}
    )
    true_ids, _ = _brute_force(small.base, small.queries, K)

    def recall(nprobes: int) -> float:
        engine.set_query_params(nprobes=nprobes)
        found = engine.search(small.queries, K).ids
        return float(np.mean([len(set(found[r]) & set(true_ids[r])) for r in range(N_QUERIES)]))

    assert recall(1) < 0.8 * K and recall(40) == pytest.approx(K)


@needs("chroma")
def test_chroma_ef_search_takes_effect_after_a_search(small):
    """Chroma keeps a searched index with the ef_search it was loaded with: a new value must
    still change the results (annkit reopens the collection)."""
    engine, _ = build_index(
        "chroma", small.base, "angular", {"max_neighbors": 8, "ef_construction": 32}
    )
    true_ids, _ = _brute_force(small.base, small.queries, K)

    def recall(ef: int) -> float:
        engine.set_query_params(ef_search=ef)
        found = engine.search(small.queries, K).ids
        return float(np.mean([len(set(found[r]) & set(true_ids[r])) for r in range(N_QUERIES)]))

    high, low = recall(200), recall(2)
    assert low < high and recall(200) == high
