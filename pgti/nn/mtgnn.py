"""``mtgnn``: PyTorch Geometric Temporal's ``MTGNN`` with its learned graph, L steps -> L steps.

``MTGNN(gcn_true=True, build_adj=True, gcn_depth=2, num_nodes=N, kernel_set=[2, 3, 6, 7],
kernel_size=7, dropout=0.3, subgraph_size=min(20, N), node_dim=40, dilation_exponential=1,
conv_channels=32, residual_channels=32, skip_channels=64, end_channels=128, seq_length=L,
in_dim=F, out_dim=L, layers=3, propalpha=0.05, tanhalpha=3, layer_norm_affline=True)``: the
MTGNN paper's METR-LA configuration. Upstream maps the (B, F, N, L) layout to (B, L, N, 1), so
the wrapper only permutes the input; the L outputs are channel 0 (C = 1). A window shorter than
the receptive field (19 steps here) is zero-padded on the left by MTGNN itself, so L = 4 runs.

The given graph is NOT used: MTGNN learns a sparse adjacency (each node keeps its
``subgraph_size`` strongest neighbours) from node embeddings. ``subgraph_size`` is capped at N
(upstream's top-k needs k <= N). Each layer's ``_residual_conv``, which upstream builds but
uses only without graph convolutions, is removed: DDP refuses parameters that get no gradient.
Dropout (0.3) is upstream's, active in training. ``y`` is not
used.
"""

from __future__ import annotations

from torch import Tensor, nn

from pgti.compat import ensure_torch_sparse
from pgti.nn.registry import register_model
from pgti.nn.window import check_input, window_length


@register_model("mtgnn")
class MTGNNModel(nn.Module):
    """PGT ``MTGNN`` (learned graph, mix-hop propagation, dilated inception convolutions)."""

    def __init__(self, *, num_nodes: int, num_features: int, lags: int | None,
                 edge_index: Tensor | None = None, edge_weight: Tensor | None = None,
                 layers: int = 3, subgraph_size: int = 20, node_dim: int = 40,
                 dropout: float = 0.3):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.attention import MTGNN

        lags = window_length("mtgnn", lags)
        if min(layers, subgraph_size, node_dim) < 1 or not 0 <= dropout < 1:
            raise ValueError("layers, subgraph_size and node_dim must be >= 1, 0 <= dropout < 1")
        self.num_nodes, self.num_features, self.lags = num_nodes, num_features, lags
        self.mtgnn = MTGNN(gcn_true=True, build_adj=True, gcn_depth=2, num_nodes=num_nodes,
                           kernel_set=[2, 3, 6, 7], kernel_size=7, dropout=dropout,
                           subgraph_size=min(subgraph_size, num_nodes), node_dim=node_dim,
                           dilation_exponential=1, conv_channels=32, residual_channels=32,
                           skip_channels=64, end_channels=128, seq_length=lags,
                           in_dim=num_features, out_dim=lags, layers=layers, propalpha=0.05,
                           tanhalpha=3, layer_norm_affline=True)
        for layer in self.mtgnn._mtgnn_layers:
            layer._residual_conv = None  # used only without graph convolutions (gcn_true=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features, self.lags, "mtgnn")
        return self.mtgnn(x.permute(0, 3, 2, 1))  # (B, F, N, L) -> (B, L, N, 1)
