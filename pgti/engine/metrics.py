"""Masked metrics in original units, accumulated as sums so that ranks can all-reduce them.

The target is channel 0 (speed for the traffic sets). A reading equal to the dataset's
missing value (0.0 for traffic) is left out of every metric and of the loss. The artifact's
figure, MAE over all channels in normalised units, is kept as ``mae_all_channels``.

Predictions follow the model contract: (B, L, N, C) with C >= 1 for targets (B, L, N, F), channel 0
predicting channel 0. The loss and MAE/RMSE/MAPE read channel 0 only; ``mae_all_channels`` reads
the first min(C, F) channels. :func:`check_prediction` refuses any other shape where predictions
enter the metrics.
"""

from __future__ import annotations

import math

import torch

from pgti.errors import InputError
from pgti.observability.outputs import HORIZONS  # steps ahead; 15/30/60 minutes at 5-minute steps

__all__ = ["HORIZONS", "MetricSums", "TargetUnits", "check_prediction", "masked_mae"]


def check_prediction(pred: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse a prediction outside the model contract: (B, L, N, C), C >= 1, for y (B, L, N, F).
    Shape comparisons only, so it costs nothing per batch."""
    if pred.dim() != 4 or pred.shape[:3] != y.shape[:3] or pred.shape[3] < 1:
        raise InputError(
            f"the model's output breaks the model contract: forward(x) must return (B, L, N, C) "
            f"with C >= 1 for a target of shape (B, L, N, F) = {tuple(y.shape)}, got "
            f"{tuple(pred.shape)}", field="model.name")


class TargetUnits:
    """Turns channel 0 back into original units and marks missing readings."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, missing: torch.Tensor | None):
        self.mean, self.std, self.missing = mean, std, missing

    @classmethod
    def of(cls, data) -> "TargetUnits":
        mean, std = data.target_scale()
        return cls(mean, std, data.missing_normalised())

    def to(self, device) -> "TargetUnits":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TargetUnits(move(self.mean), move(self.std), move(self.missing))

    def original(self, channel0: torch.Tensor) -> torch.Tensor:
        return channel0 * self.std + self.mean

    def mask(self, y_channel0: torch.Tensor) -> torch.Tensor:
        if self.missing is None:
            return torch.ones_like(y_channel0, dtype=torch.bool)
        return y_channel0 != self.missing


def masked_mae(pred: torch.Tensor, y: torch.Tensor, units: TargetUnits) -> torch.Tensor:
    """The training loss: MAE of channel 0 in original units over non-missing readings."""
    check_prediction(pred, y)
    mask = units.mask(y[..., 0])
    err = (units.original(pred[..., 0]) - units.original(y[..., 0])).abs()
    return torch.where(mask, err, torch.zeros_like(err)).sum() / mask.sum().clamp(min=1)


class MetricSums:
    """Running sums of |e|, e^2, |e|/|y| and counts, overall and per horizon."""

    FIELDS = ("abs", "sq", "ape", "count")

    def __init__(self, lags: int, device="cpu"):
        self.horizons = tuple(h for h in HORIZONS if h <= lags)
        # rows: overall, then each horizon; columns: FIELDS
        self.sums = torch.zeros(1 + len(self.horizons), len(self.FIELDS), dtype=torch.float64, device=device)
        # all-channel |e| sum and element count (the artifact's figure), and the window count
        self.all_channels = torch.zeros(3, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, y: torch.Tensor, units: TargetUnits) -> None:
        check_prediction(pred, y)
        mask = units.mask(y[..., 0])
        truth = units.original(y[..., 0])
        err = units.original(pred[..., 0]) - truth
        zero = torch.zeros_like(err)
        abs_e = torch.where(mask, err.abs(), zero)
        sq_e = torch.where(mask, err * err, zero)
        ape = torch.where(mask & (truth != 0), err.abs() / truth.abs().clamp(min=1e-6), zero)
        per_step = torch.stack([abs_e, sq_e, ape, mask.to(err.dtype)]).sum(dim=(1, 3)).double()  # (4, L)
        self.sums[0] += per_step.sum(dim=1)
        for i, h in enumerate(self.horizons, start=1):
            self.sums[i] += per_step[:, h - 1]
        channels = min(pred.shape[-1], y.shape[-1])
        if pred.shape[-1] != channels or y.shape[-1] != channels:
            pred, y = pred[..., :channels], y[..., :channels]
        self.all_channels[0] += (pred - y).abs().sum().double()
        self.all_channels[1] += pred.numel()
        self.all_channels[2] += pred.shape[0]

    @property
    def samples(self) -> int:
        return int(self.all_channels[2].item())

    def tensor(self) -> torch.Tensor:
        """All sums as one flat tensor (for ``all_reduce``)."""
        return torch.cat([self.sums.flatten(), self.all_channels])

    def load(self, flat: torch.Tensor) -> None:
        n = self.sums.numel()
        self.sums.copy_(flat[:n].view_as(self.sums))
        self.all_channels.copy_(flat[n:])

    def _summary(self, row: int) -> dict[str, float]:
        abs_, sq, ape, count = self.sums[row].tolist()
        if count == 0:
            return {"mae": math.nan, "rmse": math.nan, "mape": math.nan}
        return {"mae": abs_ / count, "rmse": math.sqrt(sq / count), "mape": 100.0 * ape / count}

    def mae(self) -> float:
        return self._summary(0)["mae"]

    def mae_all_channels(self) -> float:
        total, count, _ = self.all_channels.tolist()
        return total / count if count else math.nan

    def report(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}mae, {prefix}rmse, {prefix}mape`` and the same with ``_h3``/``_h6``/``_h12``.
        MAPE is in percent."""
        out = {f"{prefix}{k}": v for k, v in self._summary(0).items()}
        for i, h in enumerate(self.horizons, start=1):
            out.update({f"{prefix}{k}_h{h}": v for k, v in self._summary(i).items()})
        return out
