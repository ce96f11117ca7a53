"""Labels on the command line: ``annkit groundtruth`` with label files and label groups,
``annkit info``'s label summary, and bad label input (one line, exit code 2, no output)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner, Result

from annkit.cli.main import cli
from annkit.io import load_dataset, write_dataset_hdf5, write_vectors
from annkit.io.labels import write_spmat
from annkit.labels import Labels


def run(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args], prog_name="annkit", env=env)


def spmat_bytes(nrow: int, ncol: int, indptr, indices, nnz: int | None = None) -> bytes:
    indices = np.asarray(indices, dtype="<i4")
    nnz = len(indices) if nnz is None else nnz
    return (
        np.array([nrow, ncol, nnz], dtype="<i8").tobytes()
        + np.asarray(indptr, dtype="<i8").tobytes()
        + indices.tobytes()
        + np.ones(len(indices), dtype="<f4").tobytes()
    )


N_BASE, N_QUERIES = 60, 6


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """b.fbin / q.fbin (euclidean) with b.spmat / q.spmat: label 0 on even rows, label 1 on
    rows below 3, label 2 nowhere; queries filter on [0], [0, 1], [2], [], [1], [0]."""
    rng = np.random.default_rng(9)
    write_vectors(tmp_path / "b.fbin", rng.standard_normal((N_BASE, 4)).astype(np.float32))
    write_vectors(tmp_path / "q.fbin", rng.standard_normal((N_QUERIES, 4)).astype(np.float32))
    base_rows = [[0] * (i % 2 == 0) + [1] * (i < 3) for i in range(N_BASE)]
    write_spmat(tmp_path / "b.spmat", Labels.from_rows(base_rows, 3))
    write_spmat(tmp_path / "q.spmat", Labels.from_rows([[0], [0, 1], [2], [], [1], [0]], 3))
    return tmp_path


def groundtruth(folder: Path, *extra: object) -> Result:
    return run(
        "groundtruth",
        folder / "b.fbin",
        folder / "q.fbin",
        "--metric",
        "euclidean",
        "-k",
        5,
        "--threads",
        1,
        "-o",
        folder / "out.hdf5",
        "-q",
        *extra,
    )


def test_groundtruth_with_label_files(files: Path):
    result = groundtruth(
        files, "--base-labels", files / "b.spmat", "--query-labels", files / "q.spmat", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["filtered_queries"] == 5 and summary["short_queries"] == 3
    written = load_dataset(files / "out.hdf5")
    assert written.query_labels is not None and written.base_labels is not None
    assert written.query_labels.filters() == [(0,), (0, 1), (2,), (), (1,), (0,)]
    assert written.neighbors is not None
    # [0, 1]: rows 0 and 2 pass, nearest first, then padding
    assert sorted(written.neighbors[1, :2].tolist()) == [0, 2]
    assert written.neighbors[1, 2:].tolist() == [-1] * 3
    assert written.neighbors[2].tolist() == [-1] * 5  # label 2: nobody passes
    assert set(written.neighbors[0].tolist()) <= set(range(0, N_BASE, 2))


def test_groundtruth_of_a_labelled_dataset_and_its_table(tmp_path: Path):
    result = run(
        "groundtruth", "words-10k-labelled", "-k", 10, "--max-queries", 50, "-o", tmp_path / "g.h5"
    )
    assert result.exit_code == 0, result.output
    assert "filtered queries" in result.stdout and "fewer than k passing" in result.stdout


def test_info_shows_labels_and_share_passing():
    result = run("info", "words-10k-labelled", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "labels per vector" in out and "mean 3.03, max 42" in out
    assert "1,000 (32.1% unfiltered)" in out
    assert "share passing" in out and "min 0.61%" in out
    data = json.loads(run("info", "words-10k-labelled", "--json").stdout)
    assert data["labels"]["n_labels"] == 56
    assert data["labels"]["selectivity"]["unfiltered_share"] == pytest.approx(0.321)


def test_info_with_label_files_and_of_a_spmat(files: Path):
    result = run(
        "info",
        files / "b.fbin",
        "--base-labels",
        files / "b.spmat",
        "--query-labels",
        files / "q.spmat",
        "--json",
    )
    assert result.exit_code == 0, result.output
    labels = json.loads(result.stdout)["labels"]
    assert labels["n_labels"] == 3 and labels["selectivity"]["queries_none_pass"] == 1
    spmat = json.loads(run("info", files / "b.spmat", "--json").stdout)
    assert spmat["kind"] == "labels" and spmat["rows"] == N_BASE and spmat["labels"] == 3


def label_group_file(path: Path, base_rows: list[list[int]], n_labels: int = 3) -> Path:
    rng = np.random.default_rng(2)
    write_dataset_hdf5(
        path,
        base=rng.standard_normal((len(base_rows), 4)).astype(np.float32),
        queries=rng.standard_normal((3, 4)).astype(np.float32),
        metric="euclidean",
        base_labels=Labels.from_rows(base_rows, n_labels),
        query_labels=Labels.from_rows([[0], [], [1]], n_labels),
    )
    return path


BAD_SPMAT = {
    "out of range": (
        spmat_bytes(N_BASE, 3, np.arange(N_BASE + 1), [0] * (N_BASE - 1) + [3]),
        "Error: bad.spmat: label id 3 (row 59) is out of range: there are 3 labels (ids 0..2)",
    ),
    "rows differ": (
        spmat_bytes(4, 3, [0, 1, 2, 3, 4], [0, 1, 2, 0]),
        "Error: bad.spmat: 4 rows of labels for 60 vectors",
    ),
    "truncated": (
        spmat_bytes(N_BASE, 3, np.arange(N_BASE + 1), [0] * N_BASE)[:-7],
        "Error: bad.spmat: truncated file: the header claims 60 rows, 3 labels, 60 nonzeros "
        "(992 bytes) but the file has only 985 bytes",
    ),
    "wrong nnz": (
        spmat_bytes(N_BASE, 3, np.arange(N_BASE + 1), [0] * N_BASE, nnz=59),
        "Error: bad.spmat: file size 992 bytes does not match the header's 60 rows, 3 labels, "
        "59 nonzeros (984 bytes expected: wrong nnz or damaged)",
    ),
    "not monotonic": (
        spmat_bytes(N_BASE, 3, [0, 2, 1, *range(3, N_BASE + 1)], [0] * N_BASE),
        "Error: bad.spmat: indptr is not monotonic: it decreases after row 1 (2 then 1) (damaged)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPMAT))
def test_bad_spmat_groundtruth(files: Path, case: str):
    content, message = BAD_SPMAT[case]
    (files / "bad.spmat").write_bytes(content)
    result = groundtruth(files, "--base-labels", files / "bad.spmat")
    assert result.exit_code == 2
    assert result.stderr == message + "\n" and result.stdout == ""
    assert not (files / "out.hdf5").exists()
    assert [p.name for p in files.iterdir() if "out" in p.name] == []  # nothing half-written


@pytest.mark.parametrize("case", sorted(BAD_SPMAT))
def test_bad_spmat_info(files: Path, case: str):
    content, message = BAD_SPMAT[case]
    (files / "bad.spmat").write_bytes(content)
    result = run("info", files / "b.fbin", "--base-labels", files / "bad.spmat")
    assert result.exit_code == 2
    assert result.stderr == message + "\n" and result.stdout == ""


def _damage_group(path: Path, case: str) -> None:
    with h5py.File(path, "a") as handle:
        group = handle["train_labels"]
        if case == "out of range":
            indices = group["indices"][:]
            indices[-1] = 7
            group["indices"][...] = indices
        elif case == "rows differ":
            del group["indptr"]
            group.create_dataset("indptr", data=np.array([0, 1, 2, 3, 4, 5], dtype=np.int64))
            del group["indices"]
            group.create_dataset("indices", data=np.zeros(5, dtype=np.int32))
            group.attrs["shape"] = [5, 3]
        elif case == "wrong nnz":
            del group["indices"]
            group.create_dataset("indices", data=np.zeros(3, dtype=np.int32))
        elif case == "not monotonic":
            indptr = group["indptr"][:]
            indptr[1], indptr[2] = indptr[2] + 1, indptr[1]
            group["indptr"][...] = indptr
        elif case == "truncated":
            del group["indices"]


BAD_GROUP = {
    "out of range": "Error: g.hdf5: train_labels: label id 7 (row 7) is out of range: "
    "there are 3 labels (ids 0..2)",
    "rows differ": "Error: g.hdf5: train_labels: 5 rows of labels for 8 vectors",
    "wrong nnz": "Error: g.hdf5: train_labels: indptr ends at 8 but there are 3 label ids "
    "(wrong nnz: damaged)",
    "not monotonic": "Error: g.hdf5: train_labels: indptr is not monotonic: it decreases "
    "after row 1 (3 then 1) (damaged)",
    "truncated": "Error: g.hdf5: train_labels: missing dataset 'indices' (the group holds indptr)",
}


@pytest.mark.parametrize("case", sorted(BAD_GROUP))
@pytest.mark.parametrize("command", ["groundtruth", "info"])
def test_bad_label_group(tmp_path: Path, case: str, command: str):
    path = label_group_file(tmp_path / "g.hdf5", [[0]] * 8)
    _damage_group(path, case)
    args = ["-k", 3, "-o", tmp_path / "out.hdf5"] if command == "groundtruth" else []
    result = run(command, path, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr == BAD_GROUP[case] + "\n" and result.stdout == ""
    assert not (tmp_path / "out.hdf5").exists()


def test_dataset_options_pass_label_files_to_commands_that_take_them():
    import click

    from annkit.cli.options import dataset_options

    seen: dict = {}

    @click.command()
    @dataset_options
    def takes(**kwargs) -> None:
        seen.update(kwargs)

    @click.command()
    @dataset_options
    def ignores(
        data, queries_file, groundtruth_file, weights_file, metric, max_queries, dataset_name
    ) -> None:
        seen["ran"] = True

    result = CliRunner().invoke(takes, ["d.hdf5", "--base-labels", "b.spmat"])
    assert result.exit_code == 0, result.output
    assert seen["base_labels_file"] == "b.spmat" and seen["query_labels_file"] is None
    assert CliRunner().invoke(ignores, ["d.hdf5"]).exit_code == 0 and seen["ran"]
    refused = CliRunner().invoke(ignores, ["d.hdf5", "--query-labels", "q.spmat"])
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == (
        "Error: --query-labels is not supported by this command yet"
    )


def test_a_bundle_keeps_its_base_labels(tmp_path: Path):
    from annkit.bundle import LABELS_FILE, load_bundle

    path = label_group_file(tmp_path / "g.hdf5", [[0], [1, 2], [], [0, 2]] * 5)
    result = run("build", path, "-e", "flat", "--threads", 1, "-o", tmp_path / "idx")
    assert result.exit_code == 0, result.output
    bundle = load_bundle(tmp_path / "idx")
    labels = bundle.base_labels()
    assert labels is not None and labels.filters() == [(0,), (1, 2), (), (0, 2)] * 5
    assert LABELS_FILE in bundle.manifest["files"]
    assert bundle.index_bytes == sum(
        entry["bytes"] for name, entry in bundle.manifest["files"].items() if name != LABELS_FILE
    )
    info = run("info", tmp_path / "idx", env={"COLUMNS": "200"})
    assert f"kept ({LABELS_FILE})" in info.stdout
    damaged = tmp_path / "idx" / LABELS_FILE
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")
    described = run("info", tmp_path / "idx")  # info reads the manifest only
    assert described.exit_code == 0
    broken = run("evaluate", tmp_path / "idx", path, "-k", 3)
    assert broken.exit_code == 2
    assert (
        broken.stderr == f"Error: {tmp_path / 'idx'}: payload file {LABELS_FILE} fails its "
        "sha256 check (damaged)\n"
    )
