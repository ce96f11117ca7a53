"""Output details the second new user tripped on (cut lists, stale help, cut cells, the tuned
slice, binary noise, long titles, sweep-file lines): each reproduced, each failing before its
fix."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from annkit.cli.main import cli


def run(*args: object):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def hnsw_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "hnsw8"
    result = run("build", "words-10k", "-e", "hnsw", "-p", "M=8", "--threads", "1", "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_effort_says_the_heavy_list_is_cut_and_suggests_a_wider_grid(hnsw_index: Path) -> None:
    result = run("effort", hnsw_index, "words-10k", "--target", "0.99", "--grid", "10,20,40", "-q")
    assert result.exit_code == 0, result.output
    assert "showing 10 of " in result.output and " heavy queries (--json or " in result.output
    assert "do not reach the target within ef <= 40: try a wider grid, e.g. --grid " in (
        result.output.replace("\n", " ")
    )
    assert "10,20,40,80,160,320" in result.output


def test_help_names_no_stale_engine_list() -> None:
    assert "hnsw, annoy, ivfpq or flat" not in run("build", "--help").output
    assert "ivfpq nprobe)" not in run("effort", "--help").output.replace("\n", " ")


def test_info_never_cuts_an_attribute_value(tmp_path: Path) -> None:
    path = tmp_path / "long.hdf5"
    text = "x" * 300 + " end"
    with h5py.File(path, "w") as handle:
        handle.attrs["note"] = text
        handle["train"] = np.zeros((2, 3), dtype=np.float32)
    result = CliRunner().invoke(cli, ["info", str(path)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "..." not in result.output
    assert "".join(result.output.split()).count("x" * 300 + "end") == 1


def test_tune_prints_the_recall_on_the_slice_it_tuned_for(tmp_path: Path) -> None:
    result = run(
        "tune",
        "words-10k",
        "-e",
        "hnsw",
        "--build-grid",
        "M=8",
        "--effort-grid",
        "10,20,40,80",
        "--target",
        "0.9",
        "--slice",
        "lid-q4",
        "--threads",
        "1",
        "--max-queries",
        "300",
        "--cache-dir",
        tmp_path / "cache",
        "-q",
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "recall@10 on lid-q4 0." in flat
    assert "recall@10 lid-q4" in flat  # the chosen setting's table shows the tuned slice


def test_tail_percentiles_carry_no_binary_noise() -> None:
    """A p5 of 0.7450000000000001 in --json output (item 20): the recall percentiles are
    rounded where they are computed, so tables and JSON agree."""
    from annkit.cli.console import to_json
    from annkit.longtail import tail_metrics

    rng = np.random.default_rng(0)
    noisy = next(  # recall steps of 1/10 over a query count whose p5 falls between them
        r
        for r in (rng.integers(0, 11, size=rng.integers(20, 2000)) / 10 for _ in range(9999))
        if float(np.percentile(r, 5.0)) != round(float(np.percentile(r, 5.0)), 12)
    )
    tail = tail_metrics(noisy)
    assert tail["p5"] == round(float(np.percentile(noisy, 5.0)), 12)
    assert len(repr(tail["p5"])) <= 14  # e.g. 0.03, not 0.030000000000000027
    assert f'"p5": {tail["p5"]!r},' in to_json(tail)


def test_long_plot_titles_are_wrapped_inside_the_figure() -> None:
    """Plot titles with --slice ran off both edges of the image (item 16)."""
    from annkit.bench.plot import TITLE_WIDTH, wrapped

    title = "words-100k+ood-long-text-queries[1000 of 2000 queries, seed 0]: recall@10 " * 3
    lines = wrapped(title.strip() + "\nsecond line").split("\n")
    assert all(len(line) <= TITLE_WIDTH for line in lines) and lines[-1] == "second line"
    assert " ".join(lines[:-1]).split() == title.split()


def test_a_factory_typo_in_a_sweep_file_names_its_line(tmp_path: Path) -> None:
    """Item 20: the other sweep errors had the `file line N:` prefix, this one had not."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        '[bench]\ndataset = "words-10k"\n\n[[engine]]\nname = "faiss"\n'
        'build = { factory = ["HNSW32,Falt"] }\n'
    )
    result = run("bench", sweep, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.startswith(
        f"Error: {sweep} line 6: faiss rejects index_factory string 'HNSW32,Falt'"
    )
    assert len(result.output.splitlines()) == 1 and not (tmp_path / "out").exists()
