"""DCRNN models on the fast dual random-walk diffusion (``pgti.nn.diffusion``).

- ``DCGRUCell``: DCRNN's diffusion-convolutional GRU cell.
- ``DCRNNCell`` (``--model dcrnn-cell``): one F -> F cell whose hidden state at each step is the
  prediction, the architecture of PGT's ``BatchedDCRNN`` as used in the PGT-I paper.
- ``DCRNN`` (``--model dcrnn``): the published encoder-decoder with scheduled sampling, whose
  diffusion convolutions recompute their terms in the backward pass rather than store them.
- ``dcrnn-cell-s2s`` (``pgti.nn.s2s``) reuses ``DCGRUCell`` as an encoder.

Layout: inside the models every signal is node-major, ``(N, channels, [time,] batch)`` and
contiguous, so the diffusion is a sparse product on an ``(N, everything else)`` view and the
convolution weights apply per node without transposing copies (see ``DCGRUCell``). Inputs and
outputs at the model boundary are ``(B, L, N, F)``; each is permuted once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pgti.nn.diffusion import DualRandomWalkDiffusion
from pgti.nn.registry import register_model
from pgti.nn.window import check_input


class _NodeBatchedProduct(torch.autograd.Function):
    """``out[n] = W @ x[n]`` for one weight ``W`` (O, K) shared by all nodes, ``x`` (N, K, B).

    ``torch.matmul`` folds this into one 2-D product after copying ``x`` to (N, B, K) and
    returns a transposed view; a batched product over the expanded weight avoids both. Its
    weight gradient ``sum_n G[n] x[n]^T`` is a batched product and a sum when ``O K`` is small
    (the one-cell model) and one ``tensordot`` otherwise. Measured, forward + backward on one
    CPU thread at the pems-bay shape: 2.2x faster than ``torch.matmul`` for 2 channels, on par
    for 64.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor) -> Tensor:
        ctx.save_for_backward(weight, x)
        return torch.bmm(weight.expand(x.size(0), -1, -1), x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, x = ctx.saved_tensors
        grad = grad.contiguous()
        n = grad.size(0)
        grad_weight = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_weight = _weight_gradient(grad, x)
        if ctx.needs_input_grad[1]:
            grad_x = torch.bmm(weight.t().expand(n, -1, -1), grad)
        return grad_weight, grad_x


def _weight_gradient(grad: Tensor, x: Tensor) -> Tensor:
    """``sum_n grad[n] x[n]^T`` for ``grad`` (N, O, B), ``x`` (N, K, B): see ``_NodeBatchedProduct``."""
    out, k, batch = grad.size(1), x.size(1), grad.size(2)
    if out * k <= (out + k) * batch:
        return torch.bmm(grad, x.transpose(1, 2)).sum(0)
    return torch.tensordot(grad, x, dims=([0, 2], [0, 2]))


class _DiffusionConvolution(torch.autograd.Function):
    """``W @ terms(x)`` per node, saving ``x`` rather than its diffusion terms.

    The same result as ``_NodeBatchedProduct.apply(W, diffusion(x))``, with a backward that
    recomputes the terms (``K - 1`` sparse products, a small share of the step) instead of
    keeping them: for the published DCRNN (5 terms) the saved tensor per convolution is 5x
    smaller, and the convolutions' terms were most of the activation memory. The gradient of
    ``x`` is the diffusion's adjoint applied to ``W^T grad`` (``DualRandomWalkDiffusion.adjoint``).
    """

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, diffusion: DualRandomWalkDiffusion, matrices):
        ctx.diffusion, ctx.matrices = diffusion, matrices
        ctx.save_for_backward(weight, x)
        n = x.size(0)
        terms = diffusion(x, matrices).reshape(n, weight.size(1), -1)
        return torch.bmm(weight.expand(n, -1, -1), terms)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, x = ctx.saved_tensors
        grad = grad.contiguous()
        n = grad.size(0)
        diffusion, matrices = ctx.diffusion, ctx.matrices
        grad_weight = grad_x = None
        if ctx.needs_input_grad[0]:
            terms = diffusion(x, matrices).reshape(n, weight.size(1), -1)
            grad_weight = _weight_gradient(grad, terms)
            del terms
        if ctx.needs_input_grad[1]:
            grad_terms = torch.bmm(weight.t().expand(n, -1, -1), grad)  # (N, M * C, cols)
            grad_terms = grad_terms.view(n, diffusion.num_terms, *x.shape[1:])
            grad_x = diffusion.adjoint(grad_terms, matrices)
        return grad_weight, grad_x, None, None


