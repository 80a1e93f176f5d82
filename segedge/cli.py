"""`segedge` command line: thin typer wrappers over library functions, one module per command."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Iterable

import typer

from segedge.errors import SegedgeError

COMMANDS = ("train", "export", "run", "eval", "bench", "serve")  # segedge.commands.<name>, in --help's order


def build_app(names: Iterable[str] = COMMANDS) -> typer.Typer:
    """The CLI with the named commands. main() builds only the command it is given, so `segedge run` neither
    imports nor builds the options of train, bench or serve (a one-photo run is dominated by start-up)."""
    app = typer.Typer(
        help="Person segmentation from PyTorch training to fast edge inference (DeepLabv3+, ONNX, TensorRT).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_commands_group)  # keeps `segedge COMMAND ...` a group when only one command is built
    for name in names:
        module = importlib.import_module(f"segedge.commands.{name}")
        app.command(module.NAME, help=module.HELP, epilog=module.EXAMPLES)(module.command)
    return app


def _commands_group() -> None:
    pass


def invoked_command(args: list[str]) -> str | None:
    """The command named on a command line (its first word that is not an option), if it is one of COMMANDS."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    return name if name in COMMANDS else None


class Terminated(BaseException):
    """SIGTERM (docker stop, systemd, CI) as an exception: it unwinds like Ctrl-C, so every temp file is removed.
    A BaseException, so no `except Exception` on the way swallows it."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(args: list[str] | None = None) -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 2, never a traceback.

    typer (standalone mode) handles usage errors and Ctrl-C itself; SegedgeError passes through it to here.
    SIGTERM ends the run the way Ctrl-C does, with exit code 143 (128 + 15).
    """
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    command = invoked_command(sys.argv[1:] if args is None else args)
    try:
        build_app([command] if command else COMMANDS)(args=args)
    except SegedgeError as exc:
        print(f"segedge: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Terminated:
        print("segedge: stopped by SIGTERM; nothing half-written was left", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    main()
