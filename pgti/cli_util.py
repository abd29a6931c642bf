"""Small pieces every command-line entry point shares: boolean flags and the error contract.

The contract: bad input (``InputError``, or a usage error from argparse) ends with one line on
stderr and exit status 2, with no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, Sequence

from pgti.errors import EXIT_INPUT_ERROR, InputError

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def str2bool(value: str) -> bool:
    """Parse the artifact's boolean strings ("True", "no", "t", ...), in any case."""
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false/yes/no/t/f), got {value!r}")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: ... (see --help)``) and exit 2,
    through :func:`run_cli`, instead of the usage text plus the message."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")


def add_bool_flag(parser: argparse.ArgumentParser, *names: str, help: str, default: bool = False):
    """A flag usable as a plain switch (``-g``) or with a value (``-g True``, ``--gpu=no``)."""
    parser.add_argument(
        *names, type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=help
    )


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` under the error contract and return the exit status.

    ``main`` parses its own arguments; ``--debug``/``-d`` anywhere in argv turns on tracebacks.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = any(a in ("-d", "--debug") or a.startswith("--debug=") for a in args)
    try:
        status = main(args)
        return 0 if status is None else int(status)
    except InputError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
