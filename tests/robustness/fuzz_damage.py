"""Seeded generators of damaged files for the fuzz test.

Every generator starts from small valid files and writes damaged copies into a folder,
returning one :class:`fuzz_harness.Case` per file. The same seed gives the same files.

Damage kinds (the ``category`` of a case is ``<format> <kind>``):

- ``truncation``: the file cut at every length of its header region and at random lengths;
- ``bit flip``: every bit of the header and random bits of the body;
- ``byte overwrite``: header bytes set to 0x00 / 0x7F / 0x80 / 0xFF, random bytes elsewhere;
- ``shift``: one byte inserted or deleted, garbage appended;
- ``header value``: the format's size fields or header text set to wrong / huge values;
- ``values``: NaN, inf and zero vectors;
- ``structure`` (HDF5): missing datasets, wrong shapes and dtypes, odd attributes;
- ``payload`` / ``manifest`` / ``manifest bytes`` (index bundles).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from fuzz_harness import Case

U32 = 2**32 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def _bytes_u32(*values: int) -> bytes:
    return np.array(values, dtype="<u4").tobytes()


def _bytes_i32(value: int) -> bytes:
    return np.array([value], dtype="<i4").tobytes()


def byte_damage(
    data: bytes,
    rng: np.random.Generator,
    *,
    header: int,
    flips: int,
    overwrites: int,
    truncations: int,
) -> Iterator[tuple[str, str, bytes]]:
    """(kind, label, damaged bytes): truncations, bit flips, byte overwrites and shifts.

    The first ``header`` bytes get exhaustive treatment (every cut, every bit, four special
    values per byte); the rest is sampled (``truncations``, ``flips``, ``overwrites``)."""
    size = len(data)
    header = min(header, size)
    cuts = set(range(0, header + 1)) | {size - 1}
    cuts |= {int(c) for c in rng.integers(header, size, size=min(truncations, size))}
    for cut in sorted(c for c in cuts if c < size):
        yield "truncation", f"cut to {cut} of {size} bytes", data[:cut]
    positions = [(p, b) for p in range(header) for b in range(8)]
    for _ in range(flips):
        positions.append((int(rng.integers(0, size)), int(rng.integers(0, 8))))
    for position, bit in positions:
        damaged = bytearray(data)
        damaged[position] ^= 1 << bit
        yield "bit flip", f"bit {bit} of byte {position}", bytes(damaged)
    changes = [(p, v) for p in range(header) for v in (0x00, 0x7F, 0x80, 0xFF) if data[p] != v]
    for _ in range(overwrites):
        changes.append((int(rng.integers(0, size)), int(rng.integers(0, 256))))
    for position, value in changes:
        if data[position] == value:  # a random overwrite with the same value changes nothing
            continue
        damaged = bytearray(data)
        damaged[position] = value
        yield "byte overwrite", f"byte {position} set to {value:#04x}", bytes(damaged)
    for position in sorted({int(p) for p in rng.integers(0, size, size=6)} | {header}):
        yield "shift", f"byte {position} deleted", data[:position] + data[position + 1 :]
        yield "shift", f"byte 0x5a inserted at {position}", data[:position] + b"Z" + data[position:]
    for count in (1, 3, 4, 7, 64):
        yield "shift", f"{count} garbage bytes appended", data + rng.bytes(count)


class Writer:
    """Writes case files into one folder with unique names and collects the cases."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cases: list[Case] = []

    def add(
        self,
        kind: str,
        category: str,
        label: str,
        data: bytes,
        suffix: str,
        extra: dict | None = None,
    ) -> Path:
        path = self.folder / f"c{len(self.cases):05d}{suffix}"
        path.write_bytes(data)
        self.cases.append(Case(kind, str(path), category, label, extra))
        return path

    def add_existing(
        self, kind: str, category: str, label: str, path: Path, extra: dict | None = None
    ) -> None:
        self.cases.append(Case(kind, str(path), category, label, extra))


# ------------------------------------------------------------------ vector and id files


