"""Naive forecasts every run is read against, as models under the model contract.

- ``last-value``: every target step repeats the last observed (non-missing) input reading of its
  node; a node with no observed reading in the input window repeats the last input step as it is.
- ``historical-average``: the training split's mean of each node for the target step's slot.
  Slots are what the run's input features say about time: time of day where the run has that
  channel (traffic sets, montevideo-bus), times day of week with ``--day-of-week``; a dataset
  without timestamps has one slot, the per-node training mean. A slot the training rows never
  saw falls back to the node's time-of-day mean, then the node's mean, then the global mean.

Both predict channel 0 in normalised units and copy the last input step into the other channels.
They have no parameters. Their statistics come from :func:`training_statistics`, computed once
from the raw training rows in a chunked pass (never from windows) where the rows can be read; a
model gets them through its ``fit(stats)`` hook. The run's baseline columns use the very same
modules on the same test batches, so the columns and ``--model last-value`` /
``--model historical-average`` agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from pgti.data.features import DAY_NS, chunk_rows
from pgti.nn.registry import register_model

WEEK_DAYS = 7
BASELINE_MODELS = ("last-value", "historical-average")
"""Their ``--model`` names: no parameters, statistics through ``fit`` (not the neural contract's
"trainable" half: tests of gradients leave them out)."""


@dataclass(frozen=True)
class TrainingStatistics:
    """What the baselines know of a run's data: picklable, small ((slots, N) floats)."""

    table: np.ndarray  # (S, N) float32: the historical average of each slot, normalised
    table_original: np.ndarray  # (S, N) float64: the same in original units
    missing: np.ndarray | None  # channel-0 value (scalar or (N,)) of a missing reading, normalised
    steps_per_day: int | None  # time-of-day slots; None: no time-of-day channel
    step_ns: int | None
    offset_ns: int  # the series' phase within a step: timestamps are offset_ns + k * step_ns
    time_of_day_channel: int | None
    day_of_week_channel: int | None

    @property
    def slots(self) -> int:
        return self.table.shape[0]

    @classmethod
    def flat(cls, num_nodes: int) -> "TrainingStatistics":
        """One slot with mean 0 for every node, nothing missing: for models that need ``fit``
        when there is no dataset behind the batches (benchmarks on random inputs)."""
        zeros = np.zeros((1, num_nodes))
        return cls(zeros.astype(np.float32), zeros, None, None, None, 0, None, None)


def _slot_of_day(time_of_day_ns, offset_ns: int, step_ns: int, steps_per_day: int):
    """Index of a time of day among the day's steps (exact for integers, rounded for floats)."""
    return np.rint((time_of_day_ns - offset_ns) / step_ns).astype(np.int64) % steps_per_day


