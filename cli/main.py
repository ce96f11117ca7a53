"""The ``annkit`` click group: one place that turns library errors into one-line messages."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Any

import click

from annkit import __version__
from annkit.bundle import BUILD_THREAD
from annkit.cli.options import examples_epilog
from annkit.errors import AnnkitError

_INTERRUPTED = "annkit: interrupted"
#: what an interrupt leaves behind, per command (every file annkit writes is atomic)
INTERRUPTED = {
    "build": "annkit: interrupted: no index was written",
    "bench": (
        "annkit: interrupted: finished runs were kept; run the same command again to "
        "resume the sweep"
    ),
    "evaluate": "annkit: interrupted: nothing was written",
    "groundtruth": "annkit: interrupted: no ground-truth file was written",
    "tune": (
        "annkit: interrupted: no result; indexes finished in --cache-dir were kept "
        "and are reused next time"
    ),
    "effort": "annkit: interrupted: nothing was written",
    "query": "annkit: interrupted: no output file was written",
    "datasets": (
        "annkit: interrupted: no dataset file was written; an interrupted download keeps "
        "its .part file: run the same command again to resume"
    ),
    "stream": (
        "annkit: interrupted: finished steps were kept in OUT/steps.jsonl; run the same "
        "command again to resume the stream"
    ),
    "adapt": "annkit: interrupted: no policy file was written",
    "plot": "annkit: interrupted: no plot was written",
}


def interrupt_message(argv: list[str]) -> str:
    """The Ctrl-C message for the command in ``argv`` (true for what that command writes)."""
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    return INTERRUPTED.get(name or "", _INTERRUPTED)


def _interrupted(argv: list[str]) -> None:
    """Say what an interrupt left behind and exit 130. A build still running native code in
    its own thread cannot be stopped: then the process ends at once (os._exit) instead of
    waiting for it; nothing of it was written (bundles are renamed into place when done)."""
    click.echo(interrupt_message(argv), err=True)
    if any(thread.name == BUILD_THREAD and thread.is_alive() for thread in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(130)


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
            code = super().main(
                argv, prog_name=prog_name or "annkit", standalone_mode=False, **extra
            )
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort as exc:  # click turns Ctrl-C inside a command into Abort
            if isinstance(exc.__cause__, KeyboardInterrupt):
                _interrupted(argv)
            click.echo("annkit: aborted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            _interrupted(argv)
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
        stream,
        tune,
    )

    for module in (
        build,
        evaluate,
        groundtruth,
        info,
        query,
        bench,
        compare,
        effort,
        tune,
        explain,
        datasets,
        adapt,
        stream,
    ):
        for command in module.COMMANDS:
            _add_examples(command)
            cli.add_command(command)


def _add_examples(command: click.Command, prefix: str = "") -> None:
    """Give ``command`` (and a group's subcommands) its examples as the help's epilog,
    looked up by the full command name (``stream plot`` is not ``plot``)."""
    name = f"{prefix}{command.name}"
    if command.epilog is None and command.name is not None:
        command.epilog = examples_epilog(name)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_examples(sub, f"{name} ")


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="annkit")