def _vecs(array: np.ndarray, dtype: str) -> bytes:
    with np.errstate(over="ignore", invalid="ignore"):
        rows = [
            np.array([array.shape[1]], "<i4").tobytes() + np.asarray(row, dtype).tobytes()
            for row in array
        ]
    return b"".join(rows)


def _bin(array: np.ndarray, dtype: str) -> bytes:
    with np.errstate(over="ignore", invalid="ignore"):
        return _bytes_u32(*array.shape) + np.asarray(array, dtype).tobytes()


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _valid_files(rng: np.random.Generator) -> dict[str, tuple[str, bytes, str, np.ndarray]]:
    """format label -> (suffix, bytes, loader kind, array) of small valid files."""
    floats = rng.standard_normal((12, 8)).astype(np.float32)
    bytes_u8 = rng.integers(1, 256, size=(12, 8)).astype(np.uint8)
    bytes_i8 = rng.integers(1, 128, size=(12, 8)).astype(np.int8)
    ids = rng.integers(0, 12, size=(6, 5)).astype(np.int32)
    weights = (rng.random(6) + 0.1).astype(np.float64)
    return {
        "fvecs": (".fvecs", _vecs(floats, "<f4"), "vectors", floats),
        "bvecs": (".bvecs", _vecs(bytes_u8, "u1"), "vectors", bytes_u8),
        "ivecs": (".ivecs", _vecs(ids, "<i4"), "ids", ids),
        "fbin": (".fbin", _bin(floats, "<f4"), "vectors", floats),
        "u8bin": (".u8bin", _bin(bytes_u8, "u1"), "vectors", bytes_u8),
        "i8bin": (".i8bin", _bin(bytes_i8, "i1"), "vectors", bytes_i8),
        "ibin": (".ibin", _bin(ids, "<i4"), "ids", ids),
        "npy": (".npy", _npy(floats), "vectors", floats),
        "npy ids": (".npy", _npy(ids), "ids", ids),
        "npy weights": (".npy", _npy(weights), "weights", weights),
    }


def _bin_headers(n: int, d: int) -> list[tuple[int, int]]:
    return [
        (0, d),
        (n, 0),
        (0, 0),
        (n + 1, d),
        (n - 1, d),
        (n, d + 1),
        (n, d - 1),
        (d, n),
        (1, n * d),
        (n * d, 1),
        (U32, d),
        (n, U32),
        (U32, U32),
        (2**31, 2**31),
        (2**16, 2**16),
        (2**20, 2**12),
        (n, 2**31),
    ]


def _vecs_dims(d: int) -> list[int]:
    return [0, -1, d + 1, d - 1, 2 * d, 1, I32_MAX, I32_MIN, 2**28, -d]


def _npy_header(shape: str, descr: str = "'<f4'", fortran: str = "False") -> bytes:
    text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + np.array([len(text)], "<u2").tobytes() + text.encode("latin1")


_NPY_SHAPES = [
    "(13, 8)",
    "(12, 9)",
    "(96,)",
    "(12, 8, 1)",
    "()",
    "(0, 8)",
    "(12, 0)",
    "(2**40, 8)",
    "(1099511627776, 8)",
    "(4611686018427387904, 4611686018427387904)",
    "(-1, 8)",
    "(12, -8)",
    "(12.0, 8)",
    "('12', 8)",
    "(12, 8",
    "[12, 8]",
    "None",
    "(8, 12)",
    "(1, 96)",
    "(96, 1)",
    "(6, 8)",
    "(12, 4)",
    "(True, 8)",
]
_NPY_DESCRS = [
    "'<f8'",
    "'<f2'",
    "'>f4'",
    "'|u1'",
    "'|i1'",
    "'<i4'",
    "'<i8'",
    "'<u8'",
    "'<c8'",
    "'|b1'",
    "'|O'",
    "'|V4'",
    "'<U1'",
    "'|S4'",
    "[('a', '<f4')]",
    "'float32'",
    "'<f3'",
    "'<M8[s]'",
    "'<m8'",
    "object",
    "'<f4' + 1",
    "1",
    "None",
    "{'names': ['a'], 'formats': ['<f4']}",
    "('<f4', (2,))",
]


