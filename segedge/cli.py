"""`segedge` command line: thin typer wrappers over library functions, one module per command."""

from __future__ import annotations

import signal
import sys
import threading

import typer

from segedge.commands import bench, export, run, serve, train
from segedge.commands import eval as eval_command
from segedge.errors import SegedgeError

app = typer.Typer(
    help="Person segmentation from PyTorch training to fast edge inference (DeepLabv3+, ONNX, TensorRT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (train, export, run, eval_command, bench, serve):
    app.command(module.NAME, help=module.HELP, epilog=module.EXAMPLES)(module.command)


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
    try:
        app(args=args)
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
