"""Downloads by name or URL (annkit.download, annkit.catalogue): resume with Range, size /
SHA-256 / structure checks, nothing half-written at the destination, the registry of
recorded checksums, mirrors, offline mode, --max-vectors crops, and downloaded names
resolving wherever a dataset is accepted. Every transfer is served by a local server on
127.0.0.1 (tests/download_server.py); nothing reaches the internet."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from download_server import ServerState, serve, unused_port, write_small_dataset

from annkit.catalogue import (
    REGISTRY_NAME,
    catalogue,
    data_dir,
    find_entry,
    read_registry,
)
from annkit.download import DownloadError, DownloadProgress, get_dataset, list_catalogue
from annkit.errors import DatasetError, InputError
from annkit.io import load_dataset, read_vectors, resolve_dataset_path, write_vectors
from annkit.memory import format_size
from annkit.types import Dataset

NAME = "glove-25-angular"
FILE = f"{NAME}.hdf5"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the user's download directory, mirror or offline setting, or a proxy."""
    monkeypatch.setenv("ANNKIT_DATA_DIR", str(tmp_path / "default-dir"))
    for name in ("ANNKIT_DATASETS_MIRROR", "ANNKIT_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def served(tmp_path: Path, words10k: Dataset) -> Iterator[ServerState]:
    """A server whose folder holds a small real dataset under a catalogue name."""
    root = tmp_path / "served"
    root.mkdir()
    write_small_dataset(root / FILE, words10k)
    with serve(root) as state:
        yield state


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Files in ``folder`` other than the registry."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != REGISTRY_NAME)


# --- the catalogue ---


def test_catalogue_has_the_ann_benchmarks_datasets():
    names = {entry.name for entry in catalogue()}
    for name in (
        "glove-25-angular",
        "glove-200-angular",
        "sift-128-euclidean",
        "nytimes-256-angular",
        "fashion-mnist-784-euclidean",
        "gist-960-euclidean",
        "deep-image-96-angular",
        "lastfm-64-dot",
        "coco-i2i-512-angular",
        "coco-t2i-512-angular",
        "mnist-784-euclidean",
        "nytimes-16-angular",
        "kosarak-jaccard",
        "movielens10m-jaccard",
    ):
        assert name in names
    glove = find_entry("glove-25-angular")
    assert glove is not None
    assert glove.url == "https://ann-benchmarks.com/glove-25-angular.hdf5"
    assert (glove.dim, glove.metric, glove.train, glove.test) == (25, "angular", 1_183_514, 10_000)
    assert glove.sha256 is None and glove.readable
    coco = find_entry("coco-t2i-512-angular")
    assert coco is not None and coco.url.startswith("https://github.com/fabiocarrara/")
    kosarak = find_entry("kosarak-jaccard")
    assert kosarak is not None and not kosarak.readable


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANNKIT_DATA_DIR", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    monkeypatch.delenv("ANNKIT_DATA_DIR")
    assert data_dir() == Path.home() / ".cache" / "annkit" / "datasets"
    assert data_dir(tmp_path / "x") == tmp_path / "x"


# --- a download and what it leaves ---


def test_catalogue_name_from_a_mirror_is_verified_recorded_and_resolvable(served, tmp_path):
    folder = tmp_path / "data"
    reports: list[DownloadProgress] = []
    got = get_dataset(NAME, directory=folder, mirror=served.url, progress=reports.append)
    source = served.root / FILE
    assert got.path == folder / FILE
    assert got.sha256 == sha256_of(source) == sha256_of(got.path)
    assert got.size == source.stat().st_size
    assert (got.transferred, got.resumed_from, got.sha256_check) == (True, 0, "recorded")
    assert got.structure == "train 300 x 384, test 20, top-10 neighbors, angular"
    assert got.url == f"{served.url}/{FILE}"
    assert leftovers(folder) == [FILE]
    record = read_registry(folder)[NAME]
    assert (record.file, record.sha256, record.size) == (FILE, got.sha256, got.size)
    # progress: one message per step, then byte counts up to the total
    steps = [report.step for report in reports if report.message]
    assert steps == ["download", "sha256", "structure"]
    assert reports[0].message == (
        f"downloading {FILE} of {format_size(got.size)} from {served.url}/{FILE}"
    )
    downloads = [r for r in reports if r.step == "download"]
    assert downloads[-1].done == downloads[-1].total == got.size
    # a second get checks the file against the recorded checksum, without a transfer
    served.requests.clear()
    again = get_dataset(NAME, directory=folder, mirror=served.url)
    assert (again.transferred, again.sha256_check, again.sha256) == (False, "registry", got.sha256)
    assert served.requests == []


def test_downloaded_name_works_wherever_a_dataset_is_accepted(served, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    with pytest.raises(DatasetError, match="in the ann-benchmarks catalogue: annkit datasets get"):
        resolve_dataset_path(NAME)
    monkeypatch.setenv("ANNKIT_DATA_DIR", str(folder))
    get_dataset(NAME, mirror=served.url)
    assert resolve_dataset_path(NAME) == folder / FILE
    dataset = load_dataset(NAME)
    assert dataset.base.shape == (300, 384) and dataset.metric == "angular"
    assert dataset.name == NAME


def test_url_download_is_named_after_its_file(served, tmp_path):
    folder = tmp_path / "data"
    (served.root / "mine.hdf5").write_bytes((served.root / FILE).read_bytes())
    got = get_dataset(f"{served.url}/mine.hdf5", directory=folder)
    assert got.name == "mine" and got.path == folder / "mine.hdf5"
    assert read_registry(folder)["mine"].url == f"{served.url}/mine.hdf5"
    # a name only the registry knows is found again (offline too)
    assert get_dataset("mine", directory=folder, offline=True).path == folder / "mine.hdf5"


# --- resume ---


def test_a_transfer_cut_at_half_resumes_with_range_and_the_right_checksum(served, tmp_path):
    folder = tmp_path / "data"
    source = served.root / FILE
    size = source.stat().st_size
    half = size // 2
    expected = sha256_of(source)
    served.cut[FILE] = half
    with pytest.raises(DownloadError) as caught:
        get_dataset(NAME, directory=folder, mirror=served.url, sha256=expected)
    assert str(caught.value) == (
        f"transfer of {served.url}/{FILE} interrupted after {half:,} of {size:,} bytes "
        f"(the connection closed early); {FILE}.part was kept: run the same command again "
        "to resume"
    )
    assert leftovers(folder) == [f"{FILE}.part", f"{FILE}.part.json"]
    assert (folder / f"{FILE}.part").stat().st_size == half
    served.requests.clear()
    got = get_dataset(NAME, directory=folder, mirror=served.url, sha256=expected)
    assert served.requests == [(FILE, f"bytes={half}-")]
    assert got.resumed_from == half
    assert got.sha256 == expected and got.sha256_check == "--sha256"
    assert leftovers(folder) == [FILE]


def test_a_file_changed_on_the_server_is_downloaded_again_not_spliced(served, tmp_path, words10k):
    folder = tmp_path / "data"
    served.cut[FILE] = 100_000
    with pytest.raises(DownloadError, match="interrupted after 100,000 of"):
        get_dataset(NAME, directory=folder, mirror=served.url)
    write_small_dataset(served.root / FILE, words10k, n_base=250)  # a new version
    served.requests.clear()
    got = get_dataset(NAME, directory=folder, mirror=served.url)
    assert served.requests == [(FILE, "bytes=100000-")]  # with If-Range: answered in full
    assert got.resumed_from == 0
    assert got.sha256 == sha256_of(served.root / FILE)
    assert got.structure.startswith("train 250 x 384")
    assert leftovers(folder) == [FILE]


def test_ctrl_c_keeps_the_part_and_the_next_get_resumes(served, tmp_path):
    folder = tmp_path / "data"
    big = served.root / "big.fbin"
    rows = np.random.default_rng(5).standard_normal((3000, 128)).astype(np.float32)
    write_vectors(big, rows)  # 1.5 MiB: two chunks

    def interrupt(report: DownloadProgress) -> None:
        if report.step == "download" and report.done > 0 and not report.message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        get_dataset(f"{served.url}/big.fbin", directory=folder, progress=interrupt)
    kept = (folder / "big.fbin.part").stat().st_size
    assert 0 < kept < big.stat().st_size
    got = get_dataset(f"{served.url}/big.fbin", directory=folder)
    assert got.resumed_from == kept
    assert got.sha256 == sha256_of(big)
    assert leftovers(folder) == ["big.fbin"]


def test_a_folder_mirror_serves_and_resumes(served, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    source = served.root / FILE
    (folder / f"{FILE}.part").write_bytes(source.read_bytes()[:1234])
    got = get_dataset(NAME, directory=folder, mirror=str(served.root))
    assert got.url == str(source)
    assert got.resumed_from == 1234  # no note beside the .part: resumed by size
    assert got.sha256 == sha256_of(source)
    (folder / FILE).unlink()
    again = get_dataset(NAME, directory=folder, mirror=source.parent.as_uri())
    assert again.url == source.as_uri() and again.sha256 == got.sha256
    assert served.requests == []


def test_a_server_without_range_support_starts_again(served, tmp_path):
    folder = tmp_path / "data"
    source = served.root / FILE
    served.cut[FILE] = 1000
    with pytest.raises(DownloadError, match="interrupted after 1,000 of"):
        get_dataset(NAME, directory=folder, mirror=served.url)
    served.honour_range = False
    got = get_dataset(NAME, directory=folder, mirror=served.url)
    assert got.resumed_from == 0
    assert got.sha256 == sha256_of(source)
    assert leftovers(folder) == [FILE]


def test_a_complete_part_left_behind_is_verified_without_a_transfer(served, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    source = served.root / FILE
    (folder / f"{FILE}.part").write_bytes(source.read_bytes())
    got = get_dataset(NAME, directory=folder, mirror=served.url)
    assert got.sha256 == sha256_of(source)
    assert served.requests == [(FILE, f"bytes={source.stat().st_size}-")]  # answered 416


# --- refusals: nothing at the destination ---


def test_a_wrong_checksum_is_refused_and_leaves_nothing(served, tmp_path):
    folder = tmp_path / "data"
    actual = sha256_of(served.root / FILE)
    with pytest.raises(DownloadError) as caught:
        get_dataset(NAME, directory=folder, mirror=served.url, sha256="0" * 64)
    assert str(caught.value) == (
        f"{FILE}: checksum mismatch: SHA-256 {actual} but --sha256 says {'0' * 64}; "
        "the download was removed"
    )
    assert leftovers(folder) == []
    assert not (folder / REGISTRY_NAME).exists()


def test_a_file_differing_from_its_recorded_checksum_is_refused(served, tmp_path, words10k):
    folder = tmp_path / "data"
    first = get_dataset(NAME, directory=folder, mirror=served.url)
    (folder / FILE).unlink()
    write_small_dataset(served.root / FILE, words10k, n_base=200)  # the server's file changed
    with pytest.raises(DownloadError) as caught:
        get_dataset(NAME, directory=folder, mirror=served.url)
    assert "checksum mismatch" in str(caught.value)
    assert f"the SHA-256 recorded at its first download says {first.sha256}" in str(caught.value)
    assert leftovers(folder) == []


def test_a_truncated_hdf5_is_refused_and_leaves_nothing(served, tmp_path):
    folder = tmp_path / "data"
    data = (served.root / FILE).read_bytes()
    (served.root / FILE).write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(DownloadError) as caught:
        get_dataset(NAME, directory=folder, mirror=served.url)
    message = str(caught.value)
    assert message.startswith(f"refused: {FILE}: not an HDF5 file or damaged (")
    assert message.endswith("; the download was removed")
    assert ".part" not in message
    assert leftovers(folder) == []


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("no-distances", "missing dataset 'distances'"),
        ("no-neighbors", "missing dataset 'neighbors'"),
        ("short-distances", "'distances' has shape (20, 5) but 'neighbors' has shape (20, 10)"),
        ("jaccard", "'distance' attribute"),
        ("not-hdf5", "not an HDF5 file or damaged"),
    ],
)
def test_a_file_of_the_wrong_structure_is_refused(served, tmp_path, damage, words):
    import h5py

    path = served.root / FILE
    if damage == "not-hdf5":
        path.write_bytes(b"<html>not found</html>")
    else:
        with h5py.File(path, "a") as handle:
            if damage == "no-distances":
                del handle["distances"]
            elif damage == "no-neighbors":
                del handle["neighbors"]
            elif damage == "short-distances":
                del handle["distances"]
                handle["distances"] = np.zeros((20, 5), dtype=np.float32)
            else:
                handle.attrs["distance"] = "jaccard"
    folder = tmp_path / "data"
    with pytest.raises(DownloadError, match="^refused: ") as caught:
        get_dataset(NAME, directory=folder, mirror=served.url)
    assert words in str(caught.value)
    assert leftovers(folder) == []


def test_an_existing_file_failing_its_checksum_is_kept_and_reported(served, tmp_path):
    folder = tmp_path / "data"
    got = get_dataset(NAME, directory=folder, mirror=served.url)
    with pytest.raises(DownloadError, match="delete it to download it again"):
        get_dataset(NAME, directory=folder, mirror=served.url, sha256="a" * 64)
    assert sha256_of(got.path) == got.sha256


# --- bad input: one line ---


def test_an_unreachable_mirror_is_one_line(tmp_path):
    port = unused_port()
    with pytest.raises(DownloadError) as caught:
        get_dataset(NAME, directory=tmp_path / "data", mirror=f"http://127.0.0.1:{port}")
    assert str(caught.value) == (
        f"cannot reach http://127.0.0.1:{port}/{FILE} (mirror from --mirror or "
        "ANNKIT_DATASETS_MIRROR): connection refused"
    )
    assert leftovers(tmp_path / "data") == []


def test_the_mirror_comes_from_the_environment(served, tmp_path, monkeypatch):
    monkeypatch.setenv("ANNKIT_DATASETS_MIRROR", served.url + "/")
    got = get_dataset(NAME, directory=tmp_path / "data")
    assert got.url == f"{served.url}/{FILE}"


def test_a_missing_file_on_the_server_is_one_line(served, tmp_path):
    with pytest.raises(DownloadError) as caught:
        get_dataset("sift-128-euclidean", directory=tmp_path / "data", mirror=served.url)
    assert str(caught.value) == (
        f"{served.url}/sift-128-euclidean.hdf5 (mirror from --mirror or "
        "ANNKIT_DATASETS_MIRROR): HTTP 404 Not Found"
    )


def test_an_unknown_name_suggests_the_closest(tmp_path):
    with pytest.raises(InputError) as caught:
        get_dataset("glove-25-angualr", directory=tmp_path / "data")
    assert str(caught.value) == (
        "unknown dataset 'glove-25-angualr': not in the ann-benchmarks catalogue nor "
        f"downloaded in {tmp_path / 'data'} (did you mean glove-25-angular, glove-50-angular, "
        "glove-200-angular? 'annkit datasets list' shows the catalogue; a URL works too)"
    )


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("words-10k", {}, "words-10k is bundled with annkit: there is nothing to download"),
        (
            "kosarak-jaccard",
            {},
            "kosarak-jaccard holds sparse sets under the jaccard metric: annkit cannot use "
            "it, so it is not downloaded",
        ),
        ("glove-25-angular", {"sha256": "abc"}, "--sha256 must be 64 hexadecimal digits"),
        ("glove-25-angular", {"max_vectors": 10}, "--max-vectors crops only .fbin"),
        ("http://127.0.0.1:9/x.txt", {}, "x.txt: annkit downloads only .hdf5, .h5, .fbin"),
        ("http://127.0.0.1:9/", {}, "the URL names no file"),
    ],
)
def test_bad_requests_are_refused_before_any_transfer(tmp_path, spec, options, message):
    with pytest.raises(InputError) as caught:
        get_dataset(spec, directory=tmp_path / "data", **options)
    assert message in str(caught.value)
    assert not (tmp_path / "data").exists()


