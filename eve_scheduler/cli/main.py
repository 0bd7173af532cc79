"""The ``eve-scheduler`` console script: ``eve-scheduler demo`` and ``eve-scheduler replay``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from eve_scheduler import __version__
from eve_scheduler.cli import demo, replay
from eve_scheduler.cli.options import CliError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``eve-scheduler`` and its commands."""
    parser = argparse.ArgumentParser(
        prog="eve-scheduler",
        description="Loss-feedback learning-rate scheduling for any PyTorch optimizer.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_parser(commands)
    replay.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``eve-scheduler`` with ``argv`` (default: the process's arguments).

    Returns:
        The exit status: 0 on success, 2 for a usage error or a problem with an
        input file (the message goes to stderr, without a traceback).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or an argparse usage error
        return stop.code if isinstance(stop.code, int) else 2
    try:
        status: int = args.run(args)
    except CliError as error:
        print(f"eve-scheduler {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `eve-scheduler replay FILE --csv - | head`
        # Point stdout at devnull so that Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # e.g. writing to stdout on a full disk
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as above
        print(f"eve-scheduler {args.command}: error: {error}", file=sys.stderr)
        return 2
    return status
