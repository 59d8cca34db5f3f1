"""The ``fastvp`` command line: simulate | train | sample | evaluate | demo | check-physics.

One module per subcommand, each with ``add_parser(subparsers)`` and ``run(args)``;
``_common`` holds what they share. A user error (a bad value, a path that cannot be read
or written, a full disk: ValueError or OSError) ends in one line on stderr naming the
option and value, exit status 2; ``--debug`` shows the traceback instead. A training run
stopped by non-finite steps (FloatingPointError) ends in one line, exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from . import check_physics, demo, evaluate, sample, simulate, train
from ._common import OneLineParser, check_threads, cli_message, error_text, typed_flags

COMMANDS = (simulate, train, sample, evaluate, demo, check_physics)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="fastvp",
        description="Batched PIC for 1D Vlasov-Poisson and PDE-NHF, its Hamiltonian-flow surrogate.",
    )
    parser.add_argument("--version", action="version", version=f"fastvp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    parser.commands = sub.choices  # name -> its parser, for the flags typed in an error
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit status.

    Errors of the command line itself (an unknown option, a value of the wrong type)
    exit through argparse (SystemExit, status 2), with one line on stderr.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        check_threads(args.threads)
        from ..backend import threads_context

        with threads_context(args.threads):
            return args.func(args)
    except (ValueError, OSError, FloatingPointError) as exc:
        if args.debug:
            raise
        words = typed_flags(parser.commands[args.command], argv)
        print(f"fastvp {args.command}: error: {cli_message(error_text(exc), words)}",
              file=sys.stderr)
        return 1 if isinstance(exc, FloatingPointError) else 2
