"""The error of a sweep that cannot be read or run (a one-line message naming file and line)."""

from __future__ import annotations

from annkit.errors import InputError


class SweepError(InputError):
    """A sweep file that cannot be read or fails validation (message names file and line)."""
