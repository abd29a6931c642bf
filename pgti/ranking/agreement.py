"""Rank statistics, with numpy only: average ranks, Kendall's tau-b, Spearman's rho, a bootstrap
interval over seeds, the regret of a pick, and the power law that extrapolates a short run's
validation curve.

Everything here works on *values* (mean test MAE per model, lower is better); a ranking is
implied by them. A statistic that is undefined (fewer than two models, or a constant vector)
is NaN, never an exception: a sweep where every model failed on one dataset still reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values`` (1 = smallest); equal values share the average of their ranks."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)), where
    n0 = n (n - 1) / 2 and ties_x counts the pairs tied in x (a pair tied in both counts in both)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape} vs {y.shape}")
    n = len(x)
    if n < 2:
        return math.nan
    i, j = np.triu_indices(n, k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    ties_x = int(np.sum(sx == 0))
    ties_y = int(np.sum(sy == 0))
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    if denominator == 0:
        return math.nan
    return float(np.sum(sx * sy) / denominator)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape} vs {y.shape}")
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(np.sum(rx * rx) * np.sum(ry * ry)))
    if denominator == 0:
        return math.nan
    return float(np.sum(rx * ry) / denominator)


STATISTICS: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {
    "kendall_tau": kendall_tau_b,
    "spearman_rho": spearman_rho,
}


@dataclass(frozen=True)
class Interval:
    estimate: float  # the statistic of the per-model means over all seeds
    low: float
    high: float


def bootstrap_interval(x_seeds: Sequence[Sequence[float]], y_seeds: Sequence[Sequence[float]],
                       statistic: Callable[[np.ndarray, np.ndarray], float], *, resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> Interval:
    """``statistic(mean x, mean y)`` over models, and its percentile interval when the seeds are
    resampled: per model and per side, its seeds' values are drawn with replacement, the means
    recomputed, and the statistic with them. ``x_seeds[m]`` holds model m's values, one per seed.
    Resamples where the statistic is undefined (all means equal) are left out."""
    if len(x_seeds) != len(y_seeds):
        raise ValueError("x and y must list the same models")
    xs = [np.asarray(v, dtype=float) for v in x_seeds]
    ys = [np.asarray(v, dtype=float) for v in y_seeds]
    estimate = statistic(np.array([v.mean() for v in xs]), np.array([v.mean() for v in ys]))
    if len(xs) < 2 or any(len(v) == 0 for v in xs + ys):
        return Interval(estimate, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for r in range(resamples):
        mx = np.array([v[rng.integers(0, len(v), len(v))].mean() for v in xs])
        my = np.array([v[rng.integers(0, len(v), len(v))].mean() for v in ys])
        draws[r] = statistic(mx, my)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return Interval(estimate, math.nan, math.nan)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high))


@dataclass(frozen=True)
class Regret:
    picked: str  # the model with the lowest predicted value
    best: str  # the model with the lowest full-budget test MAE
    absolute: float  # its test MAE minus the best's
    relative: float  # absolute / the best's test MAE


def regret(models: Sequence[str], predicted: Sequence[float], actual: Sequence[float]) -> Regret:
    """What picking the model with the lowest ``predicted`` value costs, in ``actual`` (test MAE)."""
    predicted, actual = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    picked, best = int(np.argmin(predicted)), int(np.argmin(actual))
    absolute = float(actual[picked] - actual[best])
    relative = absolute / float(actual[best]) if actual[best] != 0 else math.nan
    return Regret(models[picked], models[best], absolute, relative)


# --- learning curves ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLaw:
    """v(s) = a + b * s**(-c): the validation MAE after s training steps."""

    a: float
    b: float
    c: float

    def __call__(self, steps) -> np.ndarray | float:
        return self.a + self.b * np.power(np.asarray(steps, dtype=float), -self.c)


def fit_power_law(steps: Sequence[float], values: Sequence[float], *,
                  exponents: Sequence[float] | None = None) -> PowerLaw | None:
    """Least squares of v = a + b * s**(-c): for each c of a grid, (a, b) in closed form
    (``numpy.linalg.lstsq``), keeping b >= 0 (a curve that falls with training; b < 0 becomes
    the flat fit b = 0); then the grid is refined around the best c. None with fewer than three
    finite points (two points fit any curve)."""
    s, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(s) & np.isfinite(v) & (s > 0)
    s, v = s[keep], v[keep]
    if len(s) < 3 or len(np.unique(s)) < 3:
        return None

    def best_on(grid):
        best = None
        for c in grid:
            basis = np.power(s, -c)
            design = np.column_stack([np.ones_like(s), basis])
            (a, b), *_ = np.linalg.lstsq(design, v, rcond=None)
            if b < 0:
                a, b = float(v.mean()), 0.0
            sse = float(np.sum((a + b * basis - v) ** 2))
            if best is None or sse < best[0]:
                best = (sse, float(a), float(b), float(c))
        return best

    grid = np.asarray(exponents if exponents is not None else np.geomspace(0.01, 4.0, 200))
    _, a, b, c = best_on(grid)
    step = np.exp(np.mean(np.diff(np.log(grid)))) if len(grid) > 1 else 1.0
    _, a, b, c = best_on(np.geomspace(c / step, c * step, 101))
    return PowerLaw(a, b, c)


def extrapolate(steps: Sequence[float], values: Sequence[float], target_steps: float) -> float:
    """The power law of the curve at ``target_steps``; the curve's last value when no power law
    can be fitted (fewer than three points)."""
    law = fit_power_law(steps, values)
    if law is None:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return float(finite[-1]) if finite else math.nan
    return float(law(target_steps))