def _npy_header_cases(body: bytes) -> Iterator[tuple[str, bytes]]:
    for shape in _NPY_SHAPES:
        yield f"shape {shape}", _npy_header(shape) + body
    for descr in _NPY_DESCRS:
        yield f"descr {descr}", _npy_header("(12, 8)", descr) + body
    yield "fortran_order True", _npy_header("(12, 8)", fortran="True") + body
    yield "fortran_order 1", _npy_header("(12, 8)", fortran="1") + body
    good = _npy_header("(12, 8)")
    for version in (b"\x00\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09", b"\xff\xff"):
        yield f"version bytes {version.hex()}", good[:6] + version + good[8:] + body
    for length in (0, 1, 10, 117, 119, 0xFFFF):
        yield (
            f"header length {length}",
            good[:8] + np.array([length], "<u2").tobytes() + good[10:] + body,
        )
    for text in (
        "{}",
        "{'descr': '<f4'}",
        "[1, 2]",
        "__import__('os').system('true')",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (12, 8), 'x': 1}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (12, 8)} garbage",
        "{" * 5000,
        "\xff\xfe",
        "{'descr': '<f4', 'shape': (12, 8)}",
    ):
        padded = text + " " * (-(len(text) + 11) % 64) + "\n"
        encoded = padded.encode("latin1")
        header = b"\x93NUMPY\x01\x00" + np.array([len(encoded)], "<u2").tobytes() + encoded
        yield f"header text {text[:30]!r}", header + body


