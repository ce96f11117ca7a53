"""Notices for silent defaults (the bundled dataset used when DATA is missing, ground
truth recomputed when k is deeper than the file's) and bench's one plain progress line per
setting when stderr is not a terminal."""

from __future__ import annotations

import json

import pytest
from cli_runner import WIDE, run_cli

DEFAULT_NOTICE = (
    "annkit: no DATA given: using the bundled dataset words-10k (pass DATA to use your own)\n"
)


def test_missing_data_says_the_bundled_dataset_is_used(hnsw_words10k, tmp_path):
    implicit = run_cli(
        "evaluate", str(hnsw_words10k.path), "-p", "ef=12", "--runs", "1", "--json", env=WIDE
    )
    assert implicit.exit_code == 0, implicit.output
    assert implicit.stderr == DEFAULT_NOTICE
    explicit = run_cli(
        "evaluate",
        str(hnsw_words10k.path),
        "words-10k",
        "-p",
        "ef=12",
        "--runs",
        "1",
        "--json",
        env=WIDE,
    )
    assert explicit.exit_code == 0 and explicit.stderr == ""
    built = run_cli("build", "-e", "flat", "-o", str(tmp_path / "flat"), "--json", env=WIDE)
    assert built.exit_code == 0 and built.stderr == DEFAULT_NOTICE


def test_k_deeper_than_the_ground_truth_says_it_is_recomputed(hnsw_words10k):
    result = run_cli(
        "evaluate",
        str(hnsw_words10k.path),
        "words-10k",
        "-k",
        "101",
        "-p",
        "ef=150",
        "--runs",
        "1",
        "--json",
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "annkit: words-10k holds 100 true neighbours per query, fewer than k=101: computing "
        "the exact top-202 instead (this takes a while on large data)\n"
    )
    assert json.loads(result.stdout)["k"] == 101


@pytest.mark.slow
def test_bench_prints_one_plain_line_per_setting_when_stderr_is_not_a_terminal(tmp_path):
    import re

    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[bench]\nruns = 1\n\n[[engine]]\nname = "hnsw"\n'
        "build = { M = 8, ef_construction = 40 }\nquery = { ef = [10, 20] }\n"
        '\n[[engine]]\nname = "flat"\n'
    )
    result = run_cli(
        "bench", str(sweep), "-o", "plain", "--results-root", str(tmp_path / "r"), env=WIDE
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 3
    for number, line in enumerate(lines, start=1):
        # a timing flag may follow when the machine is loaded (e.g. by this test suite)
        flag = r"( \((busy machine|starved)[^)]*\))?"
        line_shape = rf"\[{number}/3\] .+: recall@10 [01]\.\d{{4}}, [\d,]+ QPS{flag}"
        assert re.fullmatch(line_shape, line), line
    assert "flat" in lines[2]
    quiet = run_cli(
        "bench", str(sweep), "-o", "plain2", "--results-root", str(tmp_path / "r"), "-q", env=WIDE
    )
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("[")]


@pytest.mark.slow
def test_bench_says_when_k_is_deeper_than_the_ground_truth(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[bench]\nk = 101\nruns = 1\n\n[[engine]]\nname = "flat"\n')
    result = run_cli(
        "bench", str(sweep), "-o", "deep", "--results-root", str(tmp_path / "r"), env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert (
        "annkit: words-10k holds 100 true neighbours per query, fewer than k=101: "
        "computing the exact top-202 instead (this takes a while on large data)"
    ) in result.stderr.splitlines()
