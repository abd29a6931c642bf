"""Small pieces every command-line entry point shares: boolean flags and the error contract.

The contract: bad input (``InputError``, a usage error from argparse, or a file system that
refuses a read or write, such as a full disk) ends with one line on stderr and exit status 2,
with no traceback unless ``--debug`` is given. Ctrl-C ends with ``interrupted`` and status 130;
a diverged run (a non-finite loss) with one line and status 1.
"""

from __future__ import annotations

import argparse
import os
import math
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


def positive_int(value: str) -> int:
    """A count: an integer >= 1."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def positive_float(value: str) -> float:
    """A positive, finite number (a learning rate, a timeout)."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value!r}")
    return x


def ratio(value: str) -> float:
    """A number in (0, 1]."""
    x = positive_float(value)
    if x > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value!r}")
    return x


MAX_SEED = 2**32 - 1  # numpy's seed range, the narrowest of the generators a run seeds


def seed(value: str) -> int:
    """A random seed in [0, 2**32 - 1]."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {value!r}") from None
    if not 0 <= n <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_SEED}], got {n}")
    return n


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


def describe_os_error(exc: OSError) -> str:
    """One line: the file, the system's reason, and the library's own words if they add any."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = os.strerror(exc.errno) if exc.errno else ""
    detail = (exc.strerror or str(exc) or type(exc).__name__).strip().splitlines()[0]
    if detail.startswith("[Errno"):
        detail = detail.split("]", 1)[-1].strip()
    if not reason or detail == reason:
        return f"{where}{detail}"
    return f"{where}{reason} ({detail[:160]})"


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
    except FloatingPointError as exc:  # the trainer's check of the loss: the run diverged
        if debug:
            traceback.print_exc()
        print(f"error: training diverged: {exc}; try a lower --lr or another --model", file=sys.stderr)
        return 1
    except OSError as exc:
        # The file system refused (a full disk, a read-only or vanished directory): one line
        # naming the file; not a bug of ours, so no traceback without --debug.
        if debug:
            traceback.print_exc()
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
