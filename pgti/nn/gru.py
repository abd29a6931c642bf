"""``gru``: a GRU run on each node's series alone, its weights shared by all nodes; no graph.

``nn.GRU(F, hidden)`` encodes the L input steps of every node (the B x N node series form one
batch of sequences); a linear head ``hidden -> L`` reads the L target steps from the last hidden
state (C = 1 output channel). The graph given at construction is ignored, so the model measures
what the graph convolutions of the other models add. ``y`` (teacher forcing) is not used.
"""

from __future__ import annotations

from torch import Tensor, nn

from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("gru")
class NodeGRU(nn.Module):
    """GRU encoder over the window of each node, then Linear(hidden -> L) from its last state."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None,
                 edge_index: Tensor | None = None, edge_weight: Tensor | None = None,
                 hidden: int = 32, layers: int = 1):
        super().__init__()
        lags = window_length("gru", lags)
        if hidden < 1 or layers < 1:
            raise ValueError("hidden and layers must be >= 1")
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.gru = nn.GRU(num_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, lags)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "gru")
        b, lags, n, f = x.shape
        sequences = x.permute(0, 2, 1, 3).reshape(b * n, lags, f)
        _, last = self.gru(sequences)  # last: (layers, B * N, hidden)
        out = self.head(last[-1]).view(b, n, lags)
        return out.transpose(1, 2).unsqueeze(-1).contiguous()  # (B, L, N, 1)
