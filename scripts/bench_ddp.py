#!/usr/bin/env python
"""Distributed modes compared: Dask bytes moved between workers, peak memory per worker, time per
epoch, for dask, index, dask-index and batch-shuffled dask-index.

The benchmark is ``pgti.bench.suites.ddp``; this script only runs it.

    python scripts/bench_ddp.py --max-batches 20
    python scripts/bench_ddp.py --timesteps 8064 --max-batches 10 --epochs 1
"""

from pgti.bench.suites.ddp import main

if __name__ == "__main__":
    raise SystemExit(main())
