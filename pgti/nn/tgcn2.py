"""``tgcn2``: PyTorch Geometric Temporal's batched T-GCN cell ``TGCN2`` run over the window.

``TGCN2(in_channels=F, out_channels=hidden, batch_size=1)`` is stepped over the L input steps,
carrying its hidden state (B, N, hidden); ReLU and a per-node ``Linear(hidden -> L)`` read the L
target steps from the last state (C = 1 output channel). The graph (weights included) enters
through the cell's GCN convolutions (which add self-loops and normalise symmetrically).
``hidden`` = 32. ``batch_size`` is a placeholder: TGCN2 documents it as unnecessary and infers
the batch from its input, so any batch size runs. ``cached=True``: the graph is static, so its
GCN normalisation is computed once, not at every call (about 3% of a step at PeMS-Bay's shape;
the same numbers). ``y`` is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.diffusion import check_graph
from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("tgcn2")
class TGCN2Model(nn.Module):
    """PGT ``TGCN2`` over the L input steps, then ReLU and Linear(hidden -> L) per node."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None, edge_index: Tensor,
                 edge_weight: Tensor | None, hidden: int = 32):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.recurrent import TGCN2

        lags = window_length("tgcn2", lags)
        if hidden < 1:
            raise ValueError("hidden must be >= 1")
        edge_weight = check_graph(edge_index, edge_weight, num_nodes)
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.recurrent = TGCN2(in_channels=num_features, out_channels=hidden, batch_size=1, cached=True)
        self.head = nn.Linear(hidden, lags)
        self.register_buffer("edge_index", edge_index.long().clone(), persistent=False)
        self.register_buffer("edge_weight", edge_weight.float().clone(), persistent=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "tgcn2")
        state = None
        for step in range(x.size(1)):
            state = self.recurrent(x[:, step], self.edge_index, self.edge_weight, state)
        out = self.head(torch.relu(state))  # (B, N, L)
        return out.transpose(1, 2).unsqueeze(-1).contiguous()
