"""``annkit datasets list`` and ``annkit datasets get``: tables, JSON, one plain progress
line per step off a terminal, and one-line errors with exit code 2 (unknown name with the
closest names, unreachable mirror, checksum mismatch, offline). Every transfer is served by
a local server on 127.0.0.1; nothing reaches the internet."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import WIDE, run_cli
from download_server import ServerState, serve, unused_port, write_small_dataset

from annkit.memory import format_size
from annkit.types import Dataset

NAME = "glove-25-angular"
FILE = f"{NAME}.hdf5"
#: the environment of every command here: no user settings, no proxy
CLEAN: dict[str, str | None] = {
    **WIDE,
    "ANNKIT_DATASETS_MIRROR": None,
    "ANNKIT_OFFLINE": None,
    "http_proxy": None,
    "HTTP_PROXY": None,
}


@pytest.fixture()
def served(tmp_path: Path, words10k: Dataset) -> Iterator[ServerState]:
    root = tmp_path / "served"
    root.mkdir()
    write_small_dataset(root / FILE, words10k)
    with serve(root) as state:
        yield state


def env(folder: Path, **extra: str | None) -> dict[str, str | None]:
    return {**CLEAN, "ANNKIT_DATA_DIR": str(folder), **extra}


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_list_shows_the_catalogue(tmp_path):
    result = run_cli("datasets", "list", env=env(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ann-benchmarks datasets"
    glove = next(line for line in lines if " glove-25-angular " in line)
    assert glove.split("│")[1:-1] == [
        " glove-25-angular             ",
        "     25 ",
        " angular   ",
        " 1,183,514 ",
        "  10,000 ",
        "   121 MB ",
        "          ",
    ]
    assert "unusable" in next(line for line in lines if " kosarak-jaccard " in line)


def test_list_json_marks_a_downloaded_dataset(served, tmp_path):
    folder = tmp_path / "data"
    assert run_cli("datasets", "get", NAME, "--mirror", served.url, env=env(folder)).exit_code == 0
    result = run_cli("datasets", "list", "--json", env=env(folder))
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows[NAME]["downloaded"] is True
    assert rows[NAME]["path"] == str(folder / FILE)
    assert rows[NAME]["recorded_sha256"] == hashlib.sha256((folder / FILE).read_bytes()).hexdigest()
    assert rows["sift-128-euclidean"]["downloaded"] is False
    assert rows["sift-128-euclidean"]["url"] == "https://ann-benchmarks.com/sift-128-euclidean.hdf5"


def test_get_prints_one_line_per_step_and_a_summary(served, tmp_path):
    folder = tmp_path / "data"
    result = run_cli("datasets", "get", NAME, "--dir", folder, "--mirror", served.url, env=CLEAN)
    assert result.exit_code == 0, result.output
    size = (served.root / FILE).stat().st_size
    assert result.stderr.splitlines() == [
        f"downloading {FILE} of {format_size(size)} from {served.url}/{FILE}",
        f"checking the SHA-256 of {FILE}",
        f"checking the structure of {FILE}",
    ]
    assert "recorded now (none was known)" in result.stdout
    assert "train 300 x 384, test 20, top-10 neighbors, angular" in result.stdout
    assert files_in(folder) == ["annkit-datasets.json", FILE]
    # quiet: no progress lines
    again = run_cli("datasets", "get", NAME, "--dir", folder, "-q", env=CLEAN)
    assert again.exit_code == 0 and again.stderr == ""
    assert "already in the directory (checked, not downloaded)" in again.stdout
    assert "matches the one recorded at the first download" in again.stdout


def test_a_download_cut_at_half_resumes_and_finishes_with_the_right_checksum(served, tmp_path):
    folder = tmp_path / "data"
    source = served.root / FILE
    size = source.stat().st_size
    half = size // 2
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    served.cut[FILE] = half
    args = ("datasets", "get", NAME, "--mirror", served.url, "--sha256", expected)
    cut = run_cli(*args, env=env(folder))
    assert cut.exit_code == 2
    assert cut.stderr.splitlines()[-1] == (
        f"Error: transfer of {served.url}/{FILE} interrupted after {half:,} of {size:,} bytes "
        f"(the connection closed early); {FILE}.part was kept: run the same command again to "
        "resume"
    )
    assert files_in(folder) == [f"{FILE}.part", f"{FILE}.part.json"]
    resumed = run_cli(*args, "--json", env=env(folder))
    assert resumed.exit_code == 0, resumed.output
    got = json.loads(resumed.stdout)
    assert (got["resumed_from"], got["sha256"], got["sha256_check"]) == (half, expected, "--sha256")
    assert served.requests[-1] == (FILE, f"bytes={half}-")
    assert hashlib.sha256((folder / FILE).read_bytes()).hexdigest() == expected
    assert files_in(folder) == ["annkit-datasets.json", FILE]


def test_a_checksum_mismatch_is_one_line_and_leaves_nothing(served, tmp_path):
    folder = tmp_path / "data"
    actual = hashlib.sha256((served.root / FILE).read_bytes()).hexdigest()
    result = run_cli(
        "datasets", "get", NAME, "--mirror", served.url, "--sha256", "F" * 64, env=env(folder)
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: {FILE}: checksum mismatch: SHA-256 {actual} but --sha256 says {'f' * 64}; "
        "the download was removed"
    )
    assert files_in(folder) == []


def test_a_corrupted_file_is_refused_and_leaves_nothing(served, tmp_path):
    folder = tmp_path / "data"
    data = bytearray((served.root / FILE).read_bytes())
    (served.root / FILE).write_bytes(bytes(data[: len(data) // 2]))  # truncated HDF5
    result = run_cli("datasets", "get", NAME, "--mirror", served.url, env=env(folder))
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith(f"Error: refused: {FILE}: not an HDF5 file or damaged (")
    assert line.endswith("; the download was removed")
    assert files_in(folder) == []


def test_an_unknown_name_suggests_the_closest(tmp_path):
    result = run_cli("datasets", "get", "sift-128-euclidian", env=env(tmp_path / "data"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: unknown dataset 'sift-128-euclidian': not in the ann-benchmarks catalogue nor "
        f"downloaded in {tmp_path / 'data'} (did you mean sift-128-euclidean, "
        "mnist-784-euclidean, gist-960-euclidean? 'annkit datasets list' shows the catalogue; "
        "a URL works too)\n"
    )


def test_an_unreachable_mirror_is_one_line(tmp_path):
    port = unused_port()
    folder = tmp_path / "data"
    result = run_cli(
        "datasets", "get", NAME, env=env(folder, ANNKIT_DATASETS_MIRROR=f"http://127.0.0.1:{port}")
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: cannot reach http://127.0.0.1:{port}/{FILE} (mirror from --mirror or "
        "ANNKIT_DATASETS_MIRROR): connection refused"
    )
    assert files_in(folder) == []


def test_offline_uses_only_the_directory(served, tmp_path):
    folder = tmp_path / "data"
    refused = run_cli("datasets", "get", NAME, "--offline", "--mirror", served.url, env=env(folder))
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"Error: {NAME} is not in {folder} and offline mode (--offline or ANNKIT_OFFLINE) "
        "forbids downloading it\n"
    )
    assert served.requests == []
    assert run_cli("datasets", "get", NAME, "--mirror", served.url, env=env(folder)).exit_code == 0
    served.requests.clear()
    offline = run_cli("datasets", "get", NAME, "--json", env=env(folder, ANNKIT_OFFLINE="1"))
    assert offline.exit_code == 0, offline.output
    assert json.loads(offline.stdout)["transferred"] is False
    assert served.requests == []


def test_a_downloaded_name_works_as_a_dataset(served, tmp_path):
    folder = tmp_path / "data"
    missing = run_cli("info", NAME, env=env(folder))
    assert missing.exit_code == 2
    assert missing.stderr == (
        f"Error: {NAME}: no such file, and not a bundled dataset (bundled: words-10k, "
        f"words-10k-labelled); it is in the ann-benchmarks catalogue: annkit datasets get {NAME}\n"
    )
    assert run_cli("datasets", "get", NAME, "--mirror", served.url, env=env(folder)).exit_code == 0
    result = run_cli("info", NAME, "--json", env=env(folder))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(folder / FILE)
    groundtruth = run_cli(
        "groundtruth", NAME, "-k", "5", "-o", tmp_path / "gt.hdf5", "-q", env=env(folder)
    )
    assert groundtruth.exit_code == 0, groundtruth.output


def test_max_vectors_needs_a_binary_file(tmp_path):
    result = run_cli("datasets", "get", NAME, "--max-vectors", "10", env=env(tmp_path / "d"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --max-vectors crops only .fbin, .u8bin, .i8bin files (a header, then rows); "
        f"{FILE} is not one\n"
    )
