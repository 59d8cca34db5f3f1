"""The ``fastvp`` command line: simulate | train | sample | evaluate | demo.

One module per subcommand, each with ``add_parser(subparsers)`` and ``run(args)``;
``_common`` holds what they share. A user error (a ValueError or a missing file) ends in
one line on stderr naming the option and value, exit status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from . import demo, evaluate, sample, simulate, train
from ._common import check_threads, cli_message

COMMANDS = (simulate, train, sample, evaluate, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastvp",
        description="Batched PIC for 1D Vlasov-Poisson and PDE-NHF, its Hamiltonian-flow surrogate.",
    )
    parser.add_argument("--version", action="version", version=f"fastvp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        check_threads(args.threads)
        from ..backend import threads_context

        with threads_context(args.threads):
            return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        print(f"fastvp {args.command}: error: {cli_message(str(exc))}", file=sys.stderr)
        return 2
