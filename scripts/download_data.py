#!/usr/bin/env python
"""Download the real datasets into the data directory (see pgti/datasets/download.py).

    python scripts/download_data.py chickenpox
    python scripts/download_data.py montevideo-bus   # also pedalme, england-covid (shipped in data/)
    python scripts/download_data.py all --data-dir data --timeout 120

Exit status: 0 when every file is in place; 1 when some file has no direct link and must be
fetched by hand (the instruction is printed); 2 on bad input, an unreachable network, an HTTP
error or a checksum mismatch (one line on stderr). Offline, generate synthetic data instead:
python scripts/make_synthetic.py --dataset NAME --data-dir DIR
"""

from __future__ import annotations

import argparse
import sys

from pgti.cli_util import ArgumentParser, run_cli
from pgti.datasets.download import download
from pgti.datasets.registry import DATASETS, get_spec

EXIT_MANUAL = 1


def main(argv=None) -> int:
    parser = ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", help=f"'all' or one of: {', '.join(DATASETS)}")
    parser.add_argument("--data-dir", default="data", help="target directory (default: data/)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without an answer before giving up")
    parser.add_argument("--force", action="store_true", help="download again files already present")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-d", "--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)

    names = list(DATASETS) if args.dataset == "all" else [get_spec(args.dataset).name]
    manual = []
    for name in names:
        for result in download(
            name, args.data_dir, timeout=args.timeout, force=args.force, progress=not args.quiet
        ):
            if result.status == "manual":
                manual.append(result)
            elif result.status == "downloaded":
                print(f"downloaded {result.path} from {result.detail}")
            else:
                print(f"present    {result.path} (kept; --force to download again)")
    for result in manual:
        print(f"manual     {result.path}: {result.detail}")
    return EXIT_MANUAL if manual else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
