"""Index bundles: manifest contents, atomic writes, and refusal of damaged bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annkit.bundle import MANIFEST, build_index, load_bundle, read_manifest, save_bundle
from annkit.errors import BundleError, InputError


@pytest.fixture()
def bundle_path(tmp_path, tiny_dataset):
    engine, seconds = build_index("hnsw", tiny_dataset.base, "euclidean", {"M": 8})
    return save_bundle(engine, tmp_path / "idx", build_seconds=seconds)


def test_manifest_contents(bundle_path):
    manifest = read_manifest(bundle_path)
    assert manifest["engine"] == "hnsw" and manifest["metric"] == "euclidean"
    assert manifest["dim"] == 16 and manifest["count"] == 600
    assert manifest["build_params"] == {"M": 8, "ef_construction": 200, "seed": 100}
    assert set(manifest["library_versions"]) >= {"annkit", "numpy", "hnswlib"}
    entry = manifest["files"]["hnsw.bin"]
    assert entry["bytes"] == (bundle_path / "hnsw.bin").stat().st_size
    assert len(entry["sha256"]) == 64
    assert [p.name for p in bundle_path.parent.iterdir()] == ["idx"]  # no staging left over


def test_existing_target_needs_overwrite(bundle_path, tiny_dataset):
    engine, seconds = build_index("flat", tiny_dataset.base, "euclidean", {})
    with pytest.raises(InputError, match="already exists"):
        save_bundle(engine, bundle_path, build_seconds=seconds)
    save_bundle(engine, bundle_path, build_seconds=seconds, overwrite=True)
    assert read_manifest(bundle_path)["engine"] == "flat"


def _edit_manifest(path, **changes):
    manifest = json.loads((path / MANIFEST).read_text())
    manifest.update(changes)
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_truncated_payload_refused_before_native_load(bundle_path):
    payload = bundle_path / "hnsw.bin"
    payload.write_bytes(payload.read_bytes()[:1000])
    message = "has 1000 bytes, manifest says .* \\(truncated or damaged\\)"
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_path)


def test_bit_flip_refused(bundle_path):
    payload = bundle_path / "hnsw.bin"
    data = bytearray(payload.read_bytes())
    data[200] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="fails its sha256 check"):
        load_bundle(bundle_path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format_version": 99}, "index format version 99 is not supported"),
        ({"engine": "nope"}, "unknown engine 'nope'"),
        ({"files": {"../evil": {"bytes": 1, "sha256": "0"}}}, "unsafe payload file '../evil'"),
        ({"files": {"/etc/passwd": {"bytes": 1, "sha256": "0"}}}, "unsafe payload file"),
        ({"dim": "x"}, "manifest field 'dim' is missing or has the wrong type"),
        ({"metric": "hamming"}, "unknown metric 'hamming'"),
        ({"format": "other"}, "not an annkit index manifest"),
    ],
)
def test_bad_manifest(bundle_path, changes, message):
    _edit_manifest(bundle_path, **changes)
    with pytest.raises((BundleError, InputError), match=message):
        load_bundle(bundle_path)


def test_not_json_and_missing(tmp_path, bundle_path):
    (bundle_path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="damaged manifest"):
        load_bundle(bundle_path)
    with pytest.raises(BundleError, match="no such index directory"):
        load_bundle(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="not an annkit index"):
        load_bundle(tmp_path / "empty")


def test_symlinked_payload_refused(bundle_path, tmp_path):
    payload = bundle_path / "hnsw.bin"
    outside = tmp_path / "outside.bin"
    payload.rename(outside)
    payload.symlink_to(outside)
    with pytest.raises(BundleError, match="payload file hnsw.bin is missing"):
        load_bundle(bundle_path)


def test_manifest_count_mismatch_with_valid_checksums(bundle_path):
    _edit_manifest(bundle_path, count=601)
    with pytest.raises(Exception, match="601"):
        load_bundle(bundle_path)


def test_roundtrip_each_engine(tmp_path, tiny_dataset):
    for name, params in (
        ("annoy", {"n_trees": 5}),
        ("ivfpq", {"nlist": 8, "m": 4, "nbits": 4}),
        ("flat", {}),
    ):
        engine, seconds = build_index(name, tiny_dataset.base, "euclidean", params)
        path = save_bundle(engine, tmp_path / name, build_seconds=seconds)
        loaded = load_bundle(path).engine
        np.testing.assert_array_equal(
            loaded.search(tiny_dataset.queries, 5).ids, engine.search(tiny_dataset.queries, 5).ids
        )
