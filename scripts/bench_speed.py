#!/usr/bin/env python
"""Speed: batch-assembly rate and epoch time per mode, against the peer and this machine's copy
bandwidth, and the training-step time of our DCRNN models against PGT's BatchedDCRNN.

The benchmark is ``pgti.bench.suites.speed``; this script only runs it.

    python scripts/bench_speed.py                      # PeMS-Bay size
    python scripts/bench_speed.py --quick              # 325 x 8,064 steps, models at 64 nodes
    python scripts/bench_speed.py --nodes 8 --timesteps 300 --repeats 1 --quick
"""

from pgti.bench.suites.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
