"""From raw rows to model features: normalisation statistics and the (T, N, F) transform.

Every storage (base, index, GPU-index, lazy-index) builds its rows with
:meth:`FeatureBuilder.build`, an elementwise float32 computation, so all storages hold
bitwise-identical values whatever the chunking.

Statistics come from the training windows only, for the target channel: they equal the mean
and (population) standard deviation of the materialised training inputs, which count each row
once per training input window that contains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgti.data.windows import SPLITS, Split, train_row_weights
from pgti.datasets.formats import DAY_NS, RawDataset, RowReader, calendar_features, format_of
from pgti.errors import InputError

__all__ = ["CHUNK_BYTES", "DAY_NS", "FeatureBuilder", "Normaliser", "calendar_features", "chunk_rows",
           "compute_normaliser", "feature_builder", "split_target_rows"]

# Rows are read and converted a slab at a time. Every transient of the conversion is a few
# times the slab, so the slab is kept small: the memory targets of index (one series plus
# batches) and lazy-index (far below one series) leave room for little more.
CHUNK_BYTES = 2 << 20


def chunk_rows(num_nodes: int, itemsize: int = 8) -> int:
    return max(1, CHUNK_BYTES // max(1, num_nodes * itemsize))


@dataclass(frozen=True)
class Normaliser:
    """``(x - mean) / std`` in float32; ``mean``/``std`` are scalars or per-node (N,)."""

    mean: np.ndarray
    std: np.ndarray
    identity: bool = False

    def apply(self, raw: np.ndarray) -> np.ndarray:
        x = raw.astype(np.float32)
        if self.identity:
            return x
        return (x - self.mean) / self.std

    def normalised_value(self, raw_value: float) -> np.ndarray:
        """What a raw value becomes, bit for bit as in :meth:`apply` (shape () or (N,))."""
        return self.apply(np.asarray([[raw_value]], dtype=np.float64))[0]


def compute_normaliser(rows: RowReader, n_train: int, lags: int, how: str, *,
                       target_rows: dict[str, tuple[int, int]] | None = None,
                       missing: float | None = None) -> Normaliser:
    """Statistics of the training inputs, in float64, two chunked passes.

    The first pass also checks the whole series for NaN/inf, and that each split in
    ``target_rows`` (name -> rows [r0, r1) its target windows cover) holds at least one reading
    that is not ``missing``, so bad values are reported before any training starts.
    """
    target_rows = target_rows or {}
    valid = dict.fromkeys(target_rows, 0)
    n_rows_train = n_train + lags - 1  # rows touched by training input windows
    per_node = how == "per-node"
    step = chunk_rows(rows.num_nodes)
    total_w = 0.0
    sums = np.zeros(rows.num_nodes if per_node else 1)
    for t0 in range(0, rows.num_timesteps, step):
        t1 = min(t0 + step, rows.num_timesteps)
        block = rows.read(t0, t1)
        if not np.isfinite(block).all():
            bad = ~np.isfinite(block)
            r, c = np.argwhere(bad)[0]
            raise InputError(
                f"{rows.source} contains {int(bad.sum())} NaN/inf values in rows {t0}..{t1 - 1} "
                f"(first at time step {t0 + r}, sensor column {c})"
            )
        for name, (r0, r1) in target_rows.items():
            a, b = max(r0, t0), min(r1, t1)
            if a < b and valid[name] == 0:
                part = block[a - t0 : b - t0]
                valid[name] += int(part.size if missing is None else np.count_nonzero(part != missing))
        if how == "none" or t0 >= n_rows_train:
            continue
        w = train_row_weights(t0, t1, n_train, lags)
        total_w += w.sum()
        sums += (w @ block) if per_node else np.array([w @ block.sum(axis=1)])
    for name, count in valid.items():
        if count == 0:
            r0, r1 = target_rows[name]
            raise InputError(
                f"{rows.source} has no valid reading in the {name} split (time steps {r0}..{r1 - 1}): "
                f"every value there is missing ({missing!r})"
            )
    if how == "none":
        return Normaliser(np.float32(0.0), np.float32(1.0), identity=True)
    count = total_w * (1 if per_node else rows.num_nodes)
    mean = sums / count
    sq = np.zeros_like(sums)
    for t0 in range(0, n_rows_train, step):
        t1 = min(t0 + step, n_rows_train)
        w = train_row_weights(t0, t1, n_train, lags)
        dev2 = (rows.read(t0, t1) - (mean if per_node else mean[0])) ** 2
        sq += (w @ dev2) if per_node else np.array([w @ dev2.sum(axis=1)])
    std = np.sqrt(sq / count)
    if np.any(std == 0):
        # A constant sensor (or series) carries no scale: leave it centred, unscaled.
        std = np.where(std == 0, 1.0, std)
    if not per_node:
        mean, std = mean[0], std[0]
    return Normaliser(np.asarray(mean, np.float32), np.asarray(std, np.float32))


@dataclass(frozen=True)
class FeatureBuilder:
    """Channel 0 is the normalised target; then time of day and day of week, if the format's
    recipe yields them."""

    normaliser: Normaliser
    time_of_day: np.ndarray | None = None  # (T,) float32 in [0, 1)
    day_of_week: np.ndarray | None = None  # (T,) float32, Monday = 0/7 .. Sunday = 6/7

    @property
    def feature_names(self) -> tuple[str, ...]:
        names = ["value"]
        if self.time_of_day is not None:
            names.append("time_of_day")
        if self.day_of_week is not None:
            names.append("day_of_week")
        return tuple(names)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def build(self, raw: np.ndarray, t0: int, out: np.ndarray | None = None) -> np.ndarray:
        """(r, N) raw rows starting at time step ``t0`` -> (r, N, F) float32 features,
        written into ``out`` when given."""
        r, n = raw.shape
        if out is None:
            out = np.empty((r, n, self.num_features), dtype=np.float32)
        out[..., 0] = self.normaliser.apply(raw)
        channel = 1
        for extra in (self.time_of_day, self.day_of_week):
            if extra is not None:
                out[..., channel] = extra[t0 : t0 + r, None]
                channel += 1
        return out


def split_target_rows(split: Split, lags: int) -> dict[str, tuple[int, int]]:
    """Rows [r0, r1) that the target windows of each split cover."""
    return {name: (lo + lags, hi - 1 + 2 * lags) for name in SPLITS for lo, hi in [getattr(split, name)]}


def feature_builder(raw: RawDataset, split: Split, lags: int, day_of_week: bool = False) -> FeatureBuilder:
    """The normalised value, then the channels of the format's feature recipe (see
    :mod:`pgti.datasets.formats.base`): time of day and day of week where the files have dates."""
    normaliser = compute_normaliser(raw.rows, split.size("train"), lags, raw.spec.normalisation,
                                    target_rows=split_target_rows(split, lags), missing=raw.spec.missing_value)
    return FeatureBuilder(normaliser, **format_of(raw.spec).features(raw, day_of_week))
