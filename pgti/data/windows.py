"""Window starts and the train/val/test split.

A sample starting at ``s`` has input rows ``[s, s + L)`` and target rows ``[s + L, s + 2L)``,
so starts run ``0 .. T - 2L`` (``T - 2L + 1`` windows). Splits are contiguous in time:
train first, then validation, then test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgti.config import DEFAULT_RATIOS
from pgti.errors import InputError

SPLITS = ("train", "val", "test")


def num_windows(num_timesteps: int, lags: int, source: str = "the series") -> int:
    n = num_timesteps - 2 * lags + 1
    if n < 1:
        raise InputError(
            f"{source} has {num_timesteps} time steps, fewer than 2L = {2 * lags} "
            f"(input window L = {lags} plus target window L = {lags})"
        )
    return n


def validate_ratios(ratios) -> tuple[float, float, float]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3:
        raise InputError(f"needs three ratios (train val test), got {len(ratios)}", field="data.split")
    if any(not np.isfinite(r) or r <= 0 for r in ratios):
        raise InputError(f"ratios must each be positive, got {ratios}", field="data.split")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise InputError(f"ratios must sum to 1, got {ratios} (sum {sum(ratios):g})", field="data.split")
    return ratios


@dataclass(frozen=True)
class Split:
    """Window starts ``[start, stop)`` of each split."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def starts(self, name: str) -> np.ndarray:
        lo, hi = getattr(self, name)
        return np.arange(lo, hi, dtype=np.int64)

    def size(self, name: str) -> int:
        lo, hi = getattr(self, name)
        return hi - lo


def split_windows(n: int, ratios=DEFAULT_RATIOS, source: str = "the series") -> Split:
    """Split ``n`` window starts by ``ratios``; every split must be non-empty."""
    r_train, _, r_test = validate_ratios(ratios)
    n_train = int(round(n * r_train))
    n_test = int(round(n * r_test))
    n_val = n - n_train - n_test
    for name, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        if count < 1:
            raise InputError(
                f"the {name} split of {source} is empty: {n} windows split {tuple(ratios)} "
                f"gives train/val/test = {n_train}/{n_val}/{n_test}; use a longer series or other ratios"
            )
    return Split((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n))


def window_block(rows: np.ndarray, lags: int, count: int, shift: int = 0) -> np.ndarray:
    """``count`` materialised windows of ``lags`` rows, starting at rows shift, shift + 1, ...:
    (count, L, N, F), contiguous. X of window s is ``window_block(series, L, 1, s)``, its Y
    ``window_block(series, L, 1, s + L)``: what base mode and the cluster's window pairs hold."""
    view = np.lib.stride_tricks.sliding_window_view(rows, lags, axis=0)  # (rows - L + 1, N, F, L)
    return np.ascontiguousarray(view[shift : shift + count].transpose(0, 3, 1, 2))


def train_row_weights(t0: int, t1: int, n_train: int, lags: int) -> np.ndarray:
    """How many training input windows contain each row t in [t0, t1).

    Training starts are s in [0, n_train); input window s covers rows [s, s + L). Row t is in
    the windows s with max(0, t - L + 1) <= s <= min(t, n_train - 1).
    """
    t = np.arange(t0, t1, dtype=np.int64)
    lo = np.maximum(0, t - lags + 1)
    hi = np.minimum(t, n_train - 1)
    return np.maximum(0, hi - lo + 1).astype(np.float64)
