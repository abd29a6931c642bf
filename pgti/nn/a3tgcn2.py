"""``a3tgcn2``: PyTorch Geometric Temporal's ``A3TGCN2`` (batched A3T-GCN) with a linear head.

``A3TGCN2(in_channels=F, out_channels=hidden, periods=L, batch_size=1)`` on the (B, N, F, L)
layout, then ReLU and ``Linear(hidden -> L)`` per node, as PGT's A3TGCN2 example does; C = 1
output channel. The graph (weights included) enters through the GCN convolutions of its TGCN2
cell. ``hidden`` = 32 as in PGT's example and the A3T-GCN paper.

What the wrapper changes or works around:

- ``batch_size``: A3TGCN2 asks for it at construction, but in 0.56.2 it only hands it to
  ``TGCN2``, which stores it unused and infers the batch from ``X``. So one model serves every
  batch size (the last, smaller batch included); ``batch_size=1`` is a placeholder, and the
  tests run batches of several sizes through one model.
- Its attention vector is created on CUDA whenever a GPU exists; the wrapper recreates it on the
  CPU (same uniform init) so that construction is device-independent and follows ``.to()``.
- ``cached=True``: the graph is static, so each GCN convolution normalises it (self-loops,
  symmetric degree scaling) once, not at every call: about 3% of a step at PeMS-Bay's shape.
  The same numbers either way; the model is moved to its device before its first forward.
- Kept as upstream: A3TGCN2 calls its cell on each of the L steps with no carried hidden state,
  so the "temporal" part is the attention-weighted sum of L independent one-step GCN-GRU
  states; ``y`` is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.diffusion import check_graph
from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("a3tgcn2")
class A3TGCN2Model(nn.Module):
    """PGT ``A3TGCN2`` over the window, then ReLU and Linear(hidden -> L) for each node."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None, edge_index: Tensor,
                 edge_weight: Tensor | None, hidden: int = 32):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.recurrent import A3TGCN2

        lags = window_length("a3tgcn2", lags)
        if hidden < 1:
            raise ValueError("hidden must be >= 1")
        edge_weight = check_graph(edge_index, edge_weight, num_nodes)
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.recurrent = A3TGCN2(in_channels=num_features, out_channels=hidden, periods=lags,
                                 batch_size=1, cached=True)
        attention = torch.empty(lags)
        nn.init.uniform_(attention)
        self.recurrent._attention = nn.Parameter(attention)
        self.head = nn.Linear(hidden, lags)
        self.register_buffer("edge_index", edge_index.long().clone(), persistent=False)
        self.register_buffer("edge_weight", edge_weight.float().clone(), persistent=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "a3tgcn2")
        state = self.recurrent(x.permute(0, 2, 3, 1), self.edge_index, self.edge_weight)  # (B, N, hidden)
        out = self.head(torch.relu(state))  # (B, N, L)
        return out.transpose(1, 2).unsqueeze(-1).contiguous()
