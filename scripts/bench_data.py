#!/usr/bin/env python
"""Data-core benchmark: memory and batch-assembly speed of base, index and lazy-index batching.

The benchmark is ``pgti.bench.suites.data``; this script only runs it.

    python scripts/bench_data.py                                  # PeMS-Bay size, 3 repeats
    python scripts/bench_data.py --quick                          # 325 x 8,064 steps, 1 repeat
    python scripts/bench_data.py --nodes 8 --timesteps 300 --repeats 1 --quick
"""

from pgti.bench.suites.data import main

if __name__ == "__main__":
    raise SystemExit(main())
