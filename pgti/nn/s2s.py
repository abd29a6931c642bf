"""``dcrnn-cell-s2s``: the one-cell model made a sequence-to-sequence forecaster.

``dcrnn-cell`` (the PGT-I paper's architecture) reads the hidden state after input step h as the
prediction for target step h, so that prediction has seen only inputs 1..h: every horizon is in
effect forecast L steps ahead. This model encodes the whole input window first and decodes all L
horizons from the final state, so every horizon sees every input, the latest reading included.

- Encoder: ``layers`` stacked DCGRU cells (``hidden`` units, ``K`` diffusion terms on the
  weighted dual random walk), run over the input window layer by layer; only their last states
  are kept.
- Decoder: ``layers`` stacked GRU cells of the same size (DCGRU cells with ``K = 1``, whose only
  diffusion term is the signal itself: a GRU applied to each node alone), started from the
  encoder's last states and fed, at each step, the previous step's prediction (the first step
  is fed the last input step, ``x[:, -1]``), with a per-node linear read-out ``hidden -> F``.
  The graph enters through the encoder, whose states already mix each node's neighbourhood;
  leaving the diffusion out of the L decoder steps keeps a training step within 2x of
  ``dcrnn-cell`` at the default size (measured by ``scripts/bench_models.py``: RESULTS.md).
  ``torch.nn.GRUCell`` on an (N * B, hidden) layout was tried for the decoder and was slower
  on the CPU than these per-node products. The decoder always feeds back its own predictions,
  in training as in evaluation, so ``y`` is not used.

The horizon is the input window's length L, read from ``x`` at each call, as for the other
models: nothing here depends on the dataset's L.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pgti.nn.dcrnn import DCGRUCell, _from_node_major, _NodeBatchedProduct, _to_node_major
from pgti.nn.diffusion import DualRandomWalkDiffusion
from pgti.nn.registry import register_model
from pgti.nn.window import check_input


@register_model("dcrnn-cell-s2s")
class DCRNNCellS2S(nn.Module):
    """Encoder (DCGRU, K diffusion terms) -> decoder (node-wise GRU) over L steps; see module doc."""

    def __init__(self, *, num_nodes: int, num_features: int, edge_index: Tensor,
                 edge_weight: Tensor | None, hidden: int = 2, layers: int = 1, K: int = 3):
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError("hidden and layers must be >= 1")
        self.num_nodes, self.num_features = num_nodes, num_features
        self.hidden, self.layers = hidden, layers
        self.diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, num_nodes, K)
        # K = 1: the only term is x itself, so the cell is a GRU applied to each node alone.
        self.nodewise = DualRandomWalkDiffusion(edge_index, edge_weight, num_nodes, 1)
        sizes = [num_features] + [hidden] * (layers - 1)
        self.encoder = nn.ModuleList(DCGRUCell(s, hidden, self.diffusion) for s in sizes)
        self.decoder = nn.ModuleList(DCGRUCell(s, hidden, self.nodewise) for s in sizes)
        self.readout = nn.Linear(hidden, num_features)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_input(x, self.num_nodes, self.num_features)
        matrices = self.diffusion.matrices()
        sequence = _to_node_major(x)  # (N, F, L, B)
        last_input = sequence[:, :, -1]
        states = []
        for cell in self.encoder:
            sequence, last = cell(sequence, matrices=matrices)
            states.append(last)
        decoder_input = last_input
        predictions = []
        for _ in range(x.size(1)):
            layer_input = decoder_input
            for i, cell in enumerate(self.decoder):
                projected = cell.project_inputs(layer_input.unsqueeze(2))[:, :, 0]
                states[i] = cell.step(projected, states[i])
                layer_input = states[i]
            # Linear(hidden -> F) on the (N, hidden, B) layout.
            decoder_input = _NodeBatchedProduct.apply(self.readout.weight, layer_input) \
                + self.readout.bias[:, None]
            predictions.append(decoder_input)
        return _from_node_major(torch.stack(predictions, dim=2))
