"""``pgt-dcrnn``: PyTorch Geometric Temporal's ``BatchedDCRNN``, exactly as the PGT-I paper runs it.

``BatchedDCRNN(in_channels=F, out_channels=F, K=3)`` called as ``BatchedDCRNN(x, edge_index,
edge_weight)``: one recurrent cell whose hidden state at each step is the prediction. This
wrapper only binds the graph; it keeps the upstream layer's behaviour for parity with the
artifact, including two problems that ``dcrnn-cell`` fixes (see ``pgti.nn.diffusion``): edge
weights enter only through the degrees, and a node with outgoing but no incoming edges makes
the output non-finite (a warning says so at construction).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.diffusion import check_graph
from pgti.nn.registry import register_model


@register_model("pgt-dcrnn")
class PGTDCRNN(nn.Module):
    def __init__(self, *, num_nodes: int, num_features: int, edge_index: Tensor,
                 edge_weight: Tensor | None):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.recurrent import BatchedDCRNN

        edge_weight = check_graph(edge_index, edge_weight, num_nodes)
        self.num_nodes, self.num_features = num_nodes, num_features
        self.recurrent = BatchedDCRNN(in_channels=num_features, out_channels=num_features, K=3)
        self.register_buffer("edge_index", edge_index.long().clone(), persistent=False)
        self.register_buffer("edge_weight", edge_weight.float().clone(), persistent=False)
        row, col = self.edge_index
        in_degree = torch.zeros(num_nodes).index_add_(0, col.cpu(), self.edge_weight.cpu())
        sources_without_in = torch.unique(row.cpu()[in_degree[row.cpu()] == 0])
        if sources_without_in.numel():
            warnings.warn(
                f"pgt-dcrnn: {sources_without_in.numel()} node(s) have outgoing but no incoming "
                f"edges (e.g. node {int(sources_without_in[0])}); PGT's BatchedDConv divides by "
                "their zero in-degree and its outputs will be inf/NaN. Use the dcrnn-cell model.",
                RuntimeWarning,
                stacklevel=2,
            )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.size(2) != self.num_nodes or x.size(3) != self.num_features:
            raise ValueError(f"expected x of shape (B, L, {self.num_nodes}, "
                             f"{self.num_features}), got {tuple(x.shape)}")
        cached = self.recurrent._cached_edge_index
        if isinstance(cached, Tensor) and cached.device != self.edge_index.device:
            # BatchedDCRNN caches the replicated graph and its norms; after .to(device) they
            # must be rebuilt on the new device.
            self.recurrent._cached_edge_index = None
        return self.recurrent(x, self.edge_index, self.edge_weight)
