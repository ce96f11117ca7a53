"""``annkit datasets get``: download a catalogue dataset or a URL into the download
directory, resumably, and verify it before it appears there.

A transfer writes ``DIR/FILE.part``; an interrupted one keeps it, and the next call asks the
server for the rest with an HTTP ``Range`` request. When every byte has arrived the file is
checked: its size against the server's (``Content-Length``, or the total of
``Content-Range``), its SHA-256 against ``--sha256``, the catalogue or the registry (see
:mod:`annkit.catalogue`), and its structure (an ann-benchmarks HDF5 file: ``train``,
``test``, ``neighbors``, ``distances`` of consistent shapes; a big-ann-benchmarks binary
file: a header matching the size). Only then is it renamed to ``DIR/FILE``; a file that
fails a check is deleted. The first download of a name with no published SHA-256 records
the one it computed, and later downloads of that name must match it.

Progress goes to a callback (:class:`DownloadProgress`); this module never prints.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from annkit.catalogue import (
    CatalogueEntry,
    RegistryRecord,
    catalogue,
    catalogue_names,
    closest_names,
    data_dir,
    find_entry,
    mirror_from_env,
    now_text,
    offline_from_env,
    read_registry,
    record_download,
)
from annkit.errors import DatasetError, InputError
from annkit.files import write_text
from annkit.io.bin import BIN_DTYPES, HEADER_BYTES
from annkit.io.bundled import BUNDLED_DATASETS
from annkit.io.hdf5 import HDF5_SUFFIXES, open_hdf5, read_ann_benchmarks, read_vector_dataset
from annkit.io.validate import check_dataset_parts
from annkit.memory import format_size
from annkit.types import normalize_metric

#: suffix of a transfer in progress (kept when interrupted, so the next call resumes it)
PART_SUFFIX = ".part"
#: binary formats ``max_vectors`` can crop (rows follow an 8-byte header)
CROP_SUFFIXES = (".fbin", ".u8bin", ".i8bin")
#: file types a download may have (the structure check knows them)
DOWNLOAD_SUFFIXES = (*HDF5_SUFFIXES, *BIN_DTYPES)
CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT = 30.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(InputError):
    """A download failed or was refused: unreachable server, interrupted transfer, wrong
    size, checksum or structure (exit code 2)."""


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report: ``step`` (``download``, ``sha256``, ``structure``), a one-line
    ``message`` for a log, and ``done`` of ``total`` bytes (total None when unknown)."""

    step: str
    message: str
    done: int
    total: int | None


ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class DownloadedDataset:
    """The outcome of :func:`get_dataset`.

    ``path`` is the verified file; ``size`` its bytes; ``sha256`` its checksum and
    ``sha256_check`` how it was checked (``--sha256``, ``catalogue``, ``registry``, or
    ``recorded`` on a first download). ``transferred`` is False when the file was already
    there; ``resumed_from`` the bytes a previous, interrupted transfer had left.
    ``structure`` describes what the structure check found.
    """

    name: str
    path: Path
    url: str
    size: int
    sha256: str
    sha256_check: str
    transferred: bool
    resumed_from: int
    structure: str

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
            "sha256_check": self.sha256_check,
            "transferred": self.transferred,
            "resumed_from": self.resumed_from,
            "structure": self.structure,
        }


@dataclass(frozen=True)
class _Target:
    """What to fetch and where: the dataset name, its file name in the directory, the URL
    to read and where it came from (for messages), the catalogue entry if any."""

    name: str
    file_name: str
    url: str
    origin: str
    entry: CatalogueEntry | None

    @property
    def said(self) -> str:
        """`` (where the URL came from)`` for messages, or nothing for a given URL."""
        return f" ({self.origin})" if self.origin else ""


def _no_progress(_: DownloadProgress) -> None:
    return None


def _size_text(count: int) -> str:
    return format_size(count)


def normalize_sha256(text: str) -> str:
    """``text`` as 64 lower-case hex digits; InputError otherwise."""
    value = text.strip().lower()
    if not _HEX64.match(value):
        raise InputError(f"--sha256 must be 64 hexadecimal digits, got {text!r}")
    return value


