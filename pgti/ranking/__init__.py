"""Dataset-aware model ranking (issue 10): does the dataset permute the models' rank order, and
do short runs rank the models as full runs do?

- :mod:`pgti.ranking.sweep`: the runs (dataset x model x budget x seed), their configs, running
  them as Dask tasks, resuming, and reading each run back from its directory.
- :mod:`pgti.ranking.agreement`: the statistics (average ranks, Kendall's tau-b, Spearman's rho,
  the bootstrap over seeds, regret, the power law of a validation curve), numpy only.
- :mod:`pgti.ranking.tables`: runs.csv's rows -> ranking.csv and agreement.csv.
- :mod:`pgti.ranking.plots`: ranks.png and quick_vs_full.png.
- :mod:`pgti.ranking.cli`: the command line of ``scripts/rank_models.py``.
"""

from pgti.ranking.cli import main

__all__ = ["main"]
