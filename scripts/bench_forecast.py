#!/usr/bin/env python
"""Forecast accuracy against the naive baselines: every zoo model with its own recipe, on the
shipped real sets and generated METR-LA/PeMS-Bay-shaped traffic, several seeds, a training-time
budget; the best model (chosen on validation) must beat both baselines at every horizon beyond
seed noise, and its errors must grow with the horizon.

The benchmark is ``pgti.bench.suites.forecast``; this script only runs it.

    python scripts/bench_forecast.py                                   # the issue's sweep (hours on 2 cores)
    python scripts/bench_forecast.py --datasets pedalme,england-covid --models linear,stid --finalists 0
"""

from pgti.bench.suites.forecast import main

if __name__ == "__main__":
    raise SystemExit(main())