# --- offline ---


def test_offline_uses_only_the_directory(served, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    with pytest.raises(DownloadError) as caught:
        get_dataset(NAME, directory=folder, mirror=served.url, offline=True)
    assert str(caught.value) == (
        f"{NAME} is not in {folder} and offline mode (--offline or ANNKIT_OFFLINE) forbids "
        "downloading it"
    )
    assert served.requests == []
    get_dataset(NAME, directory=folder, mirror=served.url)
    served.requests.clear()
    monkeypatch.setenv("ANNKIT_OFFLINE", "1")
    got = get_dataset(NAME, directory=folder, mirror=served.url)
    assert not got.transferred and got.sha256_check == "registry"
    assert served.requests == []


# --- --max-vectors ---


def test_max_vectors_reads_a_prefix_and_rewrites_the_header(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    vectors = np.random.default_rng(3).standard_normal((100, 8)).astype(np.float32)
    write_vectors(root / "base.fbin", vectors)
    folder = tmp_path / "data"
    with serve(root) as state:
        got = get_dataset(f"{state.url}/base.fbin", directory=folder, max_vectors=10)
        assert state.requests == [("base.fbin", "bytes=0-7"), ("base.fbin", "bytes=0-327")]
    assert got.path == folder / "base.first-10.fbin"
    assert got.name == "base.first-10"
    assert got.size == 8 + 10 * 8 * 4
    assert got.structure == "10 x 8 float32"
    np.testing.assert_array_equal(read_vectors(got.path), vectors[:10])


def test_max_vectors_beyond_the_file_keeps_it_whole_and_resumes(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    vectors = (np.arange(60 * 4) % 251).astype(np.uint8).reshape(60, 4)
    write_vectors(root / "v.u8bin", vectors)
    folder = tmp_path / "data"
    with serve(root) as state:
        state.cut["v.u8bin"] = 100
        with pytest.raises(DownloadError, match="interrupted after 100 of 248 bytes"):
            get_dataset(f"{state.url}/v.u8bin", directory=folder, max_vectors=1000)
        got = get_dataset(f"{state.url}/v.u8bin", directory=folder, max_vectors=1000)
        assert state.requests[-1] == ("v.u8bin", "bytes=100-247")
    assert got.resumed_from == 100
    np.testing.assert_array_equal(read_vectors(got.path), vectors)


# --- list ---


def test_list_marks_downloaded_datasets(served, tmp_path):
    folder = tmp_path / "data"
    assert not any(row.path for row in list_catalogue(folder))
    got = get_dataset(NAME, directory=folder, mirror=served.url)
    rows = {row.entry.name: row for row in list_catalogue(folder)}
    assert rows[NAME].path == got.path and rows[NAME].sha256 == got.sha256
    assert rows[NAME].to_dict()["downloaded"] is True
    assert json.loads(json.dumps(rows["sift-128-euclidean"].to_dict()))["downloaded"] is False


def test_a_damaged_registry_is_one_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / REGISTRY_NAME).write_text("{not json")
    with pytest.raises(InputError, match="damaged download registry"):
        read_registry(folder)


def test_binary_files_are_checked_against_their_header(tmp_path):
    from annkit.download import check_dataset_structure

    ids = np.arange(12, dtype="<i4").reshape(3, 4)
    header = np.array([3, 4], dtype="<u4").tobytes()
    gt = tmp_path / "gt.part"
    gt.write_bytes(header + ids.tobytes() + np.zeros((3, 4), dtype="<f4").tobytes())
    assert check_dataset_structure(gt, "gt.ibin") == (
        "3 x 4 int32 ids with their float32 distances"
    )
    gt.write_bytes(header + ids.tobytes()[:-4])
    with pytest.raises(DatasetError) as caught:
        check_dataset_structure(gt, "gt.ibin")
    assert str(caught.value) == (
        "gt.ibin: the header claims 3 x 4 int32 (56 bytes) but the file has 52 bytes"
    )


def test_a_second_download_of_the_same_file_is_refused_while_one_runs(served, tmp_path):
    import fcntl

    folder = tmp_path / "data"
    folder.mkdir()
    with open(folder / f"{FILE}.part", "ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DownloadError) as caught:
            get_dataset(NAME, directory=folder, mirror=served.url)
    assert str(caught.value) == (
        f"{FILE}.part: another annkit is downloading this file; wait for it to finish"
    )
    assert served.requests == []
