"""``agcrn``: PyTorch Geometric Temporal's ``AGCRN`` cell with learned node embeddings.

``AGCRN(number_of_nodes=N, in_channels=F, out_channels=hidden, K=2, embedding_dimensions=d)``
is stepped over the L input steps; the wrapper owns the node embeddings E (N x d, a parameter
initialised from a standard normal, as the AGCRN paper's code does) and passes them at each
step. A per-node ``Linear(hidden -> L)`` reads the L target steps from the last hidden state
(C = 1 output channel), in place of the paper's end convolution (the same map).

The given graph is NOT used: AGCRN learns its adjacency, softmax(ReLU(E E^T)), from the
embeddings. Defaults are the paper's for PEMS04: hidden = 64, d = 10, K = 2, but one recurrent
layer (the paper stacks two). ``y`` is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("agcrn")
class AGCRNModel(nn.Module):
    """PGT ``AGCRN`` over the L input steps on learned embeddings, then Linear(hidden -> L)."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None,
                 edge_index: Tensor | None = None, edge_weight: Tensor | None = None,
                 hidden: int = 64, embedding_dim: int = 10, K: int = 2):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.recurrent import AGCRN

        lags = window_length("agcrn", lags)
        if hidden < 1 or embedding_dim < 1 or K < 2:
            raise ValueError("hidden and embedding_dim must be >= 1, K >= 2")
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.recurrent = AGCRN(number_of_nodes=num_nodes, in_channels=num_features,
                               out_channels=hidden, K=K, embedding_dimensions=embedding_dim)
        self.node_embeddings = nn.Parameter(torch.randn(num_nodes, embedding_dim))
        self.head = nn.Linear(hidden, lags)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "agcrn")
        state = None
        for step in range(x.size(1)):
            state = self.recurrent(x[:, step], self.node_embeddings, state)
        out = self.head(state)  # (B, N, L)
        return out.transpose(1, 2).unsqueeze(-1).contiguous()
