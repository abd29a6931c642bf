"""The sweep's two figures: ``ranks.png`` (models x datasets, the full-budget rank in each cell)
and ``quick_vs_full.png`` (per dataset, the quick runs' predictions against the full runs' test
MAE, one point per model)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pgti.ranking.tables import QUICK_PREDICTORS, seed_values


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ranks(ranking: list[dict], datasets, models, path: Path, budget: str = "full") -> bool:
    """Heatmap of ``budget``'s ranks; False (nothing written) when that budget has no ranking."""
    rows = [r for r in ranking if r["budget"] == budget]
    if not rows:
        return False
    plt = _pyplot()
    grid = np.full((len(models), len(datasets)), np.nan)
    for r in rows:
        grid[models.index(r["model"]), datasets.index(r["dataset"])] = r["rank"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(datasets), 1.2 + 0.45 * len(models)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis_r", aspect="auto", vmin=1, vmax=max(len(models), 2))
    for i in range(len(models)):
        for j in range(len(datasets)):
            missing = math.isnan(grid[i, j])
            dark = not missing and grid[i, j] > (len(models) + 1) / 2  # the dark end of viridis_r
            ax.text(j, i, "failed" if missing else f"{grid[i, j]:g}", ha="center", va="center",
                    color="white" if dark else "black")
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), models)
    ax.set_title(f"rank by mean test MAE ({budget} budget; 1 = best)")
    fig.colorbar(image, ax=ax, label="rank")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_quick_vs_full(rows: list[dict], datasets, path: Path) -> bool:
    """Per dataset: each model's quick prediction (both predictors) against its full test MAE,
    means over seeds. False when there are no pairs to show."""
    full = seed_values(rows, "full", "test_mae")
    quick = {p: seed_values(rows, "quick", column) for p, column in QUICK_PREDICTORS.items()}
    shown = [d for d in datasets if full.get(d) and any(quick[p].get(d) for p in quick)]
    if not shown:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4), squeeze=False)
    for ax, dataset in zip(axes[0], shown):
        labelled = set()
        for (predictor, values), marker in zip(quick.items(), ("o", "s")):
            models = sorted(set(values[dataset]) & set(full[dataset]))
            x = [np.mean(full[dataset][m]) for m in models]
            y = [np.mean(values[dataset][m]) for m in models]
            ax.scatter(x, y, marker=marker, label=predictor, alpha=0.8)
            for m, xi, yi in zip(models, x, y):
                if m not in labelled:  # one label per model, at its first predictor's point
                    labelled.add(m)
                    ax.annotate(m, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(dataset)
        ax.set_xlabel("full run: test MAE")
        ax.set_ylabel("quick run: predicted MAE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