def training_statistics(data) -> TrainingStatistics:
    """The baselines' statistics of ``data`` (a :class:`~pgti.data.loader.PreparedData` whose rows
    can be read): means of the raw rows that training windows cover (inputs and targets, each row
    once), in original units, missing readings left out. One chunked pass over those rows."""
    raw, features, lags = data.raw, data.features, data.lags
    names = features.feature_names
    tod_channel = names.index("time_of_day") if "time_of_day" in names else None
    dow_channel = names.index("day_of_week") if "day_of_week" in names else None
    step_ns = int(raw.spec.step_seconds) * 10**9 if raw.spec.step_seconds else None
    steps_per_day = None
    if tod_channel is not None and raw.timestamps_ns is not None and step_ns and DAY_NS % step_ns == 0:
        steps_per_day = DAY_NS // step_ns
    else:
        tod_channel = dow_channel = None
    offset_ns = int(raw.timestamps_ns[0] % step_ns) if steps_per_day else 0
    week = WEEK_DAYS if dow_channel is not None else 1
    slots = steps_per_day * week if steps_per_day else 1
    n = raw.num_nodes
    missing = raw.spec.missing_value

    sums, counts = np.zeros((slots, n)), np.zeros((slots, n))
    last_row = min(raw.num_timesteps, data.split.size("train") + 2 * lags - 1)
    step = chunk_rows(n)
    for t0 in range(0, last_row, step):
        t1 = min(t0 + step, last_row)
        block = np.asarray(raw.rows.read(t0, t1), dtype=np.float64)
        valid = np.ones(block.shape, bool) if missing is None else block != missing
        if steps_per_day:
            ts = raw.timestamps_ns[t0:t1]
            slot = _slot_of_day(ts % DAY_NS, offset_ns, step_ns, steps_per_day)
            if dow_channel is not None:
                slot = slot + steps_per_day * ((ts // DAY_NS + 3) % WEEK_DAYS)  # Monday = 0
        else:
            slot = np.zeros(t1 - t0, dtype=np.int64)
        np.add.at(sums, slot, np.where(valid, block, 0.0))
        np.add.at(counts, slot, valid)

    def mean(s, c):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, s / np.where(c > 0, c, 1), np.nan)

    table = mean(sums, counts)
    fallbacks = []
    if week > 1:  # the node's mean at this time of day, over all days of the week
        by_day = lambda a: a.reshape(week, steps_per_day, n).sum(axis=0)  # noqa: E731
        fallbacks.append(np.tile(mean(by_day(sums), by_day(counts)), (week, 1)))
    fallbacks.append(np.broadcast_to(mean(sums.sum(0), counts.sum(0)), table.shape))  # the node's mean
    total = counts.sum()
    fallbacks.append(np.full(table.shape, sums.sum() / total if total else 0.0))  # the global mean
    for fallback in fallbacks:
        table = np.where(np.isnan(table), fallback, table)
    normalised = features.normaliser.apply(table)  # float32, exactly as the series' channel 0
    marker = None
    if missing is not None:
        marker = np.asarray(features.normaliser.normalised_value(missing), dtype=np.float32)
    return TrainingStatistics(np.ascontiguousarray(normalised, dtype=np.float32), table, marker,
                              steps_per_day, step_ns, offset_ns, tod_channel, dow_channel)


class _Baseline(nn.Module):
    """No parameters; ``fit(stats)`` gives it the training statistics (buffers, not saved)."""

    def __init__(self, num_nodes: int, num_features: int, edge_index: Tensor, edge_weight: Tensor | None):
        super().__init__()
        self.num_nodes, self.num_features = num_nodes, num_features
        self.stats: TrainingStatistics | None = None
        self.register_buffer("_anchor", torch.empty(0), persistent=False)  # follows .to(device)
        self.register_buffer("missing", None, persistent=False)

    def fit(self, stats: TrainingStatistics) -> "_Baseline":
        self.stats = stats
        if stats.missing is not None:
            self.missing = torch.as_tensor(stats.missing, device=self._anchor.device)
        return self

    def _output(self, x: Tensor, channel0: Tensor) -> Tensor:
        """(B, L, N, F): ``channel0`` (B, L, N), the last input step in the other channels."""
        out = x[:, -1:].expand_as(x).clone()
        out[..., 0] = channel0
        return out


@register_model("last-value")
class LastValue(_Baseline):
    """Repeat the last observed input reading of each node for all L target steps."""

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        value = x[..., 0]  # (B, L, N)
        last = value[:, -1]
        if self.missing is not None:
            lags = value.shape[1]
            steps = torch.arange(lags, device=x.device).view(1, lags, 1)
            observed = torch.where(value != self.missing, steps, -1).amax(dim=1)  # (B, N)
            index = torch.where(observed >= 0, observed, lags - 1)
            last = value.gather(1, index.unsqueeze(1)).squeeze(1)
        return self._output(x, last.unsqueeze(1).expand(-1, value.shape[1], -1))


@register_model("historical-average")
class HistoricalAverage(_Baseline):
    """The training mean of each node for the target step's slot (time of day, day of week)."""

    def __init__(self, num_nodes: int, num_features: int, edge_index: Tensor, edge_weight: Tensor | None):
        super().__init__(num_nodes, num_features, edge_index, edge_weight)
        self.register_buffer("table", None, persistent=False)

    def fit(self, stats: TrainingStatistics) -> "HistoricalAverage":
        super().fit(stats)
        if stats.table.shape[1] != self.num_nodes:
            raise ValueError(f"statistics of {stats.table.shape[1]} nodes for a model of {self.num_nodes}")
        self.table = torch.from_numpy(stats.table.copy()).to(self._anchor.device)
        return self

    def target_slots(self, x: Tensor) -> Tensor:
        """(B, L) slot of each target step, read from the last input step's calendar channels."""
        return self.slots(x, torch.arange(1, x.shape[1] + 1, device=x.device))

    def input_slots(self, x: Tensor) -> Tensor:
        """(B, L) slot of each input step."""
        return self.slots(x, torch.arange(1 - x.shape[1], 1, device=x.device))

    def slots(self, x: Tensor, offsets: Tensor) -> Tensor:
        """(B, len(offsets)) slot of the steps ``offsets`` steps after the last input step."""
        s, batch = self.stats, x.shape[0]
        if s.steps_per_day is None:
            return torch.zeros(batch, len(offsets), dtype=torch.long, device=x.device)
        tod = x[:, -1, 0, s.time_of_day_channel].double() * DAY_NS
        last = torch.remainder(torch.round((tod - s.offset_ns) / s.step_ns).long(), s.steps_per_day)
        ahead = last.unsqueeze(1) + offsets  # (B, len(offsets))
        slot = torch.remainder(ahead, s.steps_per_day)
        if s.day_of_week_channel is not None:
            day = torch.round(x[:, -1, 0, s.day_of_week_channel].double() * WEEK_DAYS).long()
            slot = slot + s.steps_per_day * torch.remainder(day.unsqueeze(1) + ahead // s.steps_per_day, WEEK_DAYS)
        return slot

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.table is None:
            raise RuntimeError("historical-average needs fit(training_statistics(data)) before use")
        return self._output(x, self.table[self.target_slots(x)])  # (B, L, N)
