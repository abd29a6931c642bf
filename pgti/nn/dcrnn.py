"""DCRNN models on the fast dual random-walk diffusion (``pgti.nn.diffusion``).

- ``DCGRUCell``: DCRNN's diffusion-convolutional GRU cell.
- ``DCRNNCell`` (``--model dcrnn-cell``): one F -> F cell whose hidden state at each step is the
  prediction, the architecture of PGT's ``BatchedDCRNN`` as used in the PGT-I paper.
- ``DCRNN`` (``--model dcrnn``): the published encoder-decoder with scheduled sampling.

Layout: inside the models every signal is node-major, ``(N, ..., B, C)`` and contiguous, so the
diffusion is one sparse product on an ``(N, batch * channels)`` view. Inputs and outputs at the
model boundary are ``(B, L, N, F)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pgti.nn.diffusion import DualRandomWalkDiffusion


def _check_input(x: Tensor, num_nodes: int, num_features: int) -> None:
    if x.dim() != 4 or x.size(2) != num_nodes or x.size(3) != num_features:
        raise ValueError(
            f"expected x of shape (B, L, {num_nodes}, {num_features}), got {tuple(x.shape)}"
        )


class DCGRUCell(nn.Module):
    """DCRNN's GRU cell with diffusion convolutions in place of the dense products.

        [r, u] = sigmoid(dconv([x, h]))       (one convolution for both gates)
        c      = tanh(dconv([x, r * h]))
        h'     = u * h + (1 - u) * c

    Diffusion is linear and acts on each channel alone, so ``dconv([x, h])`` splits into an
    ``x`` part and an ``h`` part. The ``x`` part of all three gates does not depend on the state:
    ``project_inputs`` computes it for a whole sequence at once (one diffusion, one product), and
    ``step`` then diffuses only ``h`` and ``r * h``. Gate biases start at 1 and the candidate's at
    0, as in DCRNN's reference code; weights are Xavier-uniform over the full
    ``(num_terms * (input + hidden), output)`` matrix.
    """

    def __init__(self, input_size: int, hidden_size: int, diffusion: DualRandomWalkDiffusion):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.diffusion = diffusion
        m, h = diffusion.num_terms, hidden_size
        self.weight_x = nn.Parameter(torch.empty(m * input_size, 3 * h))  # [r | u | c]
        self.weight_h_gates = nn.Parameter(torch.empty(m * h, 2 * h))  # [r | u]
        self.weight_h_candidate = nn.Parameter(torch.empty(m * h, h))
        self.bias = nn.Parameter(torch.empty(3 * h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        m, h = self.diffusion.num_terms, self.hidden_size
        fan_in = m * (self.input_size + h)
        gates = math.sqrt(6.0 / (fan_in + 2 * h))
        candidate = math.sqrt(6.0 / (fan_in + h))
        with torch.no_grad():
            self.weight_x[:, : 2 * h].uniform_(-gates, gates)
            self.weight_x[:, 2 * h :].uniform_(-candidate, candidate)
            self.weight_h_gates.uniform_(-gates, gates)
            self.weight_h_candidate.uniform_(-candidate, candidate)
            self.bias[: 2 * h].fill_(1.0)
            self.bias[2 * h :].zero_()

    @staticmethod
    def _mix(terms: Tensor, weight: Tensor) -> Tensor:
        """``sum_m terms[m] @ W_m`` for ``terms`` (M, N, *rest, C) and ``weight`` (M*C, O)."""
        m, c = terms.size(0), terms.size(-1)
        moved = terms.movedim(0, -2)  # (N, *rest, M, C)
        return (moved.reshape(-1, m * c) @ weight).view(*moved.shape[:-2], weight.size(1))

    def project_inputs(self, x: Tensor, matrices=None) -> Tensor:
        """The input's share of all gate pre-activations (bias included).

        ``x``: (N, T, B, input_size) -> (T, N, B, 3 * hidden).
        """
        projected = self._mix(self.diffusion(x, matrices), self.weight_x) + self.bias
        return projected.transpose(0, 1)

    def step(self, projected_x: Tensor, h: Tensor, matrices=None) -> Tensor:
        """One step: ``projected_x`` (N, B, 3H) from ``project_inputs``, ``h`` (N, B, H)."""
        hs = self.hidden_size
        gates = projected_x[..., : 2 * hs] + self._mix(self.diffusion(h, matrices), self.weight_h_gates)
        r, u = torch.sigmoid(gates).chunk(2, dim=-1)
        candidate = projected_x[..., 2 * hs :] + self._mix(
            self.diffusion(r * h, matrices), self.weight_h_candidate
        )
        c = torch.tanh(candidate)
        return u * h + (1.0 - u) * c

    def forward(self, x: Tensor, h: Tensor | None = None, matrices=None) -> tuple[Tensor, Tensor]:
        """Run over a sequence ``x`` (N, T, B, input_size) from state ``h`` (zeros if None).

        Returns the states at every step (N, T, B, H) and the last state (N, B, H).
        """
        n, steps, batch, _ = x.shape
        if h is None:
            h = x.new_zeros(n, batch, self.hidden_size)
        projected = self.project_inputs(x, matrices)
        states = []
        for t in range(steps):
            h = self.step(projected[t], h, matrices)
            states.append(h)
        return torch.stack(states, dim=1), h


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
        _check_input(x, self.num_nodes, self.num_features)
        matrices = self.diffusion.matrices()
        states, _ = self.cell(x.permute(2, 1, 0, 3).contiguous(), matrices=matrices)
        return states.permute(2, 1, 0, 3).contiguous()  # (N, L, B, F) -> (B, L, N, F)


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
    """

    def __init__(self, *, num_nodes: int, num_features: int, edge_index: Tensor,
                 edge_weight: Tensor | None, hidden: int = 64, layers: int = 2, K: int = 3,
                 scheduled_sampling: bool = False, cl_decay_steps: int = 2000):
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
        self.encoder = nn.ModuleList(DCGRUCell(s, hidden, self.diffusion) for s in sizes)
        self.decoder = nn.ModuleList(DCGRUCell(s, hidden, self.diffusion) for s in sizes)
        self.projection = nn.Linear(hidden, num_features)

    def teacher_forcing_probability(self) -> float:
        k = self.cl_decay_steps
        return k / (k + math.exp(min(self.batches_seen / k, 700.0)))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input(x, self.num_nodes, self.num_features)
        matrices = self.diffusion.matrices()
        horizon = x.size(1)
        sequence = x.permute(2, 1, 0, 3).contiguous()  # (N, L, B, F)
        # The encoder has no feedback, so it runs layer by layer over the whole window.
        states = []
        for cell in self.encoder:
            sequence, last = cell(sequence, matrices=matrices)
            states.append(last)

        teacher = None
        if self.training and self.scheduled_sampling and y is not None:
            teacher = y.permute(2, 1, 0, 3)  # (N, L, B, F)
            probability = self.teacher_forcing_probability()
        decoder_input = x.new_zeros(self.num_nodes, x.size(0), self.num_features)  # GO
        predictions = []
        for t in range(horizon):
            layer_input = decoder_input
            for i, cell in enumerate(self.decoder):
                projected = cell.project_inputs(layer_input.unsqueeze(1), matrices)[0]
                states[i] = cell.step(projected, states[i], matrices)
                layer_input = states[i]
            prediction = self.projection(layer_input)  # (N, B, F)
            predictions.append(prediction)
            use_truth = teacher is not None and float(torch.rand(())) < probability
            decoder_input = teacher[:, t] if use_truth else prediction
        if self.training:
            self.batches_seen += 1
        return torch.stack(predictions, dim=1).permute(2, 1, 0, 3).contiguous()  # (B, L, N, F)

    def get_extra_state(self) -> dict:
        return {"batches_seen": self.batches_seen}

    def set_extra_state(self, state: dict) -> None:
        self.batches_seen = int(state.get("batches_seen", 0))
