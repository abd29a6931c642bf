"""Dual random-walk diffusion on a weighted directed graph (DCRNN, Li et al., ICLR 2018).

The graph is a weighted adjacency ``W`` with ``W[i, j]`` the weight of edge ``i -> j``
(duplicate edges add up). Its two transition matrices are

- forward:  ``P_f = D_out^-1 W``   with ``D_out = diag(row sums of W)``,
- backward: ``P_b = D_in^-1 W^T``  with ``D_in = diag(column sums of W)``,

where ``1/0 := 0``: a node with no outgoing (incoming) edge gets a zero row in ``P_f``
(``P_b``), never NaN or inf. The diffusion convolution of a signal ``X`` with ``K`` terms is

    sum_{k=0..K-1} (P_f^k X) Theta_{f,k} + (P_b^k X) Theta_{b,k} (+ bias)

with *plain powers* of the transition matrices, as in the paper's equation (2). DCRNN's
reference code instead builds the k-th term with the Chebyshev-like recursion
``x_k = 2 P x_{k-1} - x_{k-2}``; we follow the paper. Both k = 0 terms multiply ``X`` itself,
so they are one matrix here (``Theta_0 = Theta_{f,0} + Theta_{b,0}``, as the reference code
does too), leaving ``1 + 2 (K - 1)`` terms.

Speed: the ``2 (K - 1)`` non-identity supports ``[P_f, P_f^2, .., P_b, P_b^2, ..]`` are
computed once, stacked into one sparse ``(2 (K - 1) N, N)`` CSR matrix, and applied to the
whole batch with one sparse-times-dense product on a node-major ``(N, batch * channels)``
view: no per-sample loop, no edge list replicated per sample. The backward pass multiplies by
the precomputed transpose (also CSR), measured on a 2-core CPU at the pems-bay shape as the
fastest of: this, torch's own CSR backward (1.7x slower), COO ``torch.sparse.mm`` (1.5x),
``index_add`` gather/scatter (7x) and a dense matrix (2.5x). The matrices are fixed: no
gradient flows to them.

Upstream problems this fixes (PyTorch Geometric Temporal's ``BatchedDConv``, 0.56.2): its
messages are ``x_j / deg(j)``, so edge weights only enter through the degrees; and its
in-degree normalisation is indexed by the *source* of each original edge and then paired with
a re-sorted reversed edge list, which misaligns it and gives inf/NaN for a node with no
incoming edge.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from pgti.errors import InputError


def check_graph(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> Tensor:
    """Validate a weighted edge list and return its weights (ones when ``edge_weight`` is None)."""
    if num_nodes < 1:
        raise InputError(f"the graph needs at least one node, got num_nodes={num_nodes}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise InputError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise InputError(f"edge_index must hold integers, got {edge_index.dtype}")
    num_edges = edge_index.size(1)
    if edge_weight is None:
        edge_weight = torch.ones(num_edges, device=edge_index.device)
    if edge_weight.shape != (num_edges,):
        raise InputError(
            f"edge_weight must have shape ({num_edges},) to match edge_index, "
            f"got {tuple(edge_weight.shape)}"
        )
    if num_edges:
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            raise InputError(f"edge_index refers to node {low if low < 0 else high}, "
                             f"outside 0..{num_nodes - 1}")
        if not bool(torch.isfinite(edge_weight).all()) or bool((edge_weight < 0).any()):
            raise InputError("edge weights must be finite and non-negative for a random walk")
    return edge_weight


def _inverse_or_zero(degree: Tensor) -> Tensor:
    safe = torch.where(degree > 0, degree, torch.ones_like(degree))
    return torch.where(degree > 0, 1.0 / safe, torch.zeros_like(degree))


def dual_random_walk(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """``(P_f, P_b) = (D_out^-1 W, D_in^-1 W^T)`` as coalesced sparse COO ``(N, N)`` tensors."""
    edge_weight = check_graph(edge_index, edge_weight, num_nodes)
    index = edge_index.long()
    weight = torch.sparse_coo_tensor(
        index, edge_weight.to(dtype), (num_nodes, num_nodes), check_invariants=True
    ).coalesce()  # sums duplicate edges
    (row, col), w = weight.indices(), weight.values()
    out_degree = torch.zeros(num_nodes, dtype=dtype, device=w.device).index_add_(0, row, w)
    in_degree = torch.zeros(num_nodes, dtype=dtype, device=w.device).index_add_(0, col, w)
    forward = torch.sparse_coo_tensor(
        torch.stack([row, col]), w * _inverse_or_zero(out_degree)[row], (num_nodes, num_nodes),
        check_invariants=True,
    ).coalesce()
    # Row j of W^T holds the edges *into* j; normalise it by j's in-degree.
    backward = torch.sparse_coo_tensor(
        torch.stack([col, row]), w * _inverse_or_zero(in_degree)[col], (num_nodes, num_nodes),
        check_invariants=True,
    ).coalesce()
    return forward, backward


def stacked_supports(forward: Tensor, backward: Tensor, K: int) -> Tensor:
    """``[P_f; P_f^2; ..; P_f^(K-1); P_b; ..; P_b^(K-1)]`` as one sparse COO ``(2(K-1)N, N)``."""
    if K < 1:
        raise InputError(f"the diffusion needs K >= 1 terms, got K={K}")
    n = forward.size(0)
    blocks: list[Tensor] = []
    for transition in (forward, backward):
        power = transition
        for k in range(1, K):
            blocks.append(power)
            if k + 1 < K:
                power = torch.sparse.mm(power, transition).coalesce()
    if not blocks:
        return torch.sparse_coo_tensor(
            torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=forward.dtype), (0, n),
            check_invariants=True,
        ).coalesce()
    indices = torch.cat(
        [b.indices() + torch.tensor([[i * n], [0]], device=b.device) for i, b in enumerate(blocks)],
        dim=1,
    )
    values = torch.cat([b.values() for b in blocks])
    return torch.sparse_coo_tensor(
        indices, values, (len(blocks) * n, n), check_invariants=True
    ).coalesce()


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


class _FixedSparseMatmul(torch.autograd.Function):
    """``A @ x`` for a constant sparse ``A``; the backward uses the precomputed ``A^T``."""

    @staticmethod
    def forward(ctx, x: Tensor, matrix: Tensor, matrix_t: Tensor) -> Tensor:
        ctx.matrix_t = matrix_t
        return matrix @ x

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad_x = ctx.matrix_t @ grad.contiguous() if ctx.needs_input_grad[0] else None
        return grad_x, None, None


class DualRandomWalkDiffusion(nn.Module):
    """Applies ``[I, P_f, .., P_f^(K-1), P_b, .., P_b^(K-1)]`` to a node-major signal.

    ``forward(x)`` takes ``x`` of shape ``(N, *rest)`` and returns ``(num_terms, N, *rest)``,
    term 0 being ``x`` itself. The supports are stored as plain dense buffers (CSR row
    pointers, column indices, values; not saved in ``state_dict`` since they derive from the
    graph), so ``.to(device)``/``.double()`` move them and DDP can broadcast them.
    """

    def __init__(
        self,
        edge_index: Tensor,
        edge_weight: Tensor | None,
        num_nodes: int,
        K: int,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.num_nodes = int(num_nodes)
        self.K = int(K)
        forward, backward = dual_random_walk(edge_index, edge_weight, num_nodes)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            supports = stacked_supports(forward, backward, self.K)  # float64 powers
            matrix = supports.to(dtype).to_sparse_csr()
            matrix_t = supports.t().coalesce().to(dtype).to_sparse_csr()
        self.num_supports = supports.size(0) // self.num_nodes
        self.num_terms = 1 + self.num_supports
        for name, m in (("support", matrix), ("support_t", matrix_t)):
            self.register_buffer(f"{name}_crow", m.crow_indices(), persistent=False)
            self.register_buffer(f"{name}_col", m.col_indices(), persistent=False)
            self.register_buffer(f"{name}_values", m.values(), persistent=False)

    def matrices(self) -> tuple[Tensor, Tensor]:
        """The stacked supports ``S`` ``(M N, N)`` and ``S^T`` as sparse CSR tensors."""
        n, m = self.num_nodes, self.num_supports * self.num_nodes
        return (
            _csr(self.support_crow, self.support_col, self.support_values, (m, n)),
            _csr(self.support_t_crow, self.support_t_col, self.support_t_values, (n, m)),
        )

    def forward(self, x: Tensor, matrices: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``x`` ``(N, *rest)`` -> ``(num_terms, N, *rest)``. Pass ``matrices()`` to reuse them."""
        if x.size(0) != self.num_nodes:
            raise ValueError(f"expected {self.num_nodes} nodes in dim 0, got {tuple(x.shape)}")
        if self.num_supports == 0:
            return x.unsqueeze(0)
        matrix, matrix_t = self.matrices() if matrices is None else matrices
        flat = x.reshape(self.num_nodes, -1)
        diffused = _FixedSparseMatmul.apply(flat, matrix, matrix_t)
        return torch.cat([flat, diffused]).view(self.num_terms, *x.shape)

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, K={self.K}, nnz={self.support_values.numel()}"
