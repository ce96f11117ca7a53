"""A local HTTP server for download tests: serves a folder on 127.0.0.1 with HTTP Range
support (http.server's SimpleHTTPRequestHandler has none), can cut a transfer after a
given number of bytes, can ignore Range, and records every request. Nothing else is ever
contacted: tests point annkit at this server or at a port where nothing listens."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from annkit.io import write_dataset_hdf5
from annkit.types import Dataset


@dataclass
class ServerState:
    """What the test controls and sees: the served folder, transfers to cut (file name ->
    bytes of the body sent before the connection is closed; used once, by the first answer
    whose body is longer), whether Range is honoured, whether answers carry an ETag (the
    content's hash; If-Range is honoured), and the requests made as (path, Range or None)."""

    root: Path
    url: str = ""
    cut: dict[str, int] = field(default_factory=dict)
    honour_range: bool = True
    send_etag: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class RangeHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.lstrip("/")
            requested = self.headers.get("Range")
            state.requests.append((name, requested))
            path = state.root / name
            if "/" in name or not path.is_file():
                self.send_error(404, "Not Found")
                return
            data = path.read_bytes()
            total = len(data)
            etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
            match = re.match(r"^bytes=(\d+)-(\d*)$", requested or "")
            if_range = self.headers.get("If-Range")
            if if_range is not None and if_range != etag:
                match = None  # the file changed: the whole file, as RFC 9110 says
            if match and state.honour_range:
                first = int(match.group(1))
                last = int(match.group(2)) if match.group(2) else total - 1
                if first >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                last = min(last, total - 1)
                body = data[first : last + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{total}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if state.send_etag:
                self.send_header("ETag", etag)
            self.end_headers()
            cut = state.cut.get(name)
            if cut is not None and cut < len(body):
                del state.cut[name]
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return RangeHandler


@contextmanager
def serve(root: Path) -> Iterator[ServerState]:
    """Serve ``root`` on 127.0.0.1 (a free port) until the block ends, also on failure."""
    state = ServerState(root=root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_small_dataset(path: Path, words: Dataset, n_base: int = 300, n_queries: int = 20) -> None:
    """A small real ann-benchmarks file: the first ``n_base`` words-10k vectors and
    ``n_queries`` queries with their exact angular top-10 (neighbors and distances)."""
    base = np.asarray(words.base[:n_base], dtype=np.float32)
    queries = np.asarray(words.queries[:n_queries], dtype=np.float32)
    unit_base = base / np.linalg.norm(base, axis=1, keepdims=True)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    similarity = unit_queries.astype(np.float64) @ unit_base.T.astype(np.float64)
    neighbors = np.argsort(-similarity, axis=1, kind="stable")[:, :10]
    distances = 1.0 - np.take_along_axis(similarity, neighbors, axis=1)
    write_dataset_hdf5(
        path,
        base=base,
        queries=queries,
        metric="angular",
        neighbors=neighbors,
        distances=distances,
    )
