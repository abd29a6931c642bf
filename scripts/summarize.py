#!/usr/bin/env python
"""Collect every run under a results directory into summary.csv and summary.md.

    python scripts/summarize.py results/ --out results/summary

Finds each stats.csv below RESULTS_ROOT, joins it with the config.json next to it, writes
PREFIX.csv (every column) and PREFIX.md (the headline table: each run by its directory under
RESULTS_ROOT, marked when capped by --max-batches; test MAE per horizon; skill against the
last-value baseline), and prints the markdown.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from pgti.cli_util import ArgumentParser, run_cli
from pgti.observability.plots import summarize_runs, summary_markdown, write_summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_root", nargs="?", default="results", metavar="RESULTS_ROOT",
                        help="directory searched recursively for stats.csv (default: results)")  # fmt: skip
    parser.add_argument("--out", metavar="PREFIX",
                        help="output path without extension (default: RESULTS_ROOT/summary)")  # fmt: skip
    parser.add_argument("-d", "--debug", action="store_true", help="show tracebacks on errors")
    args = parser.parse_args(argv)
    summary = summarize_runs(args.results_root)
    prefix = Path(args.out) if args.out else Path(args.results_root) / "summary"
    csv_path, md_path = write_summary(summary, prefix)
    print(summary_markdown(summary), end="")
    print(f"\nwrote {csv_path} and {md_path} ({len(summary)} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
