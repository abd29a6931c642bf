#!/usr/bin/env python
"""Rank models per dataset: every model on every dataset, several seeds, a quick and a full
budget; then ranking.csv, agreement.csv (Kendall's tau and Spearman's rho with bootstrap
intervals) and two figures in the sweep directory. The sweep is ``pgti.ranking``; this script
only runs it.

    python scripts/rank_models.py --list-models
    python scripts/rank_models.py --datasets chickenpox,pedalme,england-covid,montevideo-bus \\
        --models last-value,historical-average,dcrnn-cell,dcrnn-cell-s2s --seeds 3 --epochs 20 \\
        --output-dir results/ranking/real
    python scripts/rank_models.py --datasets metr-la,pems-bay --models all --patience 5 -np 4
    python scripts/rank_models.py --datasets chickenpox --budgets full --dask-cluster-file scheduler.json

Rerunning a command skips the runs it has finished.
"""

from pgti.ranking.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
