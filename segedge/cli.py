"""`segedge` command line: thin typer wrappers over library functions, one module per command."""

from __future__ import annotations

import sys

import typer

from segedge.commands import bench, export, run, train
from segedge.commands import eval as eval_command
from segedge.errors import SegedgeError

app = typer.Typer(
    help="Person segmentation from PyTorch training to fast edge inference (DeepLabv3+, ONNX, TensorRT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (train, export, run, eval_command, bench):
    app.command(module.NAME, help=module.HELP, epilog=module.EXAMPLES)(module.command)


def main(args: list[str] | None = None) -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 2, never a traceback.

    typer (standalone mode) handles usage errors and Ctrl-C itself; SegedgeError passes through it to here.
    """
    try:
        app(args=args)
    except SegedgeError as exc:
        print(f"segedge: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
