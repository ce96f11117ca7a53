"""Sweep files for tests: tests/data/sweeps/<name>.toml, read by name (pytest puts tests/ on
sys.path for tests/conftest.py, so any test imports this)."""

from __future__ import annotations

from pathlib import Path
from string import Template

SWEEPS = Path(__file__).resolve().parent / "data" / "sweeps"


def sweep_text(name: str, **values: object) -> str:
    """The TOML text of tests/data/sweeps/``name``.toml; ``values`` fill its ``$placeholders``
    (a template: every placeholder must be given)."""
    text = (SWEEPS / f"{name}.toml").read_text(encoding="utf-8")
    return Template(text).substitute(values) if values else text
