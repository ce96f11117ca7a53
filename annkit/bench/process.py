"""The benchmark worker process, seen from the runner: spawning it (a fresh interpreter on
a socket pair), sending jobs and receiving messages with a time limit, and telling why it
died (signal or exit code). The sweep logic that uses it lives in :mod:`annkit.bench.runner`;
the worker's own side in :mod:`annkit.bench.worker`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from annkit.errors import EngineError


class WorkerDied(Exception):
    """The worker process is gone (its socket closed or broke)."""


class WorkerProcess:
    """A worker process (``python -m annkit.bench.worker``) and our end of its socket.

    A fresh interpreter rather than multiprocessing's spawn, which re-runs the caller's main
    script (a trap for scripts without a main guard, and impossible from stdin); rather
    than fork, which copies OpenMP state that can deadlock native libraries in the child.
    """

    def __init__(self, args: tuple) -> None:
        import annkit

        parent_socket, child_socket = socket.socketpair()
        package_root = str(Path(annkit.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        # -P: never import a same-named source folder from the working directory
        command = [sys.executable, "-P", "-m", "annkit.bench.worker", str(child_socket.fileno())]
        previous = ignore_interrupts()  # inherited: Ctrl-C is for the runner to handle
        try:
            self.process = subprocess.Popen(
                command,
                pass_fds=(child_socket.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            restore_interrupts(previous)
            child_socket.close()
        self.conn = Connection(parent_socket.detach())
        self.send((list(sys.path), *args))

    @classmethod
    def start(cls, args: tuple) -> WorkerProcess:
        """A started worker that has answered ``("ready",)``; EngineError when it could not
        start (its death reason or its ``("fatal", message)``)."""
        worker = cls(args)
        try:
            message = worker.receive(None)
        except WorkerDied:
            reason = worker.death_reason()
            worker.kill()
            raise EngineError(f"the benchmark worker could not start: {reason}") from None
        if message[0] != "ready":
            worker.kill()
            raise EngineError(f"the benchmark worker could not start: {message[1]}")
        return worker

    def send(self, message: Any) -> None:
        """Send one pickled message; WorkerDied when the worker is gone."""
        try:
            self.conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            raise WorkerDied() from None

    def receive(self, timeout: float | None) -> Any:
        """The next message, or None when ``timeout`` seconds pass first."""
        try:
            if not self.conn.poll(timeout):
                return None
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerDied() from None

    def death_reason(self) -> str:
        """Why the process ended (signal name or exit code), for a failed run's record."""
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the engine process died ({name})"
        return f"the engine process exited unexpectedly (exit code {code})"

    def kill(self) -> None:
        """Kill the process now (if alive), reap it and close the socket."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()

    def stop(self) -> None:
        """Ask the worker to exit (a None message), then make sure it is gone."""
        try:
            self.conn.send(None)
            self.process.wait(10)
        except (BrokenPipeError, EOFError, OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def ignore_interrupts() -> Any:
    """Ignore SIGINT (children inherit it); returns the previous handler, None off the main
    thread."""
    try:
        return signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        return None


def restore_interrupts(previous: Any) -> None:
    """Undo :func:`ignore_interrupts`."""
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
