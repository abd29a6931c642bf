#!/usr/bin/env python
"""Plot one or more runs: memory over time, MAE per epoch, peak memory and runtime per run.

    python scripts/plot_results.py results/chickenpox/index/20261123-040629 \
        results/chickenpox/base/20261123-041002 --out results/plots

Each RUN_DIR holds stats.csv, per_epoch_stats.csv and system_stats.csv; of a run that crashed
(no stats.csv) what survived is plotted, with a note. Prints the PNG paths:
  mae_per_epoch.png        train/validation MAE per epoch, identical runs drawn once and labelled
                           "base ≡ index"; the model's and the naive baselines' test MAE
  memory_over_time.png     process-tree memory on its own axis, each run's phases, host memory
  peak_memory_runtime.png  peak memory (with the ratio to base) and runtime, values on the bars
"""

from __future__ import annotations

import sys
from typing import Sequence

from pgti.cli_util import ArgumentParser, run_cli
from pgti.observability.plots import common_parent, plot_runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run output directories")
    parser.add_argument(
        "--out",
        help="directory for the PNGs (default: the run dirs' common parent, else results/plots)",
    )
    parser.add_argument("-d", "--debug", action="store_true", help="show tracebacks on errors")
    args = parser.parse_args(argv)
    out = args.out or common_parent(args.run_dirs, "results/plots")
    for path in plot_runs(args.run_dirs, out, note=lambda msg: print(f"note: {msg}", file=sys.stderr)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
