#!/usr/bin/env python
"""Peak memory of each batching mode on each dataset, and of the peer PGT loader's index path.

The benchmark is ``pgti.bench.suites.memory``; this script only runs it.

    python scripts/bench_memory.py                                   # all six datasets, real size
    python scripts/bench_memory.py --quick                           # at most 512 nodes x 8,064 steps
    python scripts/bench_memory.py --datasets pems --modes index,lazy-index,base,peer --repeats 1
    python scripts/bench_memory.py --nodes 8 --timesteps 300 --repeats 1 --quick --assume-available-gib 0.001
"""

from pgti.bench.suites.memory import main

if __name__ == "__main__":
    raise SystemExit(main())
