"""``stconv``: STGCN from PyTorch Geometric Temporal's ``STConv`` blocks, with a linear output.

``blocks`` (2) ``STConv(num_nodes=N, in_channels, hidden_channels=16, out_channels=64,
kernel_size=k, K=3)`` blocks in a row, on the (B, L, N, F) layout upstream takes (the STGCN
paper's blocks are 64-16-64 channels with Ks = 3; STConv's first temporal convolution outputs the
hidden size, so here they are 16-16-64), then a per-node ``Linear(T' * 64 -> L)`` over the T' steps
left (in place of the paper's output block; C = 1 output channel). The graph, weights included,
enters through ChebConv with symmetric normalisation.

Kernel size vs L: each block shortens the sequence by 2 (k - 1), so T' = L - 2 * blocks * (k - 1)
must be >= 1. The paper's Kt = 3 fits L >= 9 (METR-LA's L = 12 leaves T' = 4); for a shorter
window the wrapper lowers k to the largest that fits (chickenpox's L = 4: k = 1, temporal
convolutions of width one) and says so in ``self.kernel_size``. Kept as upstream: each block runs
its graph convolution in a Python loop over batch and time (slow on big batches), and a
BatchNorm over nodes (batch statistics in training). ``y`` is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.diffusion import check_graph
from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("stconv")
class STGCNModel(nn.Module):
    """``blocks`` PGT ``STConv`` blocks, then Linear(T' * channels -> L) per node."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None, edge_index: Tensor,
                 edge_weight: Tensor | None, blocks: int = 2, kernel_size: int = 3, K: int = 3,
                 hidden: int = 16, channels: int = 64):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.attention import STConv

        lags = window_length("stconv", lags)
        if min(blocks, kernel_size, K, hidden, channels) < 1:
            raise ValueError("blocks, kernel_size, K, hidden and channels must be >= 1")
        edge_weight = check_graph(edge_index, edge_weight, num_nodes)
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.kernel_size = min(kernel_size, 1 + (lags - 1) // (2 * blocks))
        self.steps_left = lags - 2 * blocks * (self.kernel_size - 1)
        sizes = [num_features] + [channels] * (blocks - 1)
        self.blocks = nn.ModuleList(
            STConv(num_nodes=num_nodes, in_channels=s, hidden_channels=hidden,
                   out_channels=channels, kernel_size=self.kernel_size, K=K) for s in sizes)
        self.head = nn.Linear(self.steps_left * channels, lags)
        self.register_buffer("edge_index", edge_index.long().clone(), persistent=False)
        self.register_buffer("edge_weight", edge_weight.float().clone(), persistent=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "stconv")
        h = x
        for block in self.blocks:
            h = block(h, self.edge_index, self.edge_weight)  # (B, T, N, channels)
        b, t, n, c = h.shape
        out = self.head(h.permute(0, 2, 1, 3).reshape(b, n, t * c))  # (B, N, L)
        return out.transpose(1, 2).unsqueeze(-1).contiguous()
