"""``linear``: a linear autoregression over the input window, one map shared by all nodes.

Each node's L x F input window is flattened and mapped by one ``nn.Linear(L * F, L)`` to its L
target steps (C = 1 output channel: channel 0). The weights are shared across nodes and the
graph is not used: this is the least a learned model should beat, the learned counterpart of the
``last-value`` baseline. Because the map is fixed to L inputs, the window length must be the
``lags`` the model was built with.
"""

from __future__ import annotations

from torch import Tensor, nn

from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("linear")
class LinearAR(nn.Module):
    """y[b, :, n] = W x[b, :, n, :].flatten() + c, the same W, c for every node n."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None,
                 edge_index: Tensor | None = None, edge_weight: Tensor | None = None):
        super().__init__()
        lags = window_length("linear", lags)
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.linear = nn.Linear(lags * num_features, lags)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "linear")
        b, lags, n, f = x.shape
        window = x.permute(0, 2, 1, 3).reshape(b, n, lags * f)  # each node's L x F window
        return self.linear(window).transpose(1, 2).unsqueeze(-1).contiguous()  # (B, L, N, 1)
