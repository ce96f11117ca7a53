"""Runbooks in big-ann-benchmarks' format: read as they are, every step checked before
anything runs, one line naming the step for each kind of bad runbook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.stream import LiveSet, RunbookError, read_runbook

#: big-ann's neurips23/runbooks/simple_replace_runbook.yaml layout (quoted operations,
#: max_pts first, steps numbered from 1), two entries
BIG_ANN = """\
random-xs:
  max_pts: 10000
  1:
    operation: "insert"
    start: 0
    end: 7500
  2:
    operation: "search"
  3:
    operation: "replace"
    tags_start: 0
    tags_end: 2500
    ids_start: 7500
    ids_end: 10000
  4:
    operation: "search"
  5:
    operation: "delete"
    start: 2500
    end: 5000
  6:
    operation: "search"
  gt_url: "https://example.invalid/simple_replace_runbook.yaml"
other:
  1:
    operation: insert
    start: 0
    end: 10
  2:
    operation: search
  max_pts: 10
"""


def write(tmp_path: Path, text: str, name: str = "runbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def entry(steps: str, max_pts: int = 100) -> str:
    return f"data:\n  max_pts: {max_pts}\n" + steps


def test_big_ann_runbook_reads_as_it_is(tmp_path):
    runbook = read_runbook(write(tmp_path, BIG_ANN), "random-xs", 10_000)
    assert runbook.entry == "random-xs" and runbook.max_pts == 10_000
    assert [step.operation for step in runbook.steps] == [
        "insert", "search", "replace", "search", "delete", "search",
    ]  # fmt: skip
    assert runbook.search_steps == 3
    replace = runbook.steps[2]
    assert replace.ids().tolist() == list(range(0, 2500))  # the tags: ids that change
    assert replace.rows().tolist() == list(range(7500, 10_000))  # the rows they now hold


def test_live_set_follows_inserts_replaces_and_deletes(tmp_path):
    runbook = read_runbook(write(tmp_path, BIG_ANN), "random-xs", 10_000)
    live = LiveSet(10_000)
    for step in runbook.steps:
        live.apply(step)
    ids = live.ids()
    assert live.count == len(ids) == 5000
    assert ids[0] == 0 and live.row_of[0] == 7500 and live.row_of[2499] == 9999
    assert live.row_of[2500:5000].max() == -1 and live.row_of[5000] == 5000
    before = live.digest()
    live.apply(runbook.steps[4])  # deleting what is already gone changes nothing
    assert live.digest() == before


@pytest.mark.parametrize(
    ("dataset", "given", "chosen"),
    [("random-xs", None, "random-xs"), ("anything", "other", "other")],
)
def test_the_entry_is_the_datasets_or_the_one_asked_for(tmp_path, dataset, given, chosen):
    assert read_runbook(write(tmp_path, BIG_ANN), dataset, 10_000, entry=given).entry == chosen


def test_the_only_entry_is_used_whatever_the_dataset(tmp_path):
    text = entry("  1:\n    operation: insert\n    start: 0\n    end: 5\n")
    assert read_runbook(write(tmp_path, text), "words-10k", 10).entry == "data"


def test_several_entries_and_none_named_after_the_dataset(tmp_path):
    path = write(tmp_path, BIG_ANN)
    with pytest.raises(RunbookError, match="no entry named 'words' among random-xs, other; "):
        read_runbook(path, "words", 10_000)
    with pytest.raises(RunbookError, match=r"no entry 'nope' \(entries: random-xs, other\)"):
        read_runbook(path, "words", 10_000, entry="nope")


INSERT_10 = "  1:\n    operation: insert\n    start: 0\n    end: 10\n"
BAD = [
    (
        INSERT_10 + "  2:\n    operation: delete\n    start: 5\n    end: 15\n",
        "step 2 (delete): deletes id 10, which was never inserted or is already deleted",
    ),
    (
        INSERT_10 + "  2:\n    operation: insert\n    start: 10\n    end: 30\n",
        "step 2 (insert): inserts past max_pts: 30 live > max_pts 20",
    ),
    (INSERT_10 + "  2:\n    operation: upsert\n", "step 2: unknown operation 'upsert' (known: "),
    (
        INSERT_10 + "  2:\n    operation: insert\n    start: 40\n    end: 60\n",
        "step 2 (insert): range 40..60 is outside the data's 50 rows",
    ),
    (
        INSERT_10 + "  2:\n    operation: delete\n    start: -1\n    end: 3\n",
        "step 2 (delete): range -1..3 is outside the data's 50 rows",
    ),
    (
        INSERT_10 + "  2:\n    operation: replace\n    tags_start: 8\n    tags_end: 12\n"
        "    ids_start: 20\n    ids_end: 24\n",
        "step 2 (replace): replaces id 10, which is not live",
    ),
    (
        INSERT_10 + "  2:\n    operation: replace\n    tags_start: 0\n    tags_end: 2\n"
        "    ids_start: 48\n    ids_end: 51\n",
        "step 2 (replace): ids (rows) 48..51 is outside the data's 50 rows",
    ),
    (INSERT_10 + "  2:\n    operation: insert\n    start: 10\n", "step 2 (insert): needs start"),
    (INSERT_10 + "  3:\n    operation: search\n", "step 2 is missing"),
    (INSERT_10 + INSERT_10.replace("  1:", "  2:"), "step 2 (insert): id 0 is already live"),
]


@pytest.mark.parametrize(("steps", "message"), BAD)
def test_each_bad_runbook_is_refused_naming_the_step(tmp_path, steps, message):
    path = write(tmp_path, entry(steps, max_pts=20))
    with pytest.raises(RunbookError) as caught:
        read_runbook(path, "data", 50)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path} [data]: ")
    assert "\n" not in str(caught.value)


def test_missing_max_pts_and_bad_yaml(tmp_path):
    with pytest.raises(RunbookError, match=r"max_pts is missing"):
        read_runbook(write(tmp_path, "data:\n" + INSERT_10), "data", 50)
    with pytest.raises(RunbookError, match=r"line \d+: not valid YAML"):
        read_runbook(write(tmp_path, "data: [1,\n  2: {"), "data", 50)
    with pytest.raises(RunbookError, match="no such runbook file"):
        read_runbook(tmp_path / "absent.yaml", "data", 50)


def test_the_command_refuses_a_bad_runbook_before_anything_runs(tmp_path):
    steps = INSERT_10 + "  2:\n    operation: search\n  3:\n    operation: delete\n"
    steps += "    start: 20\n    end: 30\n"
    path = write(tmp_path, entry(steps, max_pts=20))
    out = tmp_path / "out"
    result = run_cli("stream", path, "words-10k", "-e", "hnsw", "-o", out)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path} [data]: step 3 (delete): deletes id 20, which was never inserted "
        "or is already deleted\n"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("engine", "params", "message"),
    [
        ("annoy", [], "engine annoy cannot run this runbook: it cannot change after it is "
         "built (step 1 inserts)"),
        ("faiss", ["-p", "factory=HNSW16,Flat"], "engine faiss cannot run this runbook: a "
         "faiss HNSW graph (HNSW16,Flat) cannot delete (step 3 deletes)"),
    ],
)  # fmt: skip
def test_an_engine_that_cannot_change_is_refused_in_one_line(tmp_path, engine, params, message):
    steps = INSERT_10 + "  2:\n    operation: search\n  3:\n    operation: delete\n"
    steps += "    start: 0\n    end: 5\n"
    path = write(tmp_path, entry(steps, max_pts=20))
    out = tmp_path / "out"
    result = run_cli("stream", path, "words-10k", "-e", engine, *params, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert not out.exists()


def test_an_insert_only_runbook_runs_on_an_index_that_cannot_delete(tmp_path):
    steps = INSERT_10.replace("end: 10", "end: 300") + "  2:\n    operation: search\n"
    path = write(tmp_path, entry(steps, max_pts=300))
    result = run_cli(
        "stream", path, "words-10k", "-e", "faiss", "-p", "factory=HNSW16,Flat",
        "-p", "efSearch=64", "-o", tmp_path / "out", "--max-queries", "20", "--runs", "1",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert '"operation": "search"' in result.stdout


def test_an_unknown_parameter_is_one_line(tmp_path):
    path = write(tmp_path, entry(INSERT_10, max_pts=20))
    result = run_cli("stream", path, "words-10k", "-e", "hnsw", "-p", "nope=1", "-o", tmp_path)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: engine hnsw has no parameter 'nope' (known: M, ef, ef_construction, seed)\n"
    )


def test_live_ids_are_sorted_and_rows_follow_them():
    live = LiveSet(10)
    live.row_of[[7, 2, 5]] = [1, 9, 4]
    live.count = 3
    assert live.ids().tolist() == [2, 5, 7]
    assert live.rows().tolist() == [9, 4, 1]
    assert np.array_equal(live.rows(np.array([7])), [1])