class DCGRUCell(nn.Module):
    """DCRNN's GRU cell with diffusion convolutions in place of the dense products.

        [r, u] = sigmoid(dconv([x, h]))       (one convolution for both gates)
        c      = tanh(dconv([x, r * h]))
        h'     = u * h + (1 - u) * c

    Layout: states are ``(N, H, B)`` (node, channel, batch) and sequences ``(N, C, T, B)``, so
    that the diffusion output ``(N, terms, C, B)`` is, for every node, one contiguous
    ``(terms * C, B)`` block and the convolution weights apply as one batched product, with no
    transposing copies. Diffusion is linear and acts on each channel alone, so ``dconv([x, h])``
    splits into an ``x`` part and an ``h`` part. The ``x`` part of all three gates does not depend
    on the state: ``project_inputs`` computes it for a whole sequence at once, and ``step`` then
    diffuses only ``h`` and ``r * h``. Weights are ``(out, terms * in)`` like ``nn.Linear``,
    Xavier-uniform over the full ``(terms * (input + hidden))`` fan-in; gate biases start at 1
    and the candidate's at 0, as in DCRNN's reference code.

    ``recompute_diffusion``: keep only each convolution's input for the backward pass and
    recompute its diffusion terms there (``_DiffusionConvolution``) instead of storing the
    ``num_terms`` times larger terms. Same outputs and gradients; less memory, a little more
    sparse work.
    """

    def __init__(self, input_size: int, hidden_size: int, diffusion: DualRandomWalkDiffusion,
                 recompute_diffusion: bool = False, checkpoint_steps: bool = False):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.diffusion = diffusion
        self.recompute_diffusion = bool(recompute_diffusion)
        self.checkpoint_steps = bool(checkpoint_steps)
        m, h = diffusion.num_terms, hidden_size
        self.weight_x = nn.Parameter(torch.empty(3 * h, m * input_size))  # rows [r | u | c]
        self.weight_h_gates = nn.Parameter(torch.empty(2 * h, m * h))  # rows [r | u]
        self.weight_h_candidate = nn.Parameter(torch.empty(h, m * h))
        self.bias = nn.Parameter(torch.empty(3 * h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        m, h = self.diffusion.num_terms, self.hidden_size
        fan_in = m * (self.input_size + h)
        gates = math.sqrt(6.0 / (fan_in + 2 * h))
        candidate = math.sqrt(6.0 / (fan_in + h))
        with torch.no_grad():
            self.weight_x[: 2 * h].uniform_(-gates, gates)
            self.weight_x[2 * h :].uniform_(-candidate, candidate)
            self.weight_h_gates.uniform_(-gates, gates)
            self.weight_h_candidate.uniform_(-candidate, candidate)
            self.bias[: 2 * h].fill_(1.0)
            self.bias[2 * h :].zero_()

    def _convolve(self, x: Tensor, weight: Tensor, matrices) -> Tensor:
        """``sum_m W_m (term_m of x)`` for ``x`` (N, C, *rest) -> (N, out, *rest)."""
        n = x.size(0)
        if self.recompute_diffusion:
            out = _DiffusionConvolution.apply(weight, x, self.diffusion, matrices)
        else:
            terms = self.diffusion(x, matrices)  # (N, M, C, *rest)
            out = _NodeBatchedProduct.apply(weight, terms.reshape(n, weight.size(1), -1))
        return out.view(n, weight.size(0), *x.shape[2:])

    def project_inputs(self, x: Tensor, matrices=None) -> Tensor:
        """The input's share of all gate pre-activations, bias included.

        ``x``: (N, input_size, T, B) -> (N, 3 * hidden, T, B).
        """
        return self._convolve(x, self.weight_x, matrices) + self.bias[:, None, None]

    def step(self, projected_x: Tensor, h: Tensor, matrices=None) -> Tensor:
        """One step from ``projected_x`` (N, 3H, B) (``project_inputs`` at one t), ``h`` (N, H, B)."""
        if self.checkpoint_steps and torch.is_grad_enabled():
            return checkpoint(self._step, projected_x, h, matrices, use_reentrant=False)
        return self._step(projected_x, h, matrices)

    def _step(self, projected_x: Tensor, h: Tensor, matrices) -> Tensor:
        hs = self.hidden_size
        gates = projected_x[:, : 2 * hs] + self._convolve(h, self.weight_h_gates, matrices)
        r, u = torch.sigmoid(gates).chunk(2, dim=1)
        candidate = projected_x[:, 2 * hs :] + self._convolve(
            r * h, self.weight_h_candidate, matrices
        )
        return torch.lerp(torch.tanh(candidate), h, u)  # u * h + (1 - u) * c

    def forward(self, x: Tensor, h: Tensor | None = None, matrices=None) -> tuple[Tensor, Tensor]:
        """Run over a sequence ``x`` (N, input_size, T, B) from state ``h`` (zeros if None).

        Returns the states at every step (N, H, T, B) and the last state (N, H, B).
        """
        n, _, steps, batch = x.shape
        if h is None:
            h = x.new_zeros(n, self.hidden_size, batch)
        # unbind, not projected[:, :, t]: each indexing's backward would fill a full-size zero
        # gradient, quadratic in the number of steps.
        projected = self.project_inputs(x, matrices).unbind(2)
        states = []
        for t in range(steps):
            h = self.step(projected[t], h, matrices)
            states.append(h)
        return torch.stack(states, dim=2), h


def _to_node_major(x: Tensor) -> Tensor:
    """(B, L, N, F) -> (N, F, L, B), contiguous."""
    return x.permute(2, 3, 1, 0).contiguous()


def _from_node_major(x: Tensor) -> Tensor:
    """(N, F, L, B) -> (B, L, N, F), contiguous."""
    return x.permute(3, 2, 0, 1).contiguous()


@register_model("dcrnn-cell")
class DCRNNCell(nn.Module):
    """``dcrnn-cell``: one F -> F DCGRU cell (K = 3) whose state at each step is the prediction.

    The same architecture as PGT's ``BatchedDCRNN(F, F, K=3)`` (``pgt-dcrnn``), on the weighted
    dual random walk of ``pgti.nn.diffusion``. ``y`` is ignored.
    """

    def __init__(self, *, num_nodes: int, num_features: int, edge_index: Tensor,
                 edge_weight: Tensor | None, K: int = 3):
        super().__init__()
        self.num_nodes, self.num_features = num_nodes, num_features
        self.diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, num_nodes, K)
        self.cell = DCGRUCell(num_features, num_features, self.diffusion)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features)
        matrices = self.diffusion.matrices()
        states, _ = self.cell(_to_node_major(x), matrices=matrices)
        return _from_node_major(states)


