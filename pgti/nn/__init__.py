"""Models: ``build_model(name, ...)`` for a name in ``MODELS`` or a ``package.module:ClassName``.

Each built-in model is one module of this package whose class carries
``@register_model(name)``; the registry imports the package's modules to find them
(``pgti.nn.registry``). The built-ins:

- ``pgt-dcrnn`` (default): PGT's ``BatchedDCRNN`` F -> F, K = 3, as the PGT-I paper runs it.
- ``dcrnn-cell``: the same one-cell architecture on a fast, weighted dual random walk.
- ``dcrnn-cell-s2s``: a DCGRU encoder over the whole window and a decoder for the L horizons,
  so every horizon sees every input; the model to use for forecasting at ``dcrnn-cell``'s cost.
- ``dcrnn``: the published DCRNN encoder-decoder (2 x 64 DCGRU layers, scheduled sampling;
  ``hidden``/``layers`` options for smaller ones).
- ``dcrnn-cell-s2s-ha``: ``dcrnn-cell-s2s`` forecasting the departure from the historical average.
- ``last-value``, ``historical-average``: the naive baselines (``pgti.nn.baselines``).
- the zoo: ``linear``, ``gru`` (ours, no graph) and PyTorch Geometric Temporal's ``a3tgcn2``,
  ``tgcn2``, ``agcrn``, ``astgcn``, ``stconv``, ``mtgnn`` behind thin wrappers (README, "Model zoo").
"""

from pgti.nn.registry import (DEFAULT_MODEL, MODELS, build_model, model_list, model_options, register_model,
                              resolve_model)
from pgti.nn.dcrnn import DCRNN, DCGRUCell, DCRNNCell
from pgti.nn.diffusion import DualRandomWalkDiffusion, check_graph, dual_random_walk
from pgti.nn.pgt import PGTDCRNN
from pgti.nn.s2s import DCRNNCellS2S

__all__ = [
    "DCRNN",
    "DCGRUCell",
    "DCRNNCell",
    "DCRNNCellS2S",
    "DEFAULT_MODEL",
    "DualRandomWalkDiffusion",
    "MODELS",
    "PGTDCRNN",
    "build_model",
    "check_graph",
    "dual_random_walk",
    "model_list",
    "model_options",
    "register_model",
    "resolve_model",
]
