"""Damaged inputs the fuzz test once got through, each refused with a one-line annkit error
(each test failed before its fix)."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
from cli_runner import run_cli

from annkit.bundle import build_index, load_bundle, save_bundle
from annkit.errors import BundleError, DatasetError, EngineError
from annkit.io import read_vectors, validate_vectors
from annkit.sources import open_base


def test_npy_shape_of_booleans_is_refused(tmp_path):
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (True, 8), }"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    header = b"\x93NUMPY\x01\x00" + np.array([len(text)], "<u2").tobytes() + text.encode()
    (tmp_path / "v.npy").write_bytes(header + np.ones(8, "<f4").tobytes())
    with pytest.raises(
        DatasetError,
        match=r"^v\.npy: not a valid \.npy file \(shape \(True, 8\) "
        "is not a tuple of non-negative integers\\)$",
    ):
        read_vectors(tmp_path / "v.npy")


def test_signalling_nan_is_reported_without_a_warning():
    vectors = np.ones((3, 4), dtype=np.float32)
    vectors.view(np.uint32)[1, 2] = 0x7FA00000  # a signalling NaN (a flipped exponent bit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DatasetError, match="1 of 3 rows contain NaN or inf values"):
            validate_vectors(vectors, "v", "angular")


def test_hdf5_damaged_past_the_superblock_is_a_dataset_error(tmp_path):
    """h5py opens such a file but fails looking up 'train' with a RuntimeError."""
    good = tmp_path / "good.hdf5"
    with h5py.File(good, "w") as handle:
        handle["train"] = np.ones((10, 4), np.float32)
        handle["test"] = np.ones((2, 4), np.float32)
    data = good.read_bytes()
    damaged = tmp_path / "damaged.hdf5"
    for position in range(8, 128):
        flipped = bytearray(data)
        flipped[position] ^= 0x80
        damaged.write_bytes(bytes(flipped))
        try:
            with h5py.File(damaged, "r") as handle:
                _ = "train" in handle
        except RuntimeError:
            break
        except OSError:
            continue
    else:
        pytest.fail("no byte flip gives the RuntimeError this test is about")
    with pytest.raises(DatasetError, match=r"^damaged\.hdf5: damaged HDF5 file \("):
        open_base(str(damaged), None)


@pytest.fixture()
def bundles(tmp_path):
    base = np.random.default_rng(5).standard_normal((200, 8)).astype(np.float32)
    made = {}
    for engine, params in (("hnsw", {"M": 4}), ("annoy", {"n_trees": 2}), ("flat", {})):
        built, seconds = build_index(engine, base, "euclidean", params)
        made[engine] = save_bundle(built, tmp_path / engine, build_seconds=seconds)
    return made


def _edit(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_deeply_nested_manifest(bundles):
    (bundles["flat"] / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match=r"damaged manifest \(RecursionError\)$"):
        load_bundle(bundles["flat"])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"count": 201}, "holds 200 vectors of dimension 8, manifest says 201 of dimension 8"),
        ({"dim": 9}, "holds 200 vectors of dimension 8, manifest says 200 of dimension 9"),
        ({"dim": 2**31}, "manifest says 200 of dimension 2147483648"),
    ],
)
def test_hnsw_header_must_match_the_manifest(bundles, changes, message):
    """hnswlib trusts both numbers: a huge count overflowed its allocation (heap corruption,
    abort: in the fuzz test, in a child process), a wrong dim made it read past each vector,
    2**31 raised a TypeError."""
    _edit(bundles["hnsw"], **changes)
    with pytest.raises(EngineError, match=message):
        load_bundle(bundles["hnsw"])


@pytest.mark.parametrize("metric", ["ip", "angular"])
def test_annoy_nodes_must_fit_the_manifest_metric(bundles, metric):
    """A euclidean annoy file read as 'ip' has the same node size, so annoy loaded it and
    the first search followed a float as a node number: a segmentation fault."""
    _edit(bundles["annoy"], metric=metric)
    with pytest.raises(
        EngineError,
        match=f"annoy.ann: (not an annoy index of 200 {metric} "
        f"vectors|.* is not a whole number of {metric} nodes)",
    ):
        load_bundle(bundles["annoy"])


def test_payload_of_another_engine_is_a_bundle_error(bundles):
    _edit(bundles["flat"], engine="annoy")
    with pytest.raises(BundleError, match=r"the annoy payload does not fit its manifest \("):
        load_bundle(bundles["flat"])


def test_unknown_engine_in_a_manifest_names_the_bundle(bundles):
    _edit(bundles["flat"], engine="nope")
    with pytest.raises(BundleError, match=r"flat: unknown engine 'nope' \(known: "):
        load_bundle(bundles["flat"])


def test_evaluate_error_is_the_only_line_on_stderr(bundles):
    """The progress bar left a blank line on a stderr that is not a terminal."""

    result = run_cli("evaluate", str(bundles["flat"]), "words-10k")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: index {bundles['flat']} has dimension 8, dataset words-10k has 384\n"
    )
