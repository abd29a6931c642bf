"""``astgcn``: PyTorch Geometric Temporal's ``ASTGCN`` (attention-based spatial-temporal GCN).

``ASTGCN(nb_block=2, in_channels=F, K=3, nb_chev_filter=64, nb_time_filter=64, time_strides=1,
num_for_predict=L, len_input=L, num_of_vertices=N, normalization="sym")``: the sizes of the
ASTGCN paper (and PGT's example) for its recent-hours component alone, on the (B, N, F, L)
layout; its final convolution already maps the window to L outputs, which the wrapper returns as
channel 0 (C = 1). The daily and weekly components of the paper need inputs the contract does
not carry, so they are left out.

The wrapper passes ``normalization="sym"`` (upstream's default is None): with None, every
forward computes the Laplacian's largest eigenvalue with SciPy's ARPACK (not installed here, and
not bitwise reproducible); "sym" takes it as 2. The graph's structure is used, its edge weights
are not (ASTGCN's Chebyshev attention convolution takes none). The spatial and temporal
attention have N- and L-sized parameters, so the model is tied to the N and L it was built for.
``y`` is not used.
"""

from __future__ import annotations

from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.diffusion import check_graph
from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("astgcn")
class ASTGCNModel(nn.Module):
    """PGT ``ASTGCN`` (recent component), window of L steps -> L predictions."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None, edge_index: Tensor,
                 edge_weight: Tensor | None, blocks: int = 2, K: int = 3, chev_filters: int = 64,
                 time_filters: int = 64):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.attention import ASTGCN

        lags = window_length("astgcn", lags)
        if min(blocks, K, chev_filters, time_filters) < 1:
            raise ValueError("blocks, K, chev_filters and time_filters must be >= 1")
        check_graph(edge_index, edge_weight, num_nodes)
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.astgcn = ASTGCN(nb_block=blocks, in_channels=num_features, K=K,
                             nb_chev_filter=chev_filters, nb_time_filter=time_filters,
                             time_strides=1, num_for_predict=lags, len_input=lags,
                             num_of_vertices=num_nodes, normalization="sym")
        self.register_buffer("edge_index", edge_index.long().clone(), persistent=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "astgcn")
        out = self.astgcn(x.permute(0, 2, 3, 1), self.edge_index)  # (B, N, L)
        return out.transpose(1, 2).unsqueeze(-1).contiguous()
