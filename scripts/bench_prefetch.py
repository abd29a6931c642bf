#!/usr/bin/env python
"""Does lazy-index keep up with index? Epoch time of both side by side, through the real session.

The benchmark is ``pgti.bench.suites.prefetch``; this script only runs it.

    python scripts/bench_prefetch.py                          # dcrnn-cell-s2s --hidden 16, B = 64
    python scripts/bench_prefetch.py --model dcrnn-cell --nodes 2716 --threads 1   # step near the read
"""

from pgti.bench.suites.prefetch import main

if __name__ == "__main__":
    raise SystemExit(main())
