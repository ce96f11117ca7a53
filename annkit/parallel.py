"""Run a numpy-heavy function over blocks on a few threads (numpy releases the GIL), and
long native work so that Ctrl-C still stops the caller at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: name of the thread :func:`run_interruptibly` runs native work in
NATIVE_THREAD = "annkit-build"


def run_interruptibly(work: Callable[[], T], name: str = NATIVE_THREAD) -> T:
    """``work()``, run so that Ctrl-C stops the caller at once: called from the main
    thread, it runs in a daemon thread named ``name`` while the main thread waits in 0.1 s
    steps, so a KeyboardInterrupt is raised there within about 0.1 s even while native code
    (a build, an exact search: they block signal handling) runs; ``work``'s own exception
    is re-raised. After an interrupt the daemon thread may still be running native code
    that cannot be stopped, so the process should end (the command layer then exits without
    waiting for it). From any other thread ``work`` simply runs there."""
    if threading.current_thread() is not threading.main_thread():
        return work()
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if errors:
        raise errors[0]
    return results[0]


def for_each_block(function: Callable[[int], None], starts: Iterable[int], threads: int) -> None:
    """Call ``function(start)`` for every start, on up to ``threads`` threads; exceptions
    propagate. Each call must write its own disjoint part of the output."""
    starts = list(starts)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(starts))) as pool:
            list(pool.map(function, starts))
    else:
        for start in starts:
            function(start)
