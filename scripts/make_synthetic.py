#!/usr/bin/env python
"""Write a synthetic dataset in its real file format (see pgti/datasets/synthetic/).

    python scripts/make_synthetic.py --dataset pems-bay --data-dir data
    python scripts/make_synthetic.py --dataset pems --nodes 2000 --timesteps 8064 --seed 1
    python scripts/make_synthetic.py --dataset england-covid --nodes 20 --timesteps 40 --data-dir /tmp/covid

Without --nodes/--timesteps the real size is written. Exit status 2 on bad input.
"""

from __future__ import annotations

import sys
import time

from pgti.cli_util import ArgumentParser, run_cli
from pgti.datasets.registry import DATASETS, get_spec
from pgti.datasets.synthetic import TIMESTAMP_UNITS, generate, resolve_size
from pgti.errors import InputError


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument("--nodes", type=int, help="number of nodes (default: the real dataset's)")
    parser.add_argument("--timesteps", type=int, help="number of time steps (default: the real dataset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data", help="output directory (default: data/)")
    parser.add_argument(
        "--timestamp-unit", choices=TIMESTAMP_UNITS, default="us",
        help="DCRNN .h5 index unit: us (pandas >= 2) or ns (older pandas, as DCRNN's files)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument("-d", "--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)

    spec = get_spec(args.dataset)
    nodes, timesteps = resolve_size(spec, args.nodes, args.timesteps)
    existing = [str(p) for p in spec.default_paths(args.data_dir) if p.exists()]
    if existing and not args.force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise InputError(f"{' and '.join(existing)} already {verb}; use --force to overwrite")
    start = time.perf_counter()
    paths = generate(
        spec.name, args.data_dir, nodes=nodes, timesteps=timesteps, seed=args.seed,
        progress=not args.quiet, timestamp_unit=args.timestamp_unit, overwrite=args.force,
    )
    seconds = time.perf_counter() - start
    if not args.quiet:
        for path in paths:
            print(f"wrote {path} ({_size(path.stat().st_size)})")
        print(
            f"{spec.name}: {timesteps} time steps x {nodes} nodes, seed {args.seed}, "
            f"{seconds:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
