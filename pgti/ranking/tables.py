"""From runs.csv's rows to the two result tables: ``ranking.csv`` (per dataset and budget, each
model's mean and std of test MAE over seeds, its rank and its ties) and ``agreement.csv`` (how
well one ranking predicts another, with bootstrap intervals and the regret of the pick)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

from pgti.nn.baselines import BASELINE_MODELS
from pgti.ranking.agreement import STATISTICS, average_ranks, bootstrap_interval, regret

RANKING_COLUMNS = ("dataset", "budget", "model", "rank", "mean_test_mae", "std_test_mae", "seeds", "tied_with")

AGREEMENT_COLUMNS = (
    "comparison", "dataset", "against", "predictor", "models",
    "kendall_tau", "kendall_tau_lo", "kendall_tau_hi", "spearman_rho", "spearman_rho_lo", "spearman_rho_hi",
    "picked_model", "best_model", "regret", "regret_rel", "agrees_better",
)  # fmt: skip
"""``comparison``: ``dataset_vs_reference`` (full ranking of ``dataset`` against the reference's),
``quick_vs_full`` (``predictor`` of the quick runs against the dataset's own full test MAE) or
``quick_vs_full_trained`` (the same over the models that train: the baselines, which a quick run
cannot shorten, left out);
``*_lo``/``*_hi``: the bootstrap percentile interval over seeds; ``regret``: test MAE of the
model the predictor picks minus the best model's (``regret_rel``: divided by the best's);
``agrees_better``: the quick predictor with the higher tau on that dataset."""

QUICK_COMPARISONS = {
    "quick_vs_full": lambda model: True,
    # A baseline has no parameters: its quick run is its full run, so a short budget ranks it
    # above models it would lose to. Without them: does the quick run order the trained models?
    "quick_vs_full_trained": lambda model: model not in BASELINE_MODELS,
}

QUICK_PREDICTORS = {
    "quick_val_mae": "final_val_mae",  # the validation MAE at the end of the quick run
    "quick_powerlaw": "powerlaw_val_mae",  # its validation curve's power law at the full run's steps
}


def seed_values(rows: list[dict], budget: str, column: str) -> dict[str, dict[str, list[float]]]:
    """{dataset: {model: [value of each successful seed]}} of ``column`` for ``budget``."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = row.get(column)
        if row["status"] == "ok" and row["budget"] == budget and value is not None and math.isfinite(value):
            values[row["dataset"]][row["model"]].append(float(value))
    return values


def ranking_rows(rows: list[dict], datasets, budgets, models) -> list[dict]:
    """Per dataset and budget, models by mean test MAE (rank 1 = lowest; equal means share the
    average rank). ``tied_with`` names the models whose mean ± std overlaps this one's."""
    out = []
    for budget in budgets:
        values = seed_values(rows, budget, "test_mae")
        for dataset in datasets:
            ranked = [m for m in models if values[dataset].get(m)]
            if not ranked:
                continue
            means = np.array([np.mean(values[dataset][m]) for m in ranked])
            stds = np.array([np.std(values[dataset][m], ddof=1) if len(values[dataset][m]) > 1 else 0.0
                             for m in ranked])
            ranks = average_ranks(means)
            for i in np.argsort(ranks, kind="mergesort"):
                ties = [ranked[j] for j in range(len(ranked))
                        if j != i and means[j] - stds[j] <= means[i] + stds[i] and means[i] - stds[i] <= means[j] + stds[j]]
                out.append({"dataset": dataset, "budget": budget, "model": ranked[i], "rank": float(ranks[i]),
                            "mean_test_mae": float(means[i]), "std_test_mae": float(stds[i]),
                            "seeds": len(values[dataset][ranked[i]]), "tied_with": ";".join(ties)})
    return out


def _compare(models: list[str], x: dict[str, list[float]], y: dict[str, list[float]], *, resamples: int,
             seed: int) -> dict:
    row = {"models": len(models)}
    if len(models) < 2:  # no order to agree on
        return row
    for name, statistic in STATISTICS.items():
        interval = bootstrap_interval([x[m] for m in models], [y[m] for m in models], statistic,
                                      resamples=resamples, seed=seed)
        row.update({name: interval.estimate, f"{name}_lo": interval.low, f"{name}_hi": interval.high})
    return row


def agreement_rows(rows: list[dict], datasets, reference: str, *, resamples: int = 1000, seed: int = 0) -> list[dict]:
    """(a) each dataset's full ranking against the reference's, over the models both ranked;
    (b) each dataset's quick predictors against its full test MAE, with the regret of the pick."""
    out = []
    full = seed_values(rows, "full", "test_mae")
    if reference in full:
        for dataset in datasets:
            if dataset == reference:
                continue
            models = sorted(set(full[dataset]) & set(full[reference]))
            out.append({"comparison": "dataset_vs_reference", "dataset": dataset, "against": reference,
                        "predictor": "full_test_mae",
                        **_compare(models, full[reference], full[dataset], resamples=resamples, seed=seed)})
    for dataset, (comparison, keep) in itertools.product(datasets, QUICK_COMPARISONS.items()):
        quick_rows = []
        for predictor, column in QUICK_PREDICTORS.items():
            quick = seed_values(rows, "quick", column)[dataset]
            models = sorted(m for m in set(quick) & set(full[dataset]) if keep(m))
            row = {"comparison": comparison, "dataset": dataset, "against": "full", "predictor": predictor,
                   **_compare(models, quick, full[dataset], resamples=resamples, seed=seed)}
            if models:
                pick = regret(models, [np.mean(quick[m]) for m in models], [np.mean(full[dataset][m]) for m in models])
                row.update({"picked_model": pick.picked, "best_model": pick.best, "regret": pick.absolute,
                            "regret_rel": pick.relative})
            quick_rows.append(row)
        taus = [_finite(r.get("kendall_tau"), -math.inf) for r in quick_rows]
        if any(math.isfinite(t) for t in taus):
            for row, tau in zip(quick_rows, taus):
                row["agrees_better"] = tau == max(taus)
        out.extend(quick_rows)
    return out


def _finite(value, otherwise):
    return value if value is not None and math.isfinite(value) else otherwise


def summary_lines(agreement: list[dict], reference: str) -> list[str]:
    """The sweep's closing lines: each tau with its interval, and which quick predictor wins."""

    def tau(row):
        if _finite(row.get("kendall_tau"), None) is None:
            return f"tau n/a ({row['models']} models)"
        return (f"tau {row['kendall_tau']:+.2f} [{row['kendall_tau_lo']:+.2f}, {row['kendall_tau_hi']:+.2f}], "
                f"rho {row['spearman_rho']:+.2f} ({row['models']} models)")

    lines = []
    for row in agreement:
        if row["comparison"] == "dataset_vs_reference":
            lines.append(f"{row['dataset']} full vs {reference} full: {tau(row)}")
    for row in agreement:
        if row["comparison"] in QUICK_COMPARISONS:
            pick = ""
            if row.get("picked_model") is not None:
                pick = f"; picks {row['picked_model']}, regret {row['regret']:.4g} ({row['regret_rel']:.1%})"
            better = " <- agrees better" if row.get("agrees_better") else ""
            among = " (trained models)" if row["comparison"] == "quick_vs_full_trained" else ""
            lines.append(f"{row['dataset']} {row['predictor']} vs full{among}: {tau(row)}{pick}{better}")
    return lines
