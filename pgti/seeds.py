"""Statistics over training seeds: is a difference beyond seed noise?

A model trained with k seeds gives k test errors; the naive baselines have no seed. A margin
(baseline - model) / baseline is *beyond seed noise* when the one-sided 95% lower confidence
bound of its mean over the seeds, by Student's t with k - 1 degrees of freedom, is above zero:

    mean - t(0.95, k - 1) * sd / sqrt(k) > 0

With one seed the noise cannot be measured, and nothing is beyond it. The t quantiles are the
standard table values (two decimals more than any result here needs).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

# One-sided 95% quantiles of Student's t, by degrees of freedom (1..30); the normal 1.645 beyond.
_T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
        1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
        1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697)


def t95(df: int) -> float:
    """The one-sided 95% quantile of Student's t with ``df`` >= 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T95[df - 1] if df <= len(_T95) else 1.645


@dataclass(frozen=True)
class SeedSummary:
    """Mean, standard deviation and one-sided 95% lower bound of values over seeds."""

    n: int
    mean: float
    sd: float | None  # None with one seed
    lower95: float | None  # None with one seed

    @property
    def beyond_noise(self) -> bool:
        """The mean is above zero by more than the seeds' noise (False with one seed)."""
        return self.lower95 is not None and self.lower95 > 0


def summarize(values: Sequence[float]) -> SeedSummary:
    """:class:`SeedSummary` of finite ``values`` (one per seed); ValueError if there is none."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        raise ValueError("no finite values to summarise")
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return SeedSummary(1, mean, None, None)
    sd = statistics.stdev(vals)
    return SeedSummary(len(vals), mean, sd, mean - t95(len(vals) - 1) * sd / math.sqrt(len(vals)))


def margin(model: float, baseline: float) -> float:
    """(baseline - model) / baseline: positive when the model's error is below the baseline's."""
    return (baseline - model) / baseline