def _is_url(spec: str) -> bool:
    return "://" in spec


def _join_mirror(mirror: str, file_name: str) -> str:
    """The mirror's address of ``file_name``: ``MIRROR/FILE`` (quoted in a URL)."""
    if _is_url(mirror):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(file_name)
    return str(Path(mirror) / file_name)


def _url_file_name(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    name = urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise InputError(f"{url}: the URL names no file (it must end with the file's name)")
    return name


def _crop_name(file_name: str, max_vectors: int) -> str:
    stem, suffix = os.path.splitext(file_name)
    return f"{stem}.first-{max_vectors}{suffix}"


def _resolve_target(
    spec: str, folder: Path, mirror: str | None, max_vectors: int | None
) -> _Target:
    """The name, file, URL and origin for ``spec`` (a catalogue name, a name the registry
    knows, or a URL)."""
    entry: CatalogueEntry | None = None
    if _is_url(spec):
        file_name = _url_file_name(spec)
        url, origin = spec, ""
    else:
        if spec in BUNDLED_DATASETS:
            raise InputError(f"{spec} is bundled with annkit: there is nothing to download")
        entry = find_entry(spec)
        if entry is None:
            known = read_registry(folder).get(spec)
            if known is None:
                close = closest_names(spec, sorted({*_catalogue_and(folder)}))
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise InputError(
                    f"unknown dataset {spec!r}: not in the ann-benchmarks catalogue nor "
                    f"downloaded in {folder} ({hint}'annkit datasets list' shows the "
                    "catalogue; a URL works too)"
                )
            file_name, url, origin = known.file, known.url, "address recorded in the registry"
        else:
            if not entry.readable:
                raise InputError(
                    f"{entry.name} holds {entry.note or 'data annkit cannot read'}: "
                    "annkit cannot use it, so it is not downloaded"
                )
            file_name, url, origin = entry.file_name, entry.url, "catalogue address"
        if mirror:
            url, origin = (
                _join_mirror(mirror, file_name),
                "mirror from --mirror or ANNKIT_DATASETS_MIRROR",
            )
    suffix = os.path.splitext(file_name)[1].lower()
    if suffix not in DOWNLOAD_SUFFIXES:
        raise InputError(
            f"{file_name}: annkit downloads only {', '.join(DOWNLOAD_SUFFIXES)} files "
            "(it checks their structure before keeping them)"
        )
    if max_vectors is not None:
        if suffix not in CROP_SUFFIXES:
            raise InputError(
                f"--max-vectors crops only {', '.join(CROP_SUFFIXES)} files (a header, then "
                f"rows); {file_name} is not one"
            )
        file_name = _crop_name(file_name, max_vectors)
    # a URL's dataset, and a crop, are named after their file; a name stays itself
    name = os.path.splitext(file_name)[0] if _is_url(spec) or max_vectors is not None else spec
    return _Target(name=name, file_name=file_name, url=url, origin=origin, entry=entry)


def _catalogue_and(folder: Path) -> list[str]:
    """The catalogue's names and the names downloaded in ``folder``."""
    try:
        downloaded = list(read_registry(folder))
    except InputError:
        downloaded = []
    return catalogue_names() + downloaded


# --- sources: an HTTP(S) server, or a folder (a mirror given as a path or file:// URL) ---


@dataclass
class _Opened:
    """An open byte range of the source: ``start`` is where ``stream`` begins, ``total``
    the whole file's size (None when the server does not say), ``validator`` what names
    this version of the file (an ETag or Last-Modified date; a folder's size and mtime)."""

    stream: BinaryIO
    start: int
    total: int | None
    close: Callable[[], None]
    validator: str | None = None


def _local_path(url: str) -> Path | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    if "://" in url:
        raise InputError(f"{url}: unsupported address (use http://, https:// or file://)")
    return Path(url)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return _reason(inner)
        return str(inner)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_range(
    target: _Target, start: int, end: int | None, timeout: float, if_range: str | None = None
) -> _Opened:
    """Open the source at byte ``start`` (up to ``end``, exclusive, when given). A server
    that ignores the Range header, or whose file no longer matches ``if_range`` (the
    validator of the version a resumed transfer began with), answers from byte 0: ``start``
    then says 0."""
    local = _local_path(target.url)
    if local is not None:
        try:
            handle = open(local, "rb")  # noqa: SIM115 - closed by the caller through close
            stat = os.fstat(handle.fileno())
        except OSError as exc:
            raise DownloadError(f"cannot read {local}{target.said}: {_reason(exc)}") from exc
        size, validator = stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}"
        if if_range is not None and if_range != validator:
            start = 0  # the file changed since the transfer began
        if start > 0 and start >= size:
            handle.close()
            raise _RangeNotSatisfiable(size)
        handle.seek(start)
        return _Opened(handle, start, size, handle.close, validator)
    headers = {"User-Agent": "annkit", "Accept-Encoding": "identity"}
    if start > 0 or end is not None:
        last = "" if end is None else str(end - 1)
        headers["Range"] = f"bytes={start}-{last}"
        if start > 0 and if_range is not None:
            headers["If-Range"] = if_range
    request = urllib.request.Request(target.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            total = _content_range_total(exc.headers.get("Content-Range"))
            exc.close()
            raise _RangeNotSatisfiable(total) from exc
        exc.close()
        raise DownloadError(f"{target.url}{target.said}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {target.url}{target.said}: {_reason(exc)}") from exc
    except ValueError as exc:
        raise InputError(f"{target.url}: not a valid address ({exc})") from exc
    status = response.status
    validator = _strong_etag(response.headers.get("ETag")) or response.headers.get("Last-Modified")
    if status == 206:
        first, total = _parse_content_range(response.headers.get("Content-Range"), target.url)
        if first != start:
            response.close()
            raise DownloadError(
                f"{target.url}: asked for bytes from {start} but the server sent from {first}"
            )
        return _Opened(response, start, total, response.close, validator)
    length = response.headers.get("Content-Length")
    total = int(length) if length is not None and length.isdigit() else None
    return _Opened(response, 0, total, response.close, validator)


def _strong_etag(value: str | None) -> str | None:
    """An ETag usable in If-Range (a weak one, ``W/...``, is not)."""
    if value is None or value.startswith("W/"):
        return None
    return value


class _RangeNotSatisfiable(Exception):
    """HTTP 416: the requested start is at or beyond the end of the file."""

    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def _content_range_total(header: str | None) -> int | None:
    match = re.match(r"^\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*$", header or "")
    return int(match.group(1)) if match else None


def _parse_content_range(header: str | None, url: str) -> tuple[int, int | None]:
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", header or "")
    if not match:
        raise DownloadError(f"{url}: partial answer with an unreadable Content-Range {header!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


# --- the transfer ---


def _transfer(
    target: _Target,
    part: Path,
    handle: BinaryIO,
    end: int | None,
    timeout: float,
    progress: ProgressCallback,
) -> tuple[int, int]:
    """Bring ``part`` (open for appending in ``handle``) up to the whole file, or up to byte
    ``end`` when given. Returns (bytes already there before, the expected final size)."""
    start = os.fstat(handle.fileno()).st_size
    began = _read_part_info(part) if start > 0 else None
    if start > 0 and (began is None or began.get("url") != target.url):
        began = None  # unknown version, or another address: Range without If-Range
    if end is not None and start > end:
        handle.truncate(0)
        start = 0
    if end is not None and start == end:
        return start, end
    validator = began.get("validator") if began is not None else None
    if not isinstance(validator, str):
        validator = None
    try:
        opened = _open_range(target, start, end, timeout, validator)
    except _RangeNotSatisfiable as exc:
        if exc.total is not None and start == exc.total and end is None:
            return start, start  # the previous transfer had every byte
        handle.truncate(0)  # the .part is longer than the file: start again
        start = 0
        opened = _open_from_start(target, end, timeout)
    recorded_total = began.get("total") if began is not None else None
    if opened.start > 0 and recorded_total is not None and opened.total != recorded_total:
        opened.close()  # the file's size changed since the transfer began: start again
        handle.truncate(0)
        opened = _open_from_start(target, end, timeout)
    resumed = opened.start
    if opened.start == 0:
        if start > 0:
            handle.truncate(0)  # the server ignored Range or the file changed: start again
        _write_part_info(part, target.url, opened)
    expected = end if end is not None else opened.total
    if end is not None and opened.total is not None and opened.total < end:
        opened.close()
        raise DownloadError(
            f"{target.url}: the file has {opened.total:,} bytes but {end:,} are needed"
        )
    done = opened.start
    verb = "resuming" if resumed else "downloading"
    where = f" at {_size_text(resumed)}" if resumed else ""
    of = f" of {_size_text(expected)}" if expected is not None else ""
    progress(
        DownloadProgress(
            "download",
            f"{verb} {target.file_name}{where}{of} from {target.url}",
            done,
            expected,
        )
    )
    try:
        while expected is None or done < expected:
            want = CHUNK_BYTES if expected is None else min(CHUNK_BYTES, expected - done)
            chunk = opened.stream.read(want)
            if not chunk:
                break
            handle.write(chunk)
            done += len(chunk)
            progress(DownloadProgress("download", "", done, expected))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        handle.flush()
        raise _interrupted(target, part, done, expected, _reason(exc)) from exc
    finally:
        opened.close()
        handle.flush()
    if expected is None:
        expected = done  # no size from the server: what arrived is the file
    if done < expected:
        raise _interrupted(target, part, done, expected, "the connection closed early")
    return resumed, expected


def _open_from_start(target: _Target, end: int | None, timeout: float) -> _Opened:
    try:
        return _open_range(target, 0, end, timeout)
    except _RangeNotSatisfiable as exc:
        raise DownloadError(f"{target.url}: the server has no bytes to send (empty file)") from exc


def part_info_path(part: Path) -> Path:
    """The small JSON file beside ``part`` saying which version of which URL it holds."""
    return part.with_name(part.name + ".json")


def _read_part_info(part: Path) -> dict[str, object] | None:
    try:
        data = json.loads(part_info_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_part_info(part: Path, url: str, opened: _Opened) -> None:
    write_text(
        part_info_path(part),
        json.dumps({"url": url, "total": opened.total, "validator": opened.validator}) + "\n",
    )


def _remove_part(part: Path) -> None:
    """Delete a ``.part`` file and the note beside it."""
    part.unlink(missing_ok=True)
    part_info_path(part).unlink(missing_ok=True)


def _interrupted(
    target: _Target, part: Path, done: int, expected: int | None, reason: str
) -> DownloadError:
    of = f" of {expected:,}" if expected is not None else ""
    return DownloadError(
        f"transfer of {target.url} interrupted after {done:,}{of} bytes ({reason}); "
        f"{part.name} was kept: run the same command again to resume"
    )


def _bin_header(target: _Target, part: Path, timeout: float) -> tuple[int, int]:
    """(n, d) from the first 8 bytes: from ``part`` when it has them, else from the source."""
    if part.is_file() and part.stat().st_size >= HEADER_BYTES:
        with open(part, "rb") as handle:
            raw = handle.read(HEADER_BYTES)
    else:
        try:
            opened = _open_range(target, 0, HEADER_BYTES, timeout)
        except _RangeNotSatisfiable as exc:
            raise DownloadError(f"{target.url}: shorter than an 8-byte header") from exc
        try:
            raw = opened.stream.read(HEADER_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"cannot read the header of {target.url}: {_reason(exc)}") from exc
        finally:
            opened.close()
        if len(raw) < HEADER_BYTES:
            raise DownloadError(f"{target.url}: shorter than an 8-byte header")
    n, d = (int(v) for v in np.frombuffer(raw, dtype="<u4"))
    if n == 0 or d == 0:
        raise DownloadError(f"{target.url}: the header says {n} x {d}: no vectors")
    return n, d


def _sha256_of(path: Path, progress: ProgressCallback, name: str) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    progress(DownloadProgress("sha256", f"checking the SHA-256 of {name}", 0, size))
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            progress(DownloadProgress("sha256", "", done, size))
    return digest.hexdigest()


# --- structure checks ---


def check_dataset_structure(path: Path, label: str) -> str:
    """Check the structure of a downloaded file and describe it; DatasetError naming
    ``label`` when it is wrong.

    An HDF5 file must be an ann-benchmarks dataset annkit can use: 2-D numeric ``train`` and
    ``test`` of one dimension, integer ``neighbors`` and numeric ``distances`` of the same
    (queries, k) shape with ids below the base size, and a ``distance`` metric annkit knows.
    A ``.fbin`` / ``.u8bin`` / ``.i8bin`` / ``.ibin`` file must hold exactly the bytes its
    header claims.
    """
    suffix = os.path.splitext(label)[1].lower()
    if suffix in BIN_DTYPES:
        return _check_bin(path, label, suffix)
    try:
        return _check_hdf5(path, label)
    except DatasetError as exc:
        raise DatasetError(str(exc).replace(path.name, label)) from exc


def _check_hdf5(path: Path, label: str) -> str:
    parts = read_ann_benchmarks(path)
    if parts.neighbors is None:
        raise DatasetError(f"{label}: missing dataset 'neighbors' (ground-truth ids)")
    with open_hdf5(path) as handle:
        distances_shape = read_vector_dataset(
            path, handle, "distances", "ground-truth distances"
        ).shape
    if distances_shape != parts.neighbors.shape:
        raise DatasetError(
            f"{label}: 'distances' has shape {distances_shape} but 'neighbors' has shape "
            f"{parts.neighbors.shape}"
        )
    if parts.distance is None:
        raise DatasetError(f"{label}: no 'distance' attribute: the file does not say its metric")
    try:
        metric = normalize_metric(parts.distance)
    except InputError as exc:
        raise DatasetError(f"{label}: 'distance' attribute: {exc}") from exc
    check_dataset_parts(label, parts.base, parts.queries, parts.neighbors, parts.weights)
    (n_base, dim), n_queries, k = parts.base.shape, parts.queries.shape[0], parts.neighbors.shape[1]
    return f"train {n_base:,} x {dim}, test {n_queries:,}, top-{k} neighbors, {metric}"


def _check_bin(path: Path, label: str, suffix: str) -> str:
    dtype = BIN_DTYPES[suffix]
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise DatasetError(f"{label}: truncated file: {size} bytes is shorter than the header")
    with open(path, "rb") as handle:
        n, d = (int(v) for v in np.frombuffer(handle.read(HEADER_BYTES), dtype="<u4"))
    if n == 0 or d == 0:
        raise DatasetError(f"{label}: the header says {n} x {d}: no vectors")
    expected = HEADER_BYTES + n * d * dtype.itemsize
    if suffix == ".ibin" and size == HEADER_BYTES + n * d * 8:
        return f"{n:,} x {d} int32 ids with their float32 distances"  # big-ann ground truth
    if size != expected:
        raise DatasetError(
            f"{label}: the header claims {n} x {d} {dtype.name} ({expected:,} bytes) but the "
            f"file has {size:,} bytes"
        )
    return f"{n:,} x {d} {dtype.name}"


# --- the command ---


def _expected_sha256(target: _Target, given: str | None, folder: Path) -> tuple[str | None, str]:
    """The SHA-256 the file must have and where it comes from."""
    if given is not None:
        return normalize_sha256(given), "--sha256"
    if target.entry is not None and target.entry.sha256:
        return target.entry.sha256.lower(), "catalogue"
    record = read_registry(folder).get(target.name)
    if record is not None and record.file == target.file_name:
        return record.sha256, "registry"
    return None, "recorded"


def _mismatch(label: str, source: str, expected: str, actual: str) -> str:
    said = {
        "--sha256": "--sha256",
        "catalogue": "the catalogue",
        "registry": "the SHA-256 recorded at its first download",
    }[source]
    return f"{label}: checksum mismatch: SHA-256 {actual} but {said} says {expected}"


def get_dataset(
    spec: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    max_vectors: int | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: ProgressCallback | None = None,
) -> DownloadedDataset:
    """Download ``spec`` (a catalogue name such as ``glove-25-angular``, or a URL) into the
    download directory (``directory``, else ANNKIT_DATA_DIR, else
    ``~/.cache/annkit/datasets``) and verify it; return the verified file.

    ``sha256``: the checksum the file must have (else the catalogue's, else the one the
    registry recorded at the name's first download; with none, it is recorded now).
    ``max_vectors``: keep the first N rows of a ``.fbin`` / ``.u8bin`` / ``.i8bin`` file
    (only those bytes are requested; the header is rewritten with n = N; the file is
    ``STEM.first-N.SUFFIX``). ``mirror``: a URL or folder serving the catalogue's files
    (default ANNKIT_DATASETS_MIRROR). ``offline``: use only the directory (default
    ANNKIT_OFFLINE). ``timeout``: seconds to wait for the server. A file already in the
    directory is checked, not downloaded again.
    """
    report = progress or _no_progress
    if max_vectors is not None and max_vectors < 1:
        raise InputError(f"--max-vectors must be at least 1, got {max_vectors}")
    folder = data_dir(directory)
    offline = offline_from_env() if offline is None else offline
    mirror = mirror_from_env() if mirror is None else (mirror or None)
    given = normalize_sha256(sha256) if sha256 is not None else None
    target = _resolve_target(spec, folder, mirror, max_vectors)
    destination = folder / target.file_name
    expected, source = _expected_sha256(target, given, folder)
    if destination.is_file():
        return _check_present(target, destination, folder, expected, source, report)
    if offline:
        raise DownloadError(
            f"{target.name} is not in {folder} and offline mode (--offline or "
            "ANNKIT_OFFLINE) forbids downloading it"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the download directory: {exc.strerror}") from exc
    part = folder / (target.file_name + PART_SUFFIX)
    with _locked_part(part) as handle:
        end = kept_rows = None
        if max_vectors is not None:
            n, d = _bin_header(target, part, timeout)
            itemsize = BIN_DTYPES[os.path.splitext(target.file_name)[1].lower()].itemsize
            kept_rows = min(n, max_vectors)
            end = HEADER_BYTES + kept_rows * d * itemsize
        resumed, size = _transfer(target, part, handle, end, timeout, report)
        if kept_rows is not None:
            _rewrite_count(part, kept_rows)
        os.fsync(handle.fileno())
    # verified after the lock is released: libhdf5 locks the files it opens too
    return _verify_and_place(
        target, part, destination, folder, expected, source, size, resumed, report
    )


def _lock_exclusive(handle: BinaryIO) -> None:
    """Take an exclusive, non-blocking lock on ``handle`` (OSError when another process
    holds it); where the platform has no flock, nothing is locked."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextmanager
def _locked_part(part: Path) -> Iterator[BinaryIO]:
    """``part`` open for appending, with an exclusive lock so that two downloads of the
    same file never write it at once."""
    try:
        handle = open(part, "ab")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"{part}: cannot write: {exc.strerror}") from exc
    with handle:
        try:
            _lock_exclusive(handle)
        except OSError as exc:
            raise DownloadError(
                f"{part.name}: another annkit is downloading this file; wait for it to finish"
            ) from exc
        try:
            yield handle
        finally:
            if os.fstat(handle.fileno()).st_size == 0:
                _remove_part(part)  # nothing arrived: nothing to resume


def _rewrite_count(part: Path, count: int) -> None:
    with open(part, "r+b") as handle:
        handle.seek(0)
        handle.write(np.array([count], dtype="<u4").tobytes())


def _verify_and_place(
    target: _Target,
    part: Path,
    destination: Path,
    folder: Path,
    expected: str | None,
    source: str,
    size: int,
    resumed: int,
    report: ProgressCallback,
) -> DownloadedDataset:
    """Check the finished ``part`` (size, SHA-256, structure), then rename it to
    ``destination`` and record its checksum; a failed check deletes it."""
    actual_size = part.stat().st_size
    if actual_size != size:
        _remove_part(part)
        raise DownloadError(
            f"{target.file_name}: {actual_size:,} bytes arrived but the server announced "
            f"{size:,}; the download was removed"
        )
    digest = _sha256_of(part, report, target.file_name)
    if expected is not None and digest != expected:
        _remove_part(part)
        raise DownloadError(
            _mismatch(target.file_name, source, expected, digest) + "; the download was removed"
        )
    report(DownloadProgress("structure", f"checking the structure of {target.file_name}", 0, None))
    try:
        structure = check_dataset_structure(part, target.file_name)
    except DatasetError as exc:
        _remove_part(part)
        raise DownloadError(f"refused: {exc}; the download was removed") from exc
    try:
        os.replace(part, destination)
    except OSError as exc:
        raise InputError(f"{destination}: cannot write: {exc.strerror}") from exc
    part_info_path(part).unlink(missing_ok=True)
    _sync_folder(folder)
    record_download(
        folder,
        RegistryRecord(
            name=target.name,
            file=target.file_name,
            url=target.url,
            size=actual_size,
            sha256=digest,
            recorded=now_text(),
        ),
    )
    return DownloadedDataset(
        name=target.name,
        path=destination,
        url=target.url,
        size=actual_size,
        sha256=digest,
        sha256_check=source,
        transferred=True,
        resumed_from=resumed,
        structure=structure,
    )


def _check_present(
    target: _Target,
    destination: Path,
    folder: Path,
    expected: str | None,
    source: str,
    report: ProgressCallback,
) -> DownloadedDataset:
    """Check a file already in the directory against its expected (or recorded) SHA-256
    and its structure; it is never deleted (it may be the user's own)."""
    digest = _sha256_of(destination, report, target.file_name)
    if expected is not None and digest != expected:
        raise DownloadError(
            _mismatch(str(destination), source, expected, digest)
            + "; delete it to download it again"
        )
    report(DownloadProgress("structure", f"checking the structure of {target.file_name}", 0, None))
    try:
        structure = check_dataset_structure(destination, target.file_name)
    except DatasetError as exc:
        raise DownloadError(f"{destination}: {exc}; delete it to download it again") from exc
    size = destination.stat().st_size
    record = read_registry(folder).get(target.name)
    if record is None or record.sha256 != digest or record.file != target.file_name:
        record_download(
            folder,
            RegistryRecord(
                name=target.name,
                file=target.file_name,
                url=record.url if record is not None else target.url,
                size=size,
                sha256=digest,
                recorded=now_text(),
            ),
        )
    return DownloadedDataset(
        name=target.name,
        path=destination,
        url=record.url if record is not None else target.url,
        size=size,
        sha256=digest,
        sha256_check=source,
        transferred=False,
        resumed_from=0,
        structure=structure,
    )


def _sync_folder(folder: Path) -> None:
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class CatalogueRow:
    """One line of ``annkit datasets list``: the catalogue entry and, when the file is in
    the download directory, its path and recorded SHA-256."""

    entry: CatalogueEntry
    path: Path | None
    sha256: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.entry.to_dict(),
            "downloaded": self.path is not None,
            "path": str(self.path) if self.path is not None else None,
            "recorded_sha256": self.sha256,
        }


def list_catalogue(directory: str | os.PathLike[str] | None = None) -> list[CatalogueRow]:
    """Every catalogue dataset, with its file and recorded SHA-256 when downloaded."""
    folder = data_dir(directory)
    records = read_registry(folder) if folder.is_dir() else {}
    rows = []
    for entry in catalogue():
        path = folder / entry.file_name
        record = records.get(entry.name)
        rows.append(
            CatalogueRow(
                entry=entry,
                path=path if path.is_file() else None,
                sha256=record.sha256 if record is not None else None,
            )
        )
    return rows
