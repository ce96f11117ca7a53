"""Memory guard: estimate what a build or ground-truth run needs and refuse when it cannot fit."""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

import numpy as np

from annkit.errors import ResourceError

SAFETY = 1.25  # headroom over the estimate for allocator slack and temporaries


def available_bytes() -> int | None:
    """Memory this process can still use: MemAvailable, capped by a cgroup limit (None when
    it cannot be read)."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        available = None
    try:
        limit_text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        usage = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit_text != "max":
            room = int(limit_text) - usage
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    override = os.environ.get("ANNKIT_MEMORY_LIMIT")
    if override:
        with contextlib.suppress(ValueError):
            available = int(float(override))
    return available


def format_size(count: float) -> str:
    """A byte count in its largest binary unit: ``512 B``, ``12.5 KiB``, ``15.8 MiB``,
    ``2.00 GiB`` (GiB and TiB with two decimals; never ``0.00`` for a small count)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            if unit == "B":
                return f"{value:.0f} B"
            return f"{value:.2f} {unit}" if unit == "GiB" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"


def check_memory(needed: int, what: str, advice: str, force: bool = False) -> None:
    """Raise ResourceError when ``needed`` bytes (times a safety margin) exceed what is
    available (ANNKIT_MEMORY_LIMIT, in bytes, overrides the reading), naming the estimate and
    what to change; ``force`` skips the check."""
    if force:
        return
    available = available_bytes()
    if available is None:
        return
    if needed * SAFETY > available:
        raise ResourceError(
            f"{what} needs about {format_size(needed)} of memory but only "
            f"{format_size(available)} is available: {advice}, or pass --no-memory-check to "
            "try anyway"
        )


def ground_truth_bytes(n_base: int, n_queries: int, dim: int, k: int, block_rows: int) -> int:
    """Peak bytes of :func:`annkit.groundtruth.compute_ground_truth`."""
    pool = k + max(8, k // 16)
    rows = min(n_base, block_rows)
    base_block = rows * dim * (4 + 8 // max(1, dim))  # prepared float32 block (+ norms)
    queries = n_queries * dim * 4
    results = n_queries * pool * (8 + 4) * 3  # best, block and merged candidates
    rerank = 256 * pool * dim * 8 * 2 + n_queries * pool * 8
    return int(base_block + queries + results + rerank + n_base * 8)


def release_pages(block: np.ndarray) -> None:
    """Drop the pages of a block of a memory-mapped file from this process's resident memory
    once it is searched (the kernel reads them again if needed), so a base larger than memory
    never stays resident; nothing for an in-memory array."""
    mapping = getattr(block, "_mmap", None)
    if mapping is None or not hasattr(mmap, "MADV_DONTNEED") or block.nbytes == 0:
        return
    try:
        origin = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError):  # a closed or foreign mapping: leave it alone
        return
    begin = block.ctypes.data - origin
    end = begin + block.nbytes
    begin -= begin % mmap.PAGESIZE
    if 0 <= begin < end <= len(mapping):
        mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)
