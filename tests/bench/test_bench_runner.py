"""The sweep runner: failures and time limits recorded, caches reused, resume and refusal."""

from __future__ import annotations

import pytest

from annkit.bench.runner import run_sweep
from annkit.bench.spec import SweepError, parse_sweep
from annkit.bench.store import REQUIRED_KEYS, read_runs


def sweep(text: str, data) -> object:
    return parse_sweep(f'[bench]\ndataset = "{data}"\nk = 5\nruns = 1\n' + text)


FAILING = """\
timeout = 2

[[engine]]
name = "fake"
query = { search = ["raise", "crash", "hang", "ok"] }

[[engine]]
name = "fake"
build = { build = ["raise", "crash", "hang"] }

[[engine]]
name = "flat"
"""


@pytest.mark.slow
def test_failures_and_timeouts_are_recorded_and_the_sweep_goes_on(
    tmp_path, tiny_file, fake_engines
):
    text = f'[bench]\ndataset = "{tiny_file}"\nk = 5\nruns = 1\n' + FAILING
    events = []
    outcome = run_sweep(
        parse_sweep(text),
        tmp_path / "res",
        results_root=tmp_path,
        threads=1,
        on_event=events.append,
    )
    records = read_runs(tmp_path / "res" / "runs.jsonl")
    assert len(records) == 8 == outcome.ran and outcome.failed == 6
    got = [
        (
            r["engine"],
            r["build_params"].get("build"),
            r["query_params"].get("search"),
            r["status"],
            r["error"],
        )
        for r in records
    ]
    assert got == [
        ("fake", "ok", "raise", "failed", "RuntimeError: boom in search"),
        ("fake", "ok", "crash", "failed", "the engine process died (SIGSEGV)"),
        ("fake", "ok", "hang", "timeout", "the query run took longer than 2s"),
        ("fake", "ok", "ok", "ok", None),
        ("fake", "raise", "ok", "failed", "build: RuntimeError: boom in build"),
        ("fake", "crash", "ok", "failed", "build: the engine process died (SIGSEGV)"),
        ("fake", "hang", "ok", "timeout", "building the index took longer than 2s"),
        ("flat", None, None, "ok", None),
    ]
    for item in records:
        assert set(REQUIRED_KEYS) <= set(item)
    assert records[3]["recall"] == 1.0 and records[3]["cached"] is True  # reloaded after kill
    assert records[7]["recall"] == 1.0
    assert events[-1].kind == "finish" and events[-1].done == events[-1].total == 8
    assert "boom in search" in (tmp_path / "res" / "worker.log").read_text()


@pytest.mark.slow
def test_cached_indexes_are_reused_by_later_sweeps(tmp_path, tiny_file):
    spec = sweep(
        '[[engine]]\nname = "hnsw"\nbuild = { M = 8 }\nquery = { ef = [10, 40] }\n'
        '[[engine]]\nname = "annoy"\nbuild = { n_trees = 3 }\n',
        tiny_file,
    )
    first = run_sweep(spec, tmp_path / "a", results_root=tmp_path, threads=1)
    second = run_sweep(spec, tmp_path / "b", results_root=tmp_path, threads=1)
    assert (first.builds, first.cached_builds) == (2, 0)
    assert (second.builds, second.cached_builds) == (2, 2)
    assert [r.cached for r in first.records] == [False, False, False]
    assert [r.cached for r in second.records] == [True, True, True]
    assert [r.build_seconds for r in first.records] == [r.build_seconds for r in second.records]
    assert [r.recall for r in first.records] == [r.recall for r in second.records]
    rebuilt = run_sweep(spec, tmp_path / "c", results_root=tmp_path, threads=1, rebuild=True)
    assert rebuilt.cached_builds == 0
    assert len(list((tmp_path / ".cache" / "groundtruth").iterdir())) == 1


def test_rerun_skips_finished_settings_and_force_redoes_them(tmp_path, tiny_file):
    spec = sweep(
        '[[engine]]\nname = "flat"\n[[engine]]\nname = "hnsw"\n'
        "build = { M = 4 }\nquery = { ef = [5, 50] }\n",
        tiny_file,
    )
    first = run_sweep(spec, tmp_path / "r", results_root=tmp_path, threads=1)
    assert (first.ran, first.skipped) == (3, 0)
    again = run_sweep(spec, tmp_path / "r", results_root=tmp_path, threads=1)
    assert (again.ran, again.skipped, again.builds) == (0, 3, 0)
    assert [r.finished_at for r in again.records] == [r.finished_at for r in first.records]
    forced = run_sweep(spec, tmp_path / "r", results_root=tmp_path, threads=1, force=True)
    assert (forced.ran, forced.skipped) == (3, 0)
    assert len(read_runs(tmp_path / "r" / "runs.jsonl")) == 3


def test_a_folder_takes_only_its_own_sweep(tmp_path, tiny_file):
    run_sweep(
        sweep('[[engine]]\nname = "flat"\n', tiny_file), tmp_path / "r", results_root=tmp_path
    )
    other = sweep('[[engine]]\nname = "hnsw"\n', tiny_file)
    with pytest.raises(SweepError) as caught:
        run_sweep(other, tmp_path / "r", results_root=tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'r'} holds results of a different sweep (settings, k, runs or mode "
        "differ); choose another -o, or pass --force to start it over"
    )
    assert run_sweep(other, tmp_path / "r", results_root=tmp_path, force=True).ran == 1
