"""A guard against a libhdf5 hang on damaged global heaps.

Variable-length strings (such as the ``distance`` attribute h5py writes) live in "global heap
collections" (signature ``GCOL``). libhdf5 decodes a collection by walking its objects; a
free-space object whose size field is 0 makes that walk loop forever, and an object running
past the collection's end is read out of bounds. One flipped byte in a string's size is enough.

Before annkit reads any variable-length value it walks every collection in the file the same
way libhdf5 does and rejects the file if a walk would not end cleanly. Raw data of contiguous
datasets is skipped, so the scan covers only the metadata and heap parts of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import h5py

from annkit.errors import DatasetError
from annkit.io._common import display_name, file_size

_SIGNATURE = b"GCOL"
_MIN_COLLECTION = 4096  # libhdf5 never allocates a smaller collection (H5HG_MINSIZE)
_SCAN_LIMIT = 256 * 2**20  # past this many non-raw-data bytes the guard is skipped
_READ_BLOCK = 16 * 2**20


def _raw_extents(handle: h5py.File) -> list[tuple[int, int]]:
    """(start, end) byte ranges of contiguous datasets' raw data, sorted and merged."""
    extents: list[tuple[int, int]] = []

    def visit(_name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.chunks is not None:
            return
        try:
            offset = obj.id.get_offset()
            size = obj.id.get_storage_size()
        except (OSError, RuntimeError, ValueError, KeyError):
            return
        if offset is not None and size > 0:
            extents.append((int(offset), int(offset) + int(size)))

    handle.visititems(visit)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(extents):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _gaps(extents: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    gaps: list[tuple[int, int]] = []
    position = 0
    for start, end in extents:
        if start > position:
            gaps.append((position, min(start, total)))
        position = max(position, end)
    if position < total:
        gaps.append((position, total))
    return [(start, end) for start, end in gaps if end > start]


def _collection_is_sound(chunk: bytes, length_size: int) -> bool:
    """Walk one collection's objects exactly as libhdf5's decoder does; False if the walk
    would not advance or an object would run past the collection's end."""
    header = 8 + length_size
    object_header = 8 + length_size
    size = len(chunk)
    position = header
    while position < size:
        if position + object_header > size:
            return True  # trailing bytes too small for an object: free space
        index = int.from_bytes(chunk[position : position + 2], "little")
        start = position + 8
        object_size = int.from_bytes(chunk[start : start + length_size], "little")
        need = object_header + ((object_size + 7) & ~7) if index > 0 else object_size
        if need <= 0 or position + need > size:
            return False
        position += need
    return True


def check_global_heaps(path: Path, handle: h5py.File) -> None:
    """Raise DatasetError if a global heap collection in the file is damaged in a way that
    would make libhdf5 hang or read out of bounds when decoding it."""
    total = file_size(path)
    try:
        length_size = int(handle.id.get_create_plist().get_sizes()[1])
        gaps = _gaps(_raw_extents(handle), total)
    except (OSError, RuntimeError, ValueError, KeyError):
        return
    # Only 8-byte lengths (what every common writer uses) are walked; others are left alone.
    if length_size != 8 or sum(end - start for start, end in gaps) > _SCAN_LIMIT:
        return
    with open(path, "rb") as stream:
        for gap_start, gap_end in gaps:
            for block_start in range(gap_start, gap_end, _READ_BLOCK):
                # Overlap blocks by 3 bytes so a signature split across two reads is found.
                block_end = min(block_start + _READ_BLOCK + 3, gap_end)
                stream.seek(block_start)
                block = stream.read(block_end - block_start)
                found = block.find(_SIGNATURE)
                while found >= 0:
                    _check_collection(stream, path, block_start + found, total, length_size)
                    found = block.find(_SIGNATURE, found + 1)


def _check_collection(
    stream: BinaryIO, path: Path, address: int, total: int, length_size: int
) -> None:
    stream.seek(address)
    head = stream.read(8 + length_size)
    if len(head) < 8 + length_size or head[4] != 1 or head[5:8] != b"\0\0\0":
        return  # not a collection header, just the same four bytes by chance
    size = int.from_bytes(head[8:], "little")
    if size < _MIN_COLLECTION or address + size > total:
        return  # libhdf5 rejects such a header itself
    stream.seek(address)
    chunk = stream.read(size)
    if not _collection_is_sound(chunk, length_size):
        raise DatasetError(
            f"{display_name(path)}: damaged HDF5 file (corrupt global heap at byte {address})"
        )
