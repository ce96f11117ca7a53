"""Line numbers in TOML text: where a table or key is written, so that a sweep file's
errors name their line (tomllib reports none for a file that parses)."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _strip_comment(line: str) -> str:
    in_string: str | None = None
    for position, char in enumerate(line):
        if in_string:
            if char == in_string:
                in_string = None
        elif char in "\"'":
            in_string = char
        elif char == "#":
            return line[:position]
    return line


class Locator:
    """Finds the line of a key in the raw TOML text (tomllib reports none for valid files)."""

    def __init__(self, text: str) -> None:
        self.lines = [_strip_comment(line) for line in text.splitlines()]
        self.headers: list[tuple[int, bool, str]] = []  # (index, is_array, dotted name)
        for index, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match:
                name = re.sub(r"\s*\.\s*", ".", match.group(2)).replace('"', "").replace("'", "")
                self.headers.append((index, match.group(1) == "[[", name))

    def _span(self, start: int) -> int:
        for index, _, _ in self.headers:
            if index > start:
                return index
        return len(self.lines)

    def _find(self, key: str, start: int, stop: int) -> int | None:
        pattern = re.compile(
            rf"(?:^|[\s{{,.])(?:\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*[=.]"
        )
        for index in range(start, stop):
            if pattern.search(self.lines[index]):
                return index + 1
        return None

    def table(self, name: str) -> int | None:
        """1-based line of the header ``[name]``."""
        for index, is_array, header in self.headers:
            if header == name and not is_array:
                return index + 1
        return None

    def table_key(self, name: str, key: str) -> int | None:
        """Line of ``key`` inside the ``[name]`` table ("" = the top level, before any table)."""
        if not name:
            return self._find(key, 0, self.headers[0][0] if self.headers else len(self.lines))
        header = self.table(name)
        if header is not None:
            found = self._find(key, header, self._span(header - 1))
            if found is not None:
                return found
        return header

    def engine_block(self, position: int) -> tuple[int, int] | None:
        """0-based [start, stop) lines of the ``position``-th ``[[engine]]`` block."""
        starts = [index for index, is_array, name in self.headers if is_array and name == "engine"]
        if position >= len(starts):
            return None
        start = starts[position]
        stop = len(self.lines)
        for index, _, name in self.headers:
            if index > start and not name.startswith("engine."):
                stop = index
                break
        return start, stop

    def engine_key(self, position: int, key: str, within: str | None = None) -> int | None:
        """Line of ``key`` in the ``position``-th engine block (inside ``within`` = build or
        query when given); falls back to the section's line, then the block's header."""
        block = self.engine_block(position)
        if block is None:
            return None
        start, stop = block
        if within is not None:
            anchor = None
            for index in range(start, stop):
                line = self.lines[index]
                sub = _HEADER.match(line)
                if sub and sub.group(2).replace(" ", "") == f"engine.{within}":
                    anchor = index
                    break
                if not sub and re.search(rf"(?:^|[\s{{,]){within}\s*[=.]", line):
                    anchor = index
                    break
            if anchor is not None:
                found = self._find(key, anchor, stop)
                if found is not None:
                    # the key itself may be on the anchor line after "build ="
                    return found
                return anchor + 1
        found = self._find(key, start + 1, stop)
        return found if found is not None else start + 1
