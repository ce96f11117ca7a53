"""The one way tests run annkit's commands in-process (pytest puts tests/ on sys.path for
tests/conftest.py, so any test imports it): click's CliRunner on the real command group."""

from __future__ import annotations

from collections.abc import Mapping

from click.testing import CliRunner, Result

from annkit.cli.main import cli

#: environment for tables 200 columns wide, so that no cell wraps
WIDE = {"COLUMNS": "200"}
#: environment without COLUMNS: rich's own width (80 columns when not a terminal)
NO_COLUMNS: dict[str, str | None] = {"COLUMNS": None}


def run_cli(
    *args: object, env: Mapping[str, str | None] | None = None, prog_name: str = "annkit"
) -> Result:
    """Run ``annkit *args`` (each argument passed through ``str``) with stdout and stderr
    captured apart, never a terminal; ``env`` sets (or, with None, unsets) environment
    variables for this call only; usage messages name the program ``annkit``."""
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=env, prog_name=prog_name)
