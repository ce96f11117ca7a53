"""Run a numpy-heavy function over blocks on a few threads (numpy releases the GIL)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor


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
