"""The `steplab` command: the one composition root that wires the stages together.

Each sub-command lives in its own module ``steplab/cmd_<name>.py`` that defines
``register(subparsers)``; register adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from steplab import __version__
from steplab.errors import UserError

COMMAND_MODULES = (
    "run",
    "simulate",
    "record",
    "recover",
    "analyze",
    "calibrate",
    "export",
    "user",
    "patient",
    "visit",
    "trial",
    "import",
    "db",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steplab",
        description="steplab: open force-plate and smart-step lab system.",
    )
    parser.add_argument("--version", action="version", version=f"steplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"steplab.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"steplab.cmd_{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        _say_error(f"steplab {args.command}: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say_error(f"steplab {args.command}: interrupted")
        return 128 + int(signal.SIGINT)
    except BrokenPipeError:
        # whoever read our output went away (`steplab ... | head`): stop quietly, as a Unix filter does
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        except (OSError, ValueError):
            pass
        return 128 + int(signal.SIGPIPE)


def _say_error(line: str) -> None:
    """The one error line on stderr; a terminal that is gone (SIGHUP, a dropped SSH session) is not a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
