#!/usr/bin/env python
"""Every zoo model at PeMS-Bay's shape through the real trainer: step time and peak memory with
base and index side by side, and our index path against PGT's materialising workflow for the
models PGT's example scripts train (A3TGCN2, TGCN2).

The benchmark is ``pgti.bench.suites.zoo``; this script only runs it.

    python scripts/bench_zoo.py                                  # all models, PeMS-Bay shape
    python scripts/bench_zoo.py --models a3tgcn2,tgcn2 --modes base,index,lazy-index
    python scripts/bench_zoo.py --quick --models linear,gru      # minutes
"""

from pgti.bench.suites.zoo import main

if __name__ == "__main__":
    raise SystemExit(main())