@register_model("dcrnn")
class DCRNN(nn.Module):
    """``dcrnn``: the DCRNN encoder-decoder of Li et al. (ICLR 2018).

    ``layers`` stacked DCGRU cells of ``hidden`` units in the encoder and in the decoder, the
    decoder starting from the encoder's last states and a zero "GO" input, and a linear
    projection ``hidden -> F`` of the top decoder state giving each step's prediction, which is
    the next step's input. ``K`` counts diffusion terms k = 0..K-1 as everywhere in ``pgti``:
    the published setting (the paper's K = 3, the code's ``max_diffusion_step: 2``) is K = 3.

    Scheduled sampling (``scheduled_sampling=True``; DCRNN's ``use_curriculum_learning``): in
    training mode and with ``y`` given, each decoder step is fed the true ``y`` of the previous
    step with probability ``k / (k + exp(i / k))``, ``k = cl_decay_steps``, ``i`` the number of
    training forwards so far (kept in ``state_dict`` as extra state). Off, or in eval mode, the
    decoder always feeds back its own prediction.

    Memory (``recompute_diffusion``, on by default): each diffusion convolution keeps only its
    input for the backward pass and recomputes its ``1 + 2 (K - 1)`` diffusion terms there,
    instead of storing them; the outputs and gradients are those of the stored computation
    (``tests/test_models.py``). The tensors saved for the backward pass shrink about 3x and a
    training step's peak RSS about halves, at 0.9-1.1x the step time (METR-LA, PeMS-Bay shapes:
    RESULTS.md, ``scripts/bench_models.py --memory --before``). ``checkpoint_steps=True`` also
    recomputes each cell step in the backward pass (``torch.utils.checkpoint``), keeping only
    the states between steps: about a quarter less peak memory again, for ~40% more time.
    """

    def __init__(self, *, num_nodes: int, num_features: int, edge_index: Tensor,
                 edge_weight: Tensor | None, hidden: int = 64, layers: int = 2, K: int = 3,
                 scheduled_sampling: bool = False, cl_decay_steps: int = 2000,
                 recompute_diffusion: bool = True, checkpoint_steps: bool = False):
        super().__init__()
        if hidden < 1 or layers < 1 or cl_decay_steps < 1:
            raise ValueError("hidden, layers and cl_decay_steps must be >= 1")
        self.num_nodes, self.num_features = num_nodes, num_features
        self.hidden, self.layers = hidden, layers
        self.scheduled_sampling = bool(scheduled_sampling)
        self.cl_decay_steps = int(cl_decay_steps)
        self.batches_seen = 0
        self.diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, num_nodes, K)
        sizes = [num_features] + [hidden] * (layers - 1)
        self.encoder = nn.ModuleList(
            DCGRUCell(s, hidden, self.diffusion, recompute_diffusion, checkpoint_steps) for s in sizes)
        self.decoder = nn.ModuleList(
            DCGRUCell(s, hidden, self.diffusion, recompute_diffusion, checkpoint_steps)
            for s in sizes)
        self.projection = nn.Linear(hidden, num_features)

    def teacher_forcing_probability(self) -> float:
        k = self.cl_decay_steps
        return k / (k + math.exp(min(self.batches_seen / k, 700.0)))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features)
        matrices = self.diffusion.matrices()
        horizon = x.size(1)
        # The encoder has no feedback, so it runs layer by layer over the whole window.
        sequence = _to_node_major(x)  # (N, F, L, B)
        states = []
        for cell in self.encoder:
            sequence, last = cell(sequence, matrices=matrices)
            states.append(last)

        teacher = None
        if self.training and self.scheduled_sampling and y is not None:
            teacher = _to_node_major(y)  # (N, F, L, B)
            probability = self.teacher_forcing_probability()
        decoder_input = x.new_zeros(self.num_nodes, self.num_features, x.size(0))  # GO
        predictions = []
        for t in range(horizon):
            layer_input = decoder_input
            for i, cell in enumerate(self.decoder):
                projected = cell.project_inputs(layer_input.unsqueeze(2), matrices)[:, :, 0]
                states[i] = cell.step(projected, states[i], matrices)
                layer_input = states[i]
            # Linear(hidden -> F) on the (N, hidden, B) layout.
            prediction = _NodeBatchedProduct.apply(self.projection.weight, layer_input) \
                + self.projection.bias[:, None]
            predictions.append(prediction)
            use_truth = teacher is not None and float(torch.rand(())) < probability
            decoder_input = teacher[:, :, t] if use_truth else prediction
        if self.training:
            self.batches_seen += 1
        return _from_node_major(torch.stack(predictions, dim=2))

    def get_extra_state(self) -> dict:
        return {"batches_seen": self.batches_seen}

    def set_extra_state(self, state: dict) -> None:
        self.batches_seen = int(state.get("batches_seen", 0))
