"""``dcrnn-cell-s2s-ha``: ``dcrnn-cell-s2s`` forecasting the departure from the historical average.

Where a series repeats by time of day (bus inflow, traffic), the training split's mean for the
target step's slot (the ``historical-average`` baseline) is a strong forecast at long horizons,
and recent readings carry what today does differently. This model predicts

    historical average of the target slot + s2s(inputs and their departures from their slots' averages)

- the historical average comes from the training statistics (``fit(stats)``, as the baselines
  get them; not a parameter and not saved in checkpoints: every run and rank refits it);
- the ``dcrnn-cell-s2s`` network sees the F input channels plus one more, each input step's
  channel 0 minus its own slot's average (0 where a reading is missing), and its channel-0 output
  is the correction; its other output channels are passed through.

With the network's output at zero this is the historical-average baseline exactly, so training
starts from the baseline and learns the corrections. ``hidden``, ``layers`` and ``K`` are the
s2s network's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pgti.nn.baselines import HistoricalAverage, TrainingStatistics
from pgti.nn.registry import register_model
from pgti.nn.s2s import DCRNNCellS2S


@register_model("dcrnn-cell-s2s-ha")
class SeasonalResidualS2S(nn.Module):
    def __init__(self, *, num_nodes: int, num_features: int, edge_index: Tensor, edge_weight: Tensor | None,
                 hidden: int = 16, layers: int = 1, K: int = 3):
        super().__init__()
        self.num_features = num_features
        self.average = HistoricalAverage(num_nodes, num_features, edge_index, edge_weight)
        self.network = DCRNNCellS2S(num_nodes=num_nodes, num_features=num_features + 1, edge_index=edge_index,
                                    edge_weight=edge_weight, hidden=hidden, layers=layers, K=K)

    def fit(self, stats: TrainingStatistics) -> "SeasonalResidualS2S":
        self.average.fit(stats)
        return self

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        table = self.average.table
        if table is None:
            raise RuntimeError("dcrnn-cell-s2s-ha needs fit(training_statistics(data)) before use")
        departure = x[..., 0] - table[self.average.input_slots(x)]  # (B, L, N)
        if self.average.missing is not None:
            departure = torch.where(x[..., 0] == self.average.missing, torch.zeros_like(departure), departure)
        out = self.network(torch.cat([x, departure.unsqueeze(-1)], dim=-1))[..., : self.num_features]
        baseline = table[self.average.target_slots(x)]  # (B, L, N)
        return torch.cat([(baseline + out[..., 0]).unsqueeze(-1), out[..., 1:]], dim=-1)