def vector_file_cases(writer: Writer, seed: int) -> None:
    """Byte-level damage, header values and bad values for every vector / id format."""
    rng = np.random.default_rng(seed)
    for fmt, (suffix, data, kind, array) in _valid_files(rng).items():
        writer.add(kind, f"{fmt} valid", "undamaged", data, suffix)
        header = 128 if suffix == ".npy" else 16
        flips = 40 if suffix == ".npy" else 160
        for damage, label, damaged in byte_damage(
            data, rng, header=header, flips=flips, overwrites=40, truncations=24
        ):
            writer.add(kind, f"{fmt} {damage}", label, damaged, suffix)
        if kind == "weights":
            continue
        n, d = array.shape
        if suffix in (".fbin", ".u8bin", ".i8bin", ".ibin"):
            for claim in _bin_headers(n, d):
                writer.add(
                    kind,
                    f"{fmt} header value",
                    f"header n, d = {claim}",
                    _bytes_u32(*claim) + data[8:],
                    suffix,
                )
            writer.add(
                kind,
                f"{fmt} header value",
                "header only, huge n and d",
                _bytes_u32(U32, U32),
                suffix,
            )
        elif suffix in (".fvecs", ".bvecs", ".ivecs"):
            record = len(data) // n
            for dim in _vecs_dims(d):
                writer.add(
                    kind,
                    f"{fmt} header value",
                    f"first dimension field {dim}",
                    _bytes_i32(dim) + data[4:],
                    suffix,
                )
                middle = (n // 2) * record
                writer.add(
                    kind,
                    f"{fmt} header value",
                    f"record {n // 2} dimension {dim}",
                    data[:middle] + _bytes_i32(dim) + data[middle + 4 :],
                    suffix,
                )
            writer.add(
                kind,
                f"{fmt} header value",
                "only a dimension field claiming 2**31-1",
                _bytes_i32(I32_MAX),
                suffix,
            )
        elif kind == "vectors":
            for label, damaged in _npy_header_cases(data[128:]):
                writer.add(kind, f"{fmt} header value", label, damaged, suffix)
        if kind == "vectors":
            for label, value in (
                ("NaN", np.nan),
                ("+inf", np.inf),
                ("-inf", -np.inf),
                ("zero row", 0.0),
                ("huge float64", 1e300),
            ):
                if array.dtype.kind != "f" and label != "zero row":
                    continue
                bad = array.astype(np.float64 if label == "huge float64" else array.dtype)
                row, column = int(rng.integers(0, n)), int(rng.integers(0, d))
                if label == "zero row":
                    bad[row] = 0
                else:
                    bad[row, column] = value
                if suffix == ".npy":
                    encoded = _npy(bad)
                elif label == "huge float64" and suffix != ".fvecs":
                    continue
                elif suffix.endswith("vecs"):
                    encoded = _vecs(bad, {".fvecs": "<f4", ".bvecs": "u1"}[suffix])
                else:
                    encoded = _bin(bad, {".fbin": "<f4", ".u8bin": "u1", ".i8bin": "i1"}[suffix])
                writer.add(kind, f"{fmt} values", f"{label} at row {row}", encoded, suffix)
        else:
            bad_ids = array.copy()
            bad_ids[1, 2] = -5
            encoded = {
                ".ivecs": lambda a: _vecs(a, "<i4"),
                ".ibin": lambda a: _bin(a, "<i4"),
                ".npy": _npy,
            }[suffix](bad_ids)
            writer.add(kind, f"{fmt} values", "id -5", encoded, suffix)


def pair_cases(writer: Writer, seed: int) -> None:
    """Separate base / query / ground-truth files that do not fit together."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((20, 8)).astype(np.float32)
    queries_ok = writer.add(
        "vectors",
        "pair parts",
        "valid queries",
        _vecs(rng.standard_normal((4, 8)), "<f4"),
        ".fvecs",
    )
    # label -> (queries file bytes and suffix, or None; ground-truth bytes and suffix, or None)
    variants: dict[str, tuple[tuple[bytes, str] | None, tuple[bytes, str] | None]] = {
        "queries of dimension 9": ((_vecs(rng.standard_normal((4, 9)), "<f4"), ".fvecs"), None),
        "queries of dimension 7 (.fbin)": (
            (_bin(rng.standard_normal((4, 7)), "<f4"), ".fbin"),
            None,
        ),
        "ground truth id 20 of 20 base vectors": (
            None,
            (_bin(np.full((4, 3), 20), "<i4"), ".ibin"),
        ),
        "ground truth with 5 rows for 4 queries": (
            None,
            (_bin(rng.integers(0, 20, (5, 3)), "<i4"), ".ibin"),
        ),
        "ground truth with 3 rows for 4 queries": (
            None,
            (_vecs(rng.integers(0, 20, (3, 3)), "<i4"), ".ivecs"),
        ),
        "ground truth given as float vectors": (
            None,
            (_vecs(rng.standard_normal((4, 3)), "<f4"), ".fvecs"),
        ),
    }
    base_path = writer.add("vectors", "pair parts", "valid base", _vecs(base, "<f4"), ".fvecs")
    for label, (query_file, truth_file) in variants.items():
        queries = queries_ok
        if query_file is not None:
            queries = writer.add("vectors", "pair parts", label, *query_file)
        extra: dict = {"queries": str(queries)}
        if truth_file is not None:
            extra["groundtruth"] = str(writer.add("ids", "pair parts", label, *truth_file))
        writer.add_existing("pair", "pair mismatch", label, base_path, extra)


# ------------------------------------------------------------------------------- HDF5


def _ann_file(
    path: Path,
    rng: np.random.Generator,
    *,
    chunked: bool = False,
    attrs: dict | None = None,
    libver: str = "earliest",
    **overrides: object,
) -> Path:
    datasets: dict[str, object] = {
        "train": rng.standard_normal((40, 8)).astype(np.float32),
        "test": rng.standard_normal((5, 8)).astype(np.float32),
        "neighbors": rng.integers(0, 40, size=(5, 10)).astype(np.int32),
        "distances": rng.random((5, 10)).astype(np.float32),
        "test_weights": rng.random(5) + 0.1,
    }
    datasets.update(overrides)
    with h5py.File(path, "w", libver=libver) as handle:
        for key, value in datasets.items():
            if value is None:
                continue
            if isinstance(value, h5py.Empty) or np.ndim(value) == 0 or not chunked:
                handle.create_dataset(key, data=value)
            else:
                handle.create_dataset(
                    key, data=value, chunks=True, compression="gzip", shuffle=True
                )
        for key, value in (
            {"distance": "angular", "point_type": "float"} if attrs is None else attrs
        ).items():
            handle.attrs[key] = value
    return path


def _structure_variants(rng: np.random.Generator) -> Iterator[tuple[str, dict]]:
    matrix = rng.standard_normal((40, 8)).astype(np.float32)
    yield "valid", {}
    yield "valid, chunked and gzip-compressed", {"chunked": True}
    for key in ("train", "test", "neighbors", "distances", "test_weights"):
        yield f"no '{key}'", {key: None}
    for key, rows in (("train", 40), ("test", 5)):
        part = matrix[:rows]
        yield f"'{key}' 1-D", {key: part[:, 0].copy()}
        yield f"'{key}' 3-D", {key: part.reshape(rows, 4, 2)}
        yield f"'{key}' 0 rows", {key: np.zeros((0, 8), np.float32)}
        yield f"'{key}' 0 columns", {key: np.zeros((rows, 0), np.float32)}
        yield f"'{key}' scalar", {key: np.float32(1.0)}
        yield f"'{key}' empty dataspace", {key: h5py.Empty("f4")}
        yield f"'{key}' strings", {key: np.array([b"abc"] * rows)}
        yield f"'{key}' complex", {key: part[:, :4].astype(np.complex64)}
        yield f"'{key}' compound", {key: np.zeros((rows,), dtype=[("a", "<f4"), ("b", "<f4")])}
        yield f"'{key}' bool", {key: part > 0}
        yield f"'{key}' big-endian float32", {key: part.astype(">f4")}
        yield f"'{key}' float16", {key: part.astype(np.float16)}
        yield f"'{key}' float64 beyond float32", {key: part.astype(np.float64) * 1e300}
        yield f"'{key}' int8", {key: (part * 10).astype(np.int8)}
        yield f"'{key}' uint64", {key: np.abs(part * 10).astype(np.uint64)}
        yield f"'{key}' NaN", {key: np.where(part > 1, np.nan, part).astype(np.float32)}
        yield f"'{key}' zero rows (angular)", {key: np.zeros((rows, 8), np.float32)}
    yield "'test' dimension 9", {"test": rng.standard_normal((5, 9)).astype(np.float32)}
    yield "'neighbors' float", {"neighbors": rng.random((5, 10))}
    yield "'neighbors' 1-D", {"neighbors": np.arange(5)}
    yield "'neighbors' 6 rows", {"neighbors": rng.integers(0, 40, (6, 10))}
    yield "'neighbors' id 40", {"neighbors": np.full((5, 10), 40)}
    yield "'neighbors' id -7", {"neighbors": np.full((5, 10), -7)}
    yield "'neighbors' uint64 huge", {"neighbors": np.full((5, 10), 2**63 + 5, np.uint64)}
    yield "'neighbors' 0 columns", {"neighbors": np.zeros((5, 0), np.int64)}
    yield "'neighbors' strings", {"neighbors": np.array([b"x"] * 5)}
    yield "'test_weights' 2-D", {"test_weights": rng.random((5, 2))}
    yield "'test_weights' 4 values", {"test_weights": rng.random(4)}
    yield "'test_weights' NaN", {"test_weights": np.array([1, np.nan, 1, 1, 1.0])}
    yield "'test_weights' negative", {"test_weights": np.array([1, -1, 1, 1, 1.0])}
    yield "'test_weights' all zero", {"test_weights": np.zeros(5)}
    yield "'test_weights' strings", {"test_weights": np.array([b"a"] * 5)}
    for value in ("hamming", "", "ANGULAR", "x" * 5000, np.bytes_(b"angular\x00x")):
        yield f"distance attribute {value[:12]!r}", {"attrs": {"distance": value}}
    for label, value in (
        ("int", 3),
        ("float array", np.arange(4.0)),
        ("bytes", b"angular"),
        ("array of strings", np.array([b"angular", b"ip"])),
    ):
        yield f"distance attribute {label}", {"attrs": {"distance": value}}
    yield (
        "distance attribute huge array (dense storage)",
        {"attrs": {"distance": np.zeros(300_000)}, "libver": "latest"},
    )
    yield "valid, latest file format", {"libver": "latest"}
    yield "no attributes", {"attrs": {}}


def hdf5_cases(writer: Writer, seed: int) -> None:
    """Structural variants written with h5py, then byte-level damage of valid files."""
    rng = np.random.default_rng(seed)
    for label, options in _structure_variants(rng):
        path = writer.folder / f"c{len(writer.cases):05d}.hdf5"
        options = dict(options)
        attrs = options.pop("attrs", None)
        chunked = bool(options.pop("chunked", False))
        libver = str(options.pop("libver", "earliest"))
        _ann_file(path, rng, chunked=chunked, attrs=attrs, libver=libver, **options)
        writer.add_existing("hdf5", "hdf5 structure", label, path)
    group_path = writer.folder / f"c{len(writer.cases):05d}.hdf5"
    _ann_file(group_path, rng, train=None)
    with h5py.File(group_path, "a") as handle:
        handle.create_group("train")
    writer.add_existing("hdf5", "hdf5 structure", "'train' is a group", group_path)
    huge_path = writer.folder / f"c{len(writer.cases):05d}.hdf5"
    _ann_file(huge_path, rng, train=None)
    with h5py.File(huge_path, "a") as handle:  # claimed 4 TiB, never written: all fill value
        handle.create_dataset("train", shape=(2**32, 256), dtype="<f4", chunks=(1024, 256))
    writer.add_existing("hdf5", "hdf5 structure", "'train' claims 4 TiB, never written", huge_path)
    sources = {
        "contiguous": _ann_file(writer.folder / "valid-contiguous.h5", rng),
        "gzip": _ann_file(writer.folder / "valid-gzip.h5", rng, chunked=True),
        "latest": _ann_file(writer.folder / "valid-latest.h5", rng, libver="latest"),
    }
    for name, path in sources.items():
        data = path.read_bytes()
        for damage, label, damaged in byte_damage(
            data, rng, header=64, flips=700, overwrites=250, truncations=60
        ):
            writer.add("hdf5", f"hdf5 {damage}", f"{name}: {label}", damaged, ".hdf5")


# --------------------------------------------------------------------------- bundles


def build_bundles(folder: Path, seed: int) -> dict[str, Path]:
    """One small valid bundle per registered engine over 700 seeded random vectors (dim 16),
    built with the build params of the engine's ``small_contract_settings``."""
    from annkit.bundle import build_index, save_bundle
    from annkit.engines import engine_names, get_engine

    rng = np.random.default_rng(seed)
    base = rng.standard_normal((700, 16)).astype(np.float32)
    bundles = {}
    for engine in engine_names():
        engine_class = get_engine(engine)
        params = (engine_class.small_contract_settings or engine_class.contract_settings)[0]
        built, _ = build_index(engine, base, "euclidean", params, threads=1)
        path = save_bundle(built, folder / f"valid-{engine}", build_seconds=1.0)
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["created"] = "2024-06-01T00:00:00Z"  # the same bytes on every run
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        bundles[engine] = path
    return bundles


SWAPS = (
    "payload missing",
    "payload is a folder",
    "payload is a symlink",
    "payload empty",
    "manifest missing",
    "manifest is a folder",
    "other engine's payload under this name, sizes differ",
)


def _swap(bundle: Path, label: str, payload: Path, other_payload: Path) -> None:
    """Replace a bundle's payload or manifest as ``label`` (one of SWAPS) says."""
    target = bundle / (payload.name if label.startswith(("payload", "other")) else "manifest.json")
    target.unlink()
    if label.endswith("folder"):
        target.mkdir()
    elif label.endswith("symlink"):
        target.symlink_to(payload)
    elif label.endswith("empty"):
        target.write_bytes(b"")
    elif label.startswith("other"):
        shutil.copyfile(other_payload, target)


def _copy_bundle(source: Path, target: Path) -> None:
    """A bundle copy whose payload files are hard links (cases that change them rewrite)."""
    target.mkdir()
    for item in source.iterdir():
        if item.name == "manifest.json":
            shutil.copyfile(item, target / item.name)
        else:
            os.link(item, target / item.name)


def _manifest_edits(
    manifest: dict, payload: str, other_payload: str
) -> Iterator[tuple[str, object]]:
    """(label, new manifest object or raw text/bytes)."""
    from annkit.engines import engine_names

    def edited(**changes: object) -> dict:
        copy = json.loads(json.dumps(manifest))
        copy.update(changes)
        return copy

    def file_entry(**changes: object) -> dict:
        entry = dict(manifest["files"][payload], **changes)
        return edited(files={payload: entry})

    entry = manifest["files"][payload]
    for key in (
        "format",
        "format_version",
        "engine",
        "metric",
        "dim",
        "count",
        "build_params",
        "files",
        "build_seconds",
    ):
        copy = edited()
        del copy[key]
        yield f"field {key!r} removed", copy
    for key, values in {
        "format": ["annkit-indexx", 1, None],
        "format_version": [0, 2, 99, "1", 1.0, True, None, -1],
        "engine": ["nope", "", "HNSW", 3, None, "../hnsw", *engine_names()],
        "metric": ["angular", "ip", "hamming", "", 1, None],
        "dim": [0, -1, 1, 15, 17, 32, 8, 2**31, 2**62, 16.0, "16", True, None],
        "count": [0, -1, 1, 699, 701, 1400, 2**31, 2**62, 700.5, "700", True, None],
        "build_seconds": [-1, "x", None, 1e308],
        "build_params": [
            {},
            [],
            None,
            "M=8",
            {"M": "x"},
            {"M": -3},
            {"M": 10**9},
            {"n_trees": 0},
            {"nlist": 0},
            {"m": 5},
            {"unknown": 1},
            {"seed": -1},
            {"nbits": 99},
            {"factory": "HNSW8,Flat"},
            {"factory": "IVF,PQ"},
            {"factory": "HNSW0,Flat"},
            {"factory": 7},
            {"dtype": "i8"},
            {"dtype": "f64"},
            {"connectivity": 1},
            {"num_leaves": 0},
            {"dims_per_block": 99},
        ],
        "files": [{}, [], None, "x", {payload: None}, {payload: []}],
    }.items():
        for value in values:
            if manifest.get(key) != value or key == "engine":
                yield f"{key} = {json.dumps(value)}", edited(**{key: value})
    for name in (
        "../x",
        "../" + payload,
        "/etc/passwd",
        "/" + payload,
        "",
        ".",
        "..",
        "sub/" + payload,
        "a\\b",
        "manifest.json",
        "x\x00y",
        "./" + payload,
        payload + "/",
        "~/" + payload,
        "C:\\x",
    ):
        yield f"files lists {name!r}", edited(files={name: entry})
        yield f"files lists {payload!r} and {name!r}", edited(files={payload: entry, name: entry})
    yield f"files lists {other_payload!r} too", edited(files={payload: entry, other_payload: entry})
    for label, changes in (
        ("bytes + 1", {"bytes": entry["bytes"] + 1}),
        ("bytes - 1", {"bytes": entry["bytes"] - 1}),
        ("bytes 0", {"bytes": 0}),
        ("bytes -1", {"bytes": -1}),
        ("bytes huge", {"bytes": 2**70}),
        ("bytes '12'", {"bytes": "12"}),
        ("bytes 1.5", {"bytes": 1.5}),
        ("bytes true", {"bytes": True}),
        ("sha256 of nothing", {"sha256": "e3b0c442" + "0" * 56}),
        ("sha256 upper case", {"sha256": entry["sha256"].upper()}),
        ("sha256 empty", {"sha256": ""}),
        ("sha256 7", {"sha256": 7}),
        (
            "sha256 last digit changed",
            {"sha256": entry["sha256"][:-1] + ("0" if entry["sha256"][-1] != "0" else "1")},
        ),
    ):
        yield f"payload entry {label}", file_entry(**changes)
    text = json.dumps(manifest, indent=2, sort_keys=True)
    yield "not JSON: empty", b""
    yield "not JSON: half the text", text[: len(text) // 2]
    yield "not JSON: trailing comma", text[:-2] + ",}"
    yield "not JSON: invalid UTF-8", b"\xff\xfe" + text.encode()
    yield "not JSON: UTF-16", text.encode("utf-16")
    yield "JSON array", "[]"
    yield "JSON null", "null"
    yield "JSON number", "3"
    yield "JSON string", '"annkit-index"'
    yield "JSON NaN dim", text.replace('"dim": 16', '"dim": NaN')
    yield "JSON Infinity count", text.replace('"count": 700', '"count": Infinity')
    yield "JSON 1e400 dim", text.replace('"dim": 16', '"dim": 1e400')
    yield "JSON duplicate key dim", text.replace('"dim": 16', '"dim": 16, "dim": 17')
    yield "JSON deeply nested", "[" * 100_000 + "]" * 100_000
    yield "manifest over 1 MiB", text[:-1] + ', "pad": "' + "x" * (1 << 20) + '"}'


def bundle_cases(writer: Writer, bundles: dict[str, Path], seed: int) -> None:
    """Payload damage (caught by size / sha256), manifest edits and manifest byte damage."""
    rng = np.random.default_rng(seed)
    engines = list(bundles)
    for position, (engine, source) in enumerate(bundles.items()):
        manifest = json.loads((source / "manifest.json").read_text())
        payload = next(iter(manifest["files"]))
        other = bundles[engines[(position + 1) % len(engines)]]
        other_payload = next(iter(json.loads((other / "manifest.json").read_text())["files"]))

        def new_case(
            category: str, label: str, engine: str = engine, source: Path = source
        ) -> Path:
            path = writer.folder / f"c{len(writer.cases):05d}-{engine}"
            _copy_bundle(source, path)
            writer.add_existing("bundle", category, f"{engine}: {label}", path)
            return path

        new_case("bundle valid", "undamaged")
        data = (source / payload).read_bytes()
        for damage, label, damaged in byte_damage(
            data, rng, header=4, flips=40, overwrites=10, truncations=8
        ):
            path = new_case(f"bundle payload {damage}", label)
            (path / payload).unlink()
            (path / payload).write_bytes(damaged)
        for label in SWAPS:
            _swap(
                new_case("bundle payload swap", label),
                label,
                source / payload,
                other / other_payload,
            )
        for label, content in _manifest_edits(manifest, payload, other_payload):
            path = new_case("bundle manifest", label)
            if isinstance(content, bytes):
                (path / "manifest.json").write_bytes(content)
            elif isinstance(content, str):
                (path / "manifest.json").write_text(content)
            else:
                (path / "manifest.json").write_text(json.dumps(content, indent=2))
        # another engine's payload with a manifest whose size and sha256 match it: the
        # checksums pass and the engine's own loader must refuse the foreign file
        path = new_case("bundle payload swap", f"{other_payload} renamed {payload}, re-hashed")
        (path / payload).unlink()
        shutil.copyfile(other / other_payload, path / payload)
        foreign = json.loads(json.dumps(manifest))
        foreign["files"] = {
            payload: json.loads((other / "manifest.json").read_text())["files"][other_payload]
        }
        (path / "manifest.json").write_text(json.dumps(foreign))
        text = (source / "manifest.json").read_bytes()
        for damage, label, damaged in byte_damage(
            text, rng, header=0, flips=120, overwrites=60, truncations=40
        ):
            path = new_case(f"bundle manifest {damage}", label)
            (path / "manifest.json").write_bytes(damaged)


def build_corpus(folder: Path, seed: int) -> list[Case]:
    """Every damaged file of the fuzz test, written under ``folder``."""
    writer = Writer(folder / "files")
    vector_file_cases(writer, seed)
    pair_cases(writer, seed + 1)
    hdf5_cases(writer, seed + 2)
    bundles = build_bundles(folder / "valid", seed + 3)
    bundle_cases(writer, bundles, seed + 4)
    return writer.cases
