"""The ``annkit`` click group: one place that turns library errors into one-line messages."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from annkit import __version__
from annkit.errors import AnnkitError

_INTERRUPTED = ("annkit: interrupted; finished work was kept (run the same command again to "
                "resume a sweep)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


class AnnkitGroup(click.Group):
    """A click group whose ``main`` reports errors as one line on stderr, never a traceback
    (unless ``--debug`` or ANNKIT_DEBUG=1): exit 2 for input errors, 1 for a failed gate."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("ANNKIT_DEBUG") == "1"
        extra.pop("standalone_mode", None)
        try:
            code = super().main(argv, prog_name=prog_name or "annkit", standalone_mode=False,
                                **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort as exc:  # click turns Ctrl-C inside a command into Abort
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            click.echo(_INTERRUPTED if interrupted else "annkit: aborted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo(_INTERRUPTED, err=True)
            sys.exit(130)
        except AnnkitError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"Error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except (OSError, MemoryError) as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"Error: {_one_line(f'{type(exc).__name__}: {exc}')}", err=True)
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
            if debug:
                traceback.print_exc()
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
                "(rerun with --debug for details)",
                err=True,
            )
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=AnnkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="annkit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """annkit: build, query, evaluate and benchmark approximate-nearest-neighbour indexes,
    with recall for the long tail of queries made visible."""


def _register() -> None:
    from annkit.cli import (
        adapt,
        bench,
        build,
        compare,
        datasets,
        effort,
        evaluate,
        explain,
        groundtruth,
        info,
        query,
        tune,
    )

    for module in (build, evaluate, groundtruth, info, query, bench, compare, effort, tune,
                   explain, datasets, adapt):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="annkit")
