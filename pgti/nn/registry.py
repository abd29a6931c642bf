"""The model registry: ``--model`` names -> constructors, and their options."""

from __future__ import annotations

import inspect
from typing import Callable

from torch import Tensor, nn

from pgti.errors import InputError
from pgti.nn.baselines import HistoricalAverage, LastValue
from pgti.nn.dcrnn import DCRNN, DCRNNCell
from pgti.nn.pgt import PGTDCRNN
from pgti.nn.s2s import DCRNNCellS2S

_CONSTRUCTORS: dict[str, Callable[..., nn.Module]] = {
    "pgt-dcrnn": PGTDCRNN,  # default: the paper's configuration
    "dcrnn-cell": DCRNNCell,
    "dcrnn-cell-s2s": DCRNNCellS2S,  # for forecasting: every horizon sees the whole window
    "dcrnn": DCRNN,
    "last-value": LastValue,  # baselines: no parameters; fit(training_statistics(data)) first
    "historical-average": HistoricalAverage,
}
MODELS: tuple[str, ...] = tuple(_CONSTRUCTORS)
DEFAULT_MODEL = "pgt-dcrnn"
_GRAPH_ARGS = {"num_nodes", "num_features", "edge_index", "edge_weight"}


def model_options(name: str) -> dict[str, object]:
    """The options ``name`` accepts beyond the graph, with their defaults."""
    constructor = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(constructor).parameters.values()
        if p.name not in _GRAPH_ARGS
    }


def _lookup(name: str) -> Callable[..., nn.Module]:
    try:
        return _CONSTRUCTORS[name]
    except KeyError:
        raise InputError(
            f"--model: unknown model {name!r}; known models: {', '.join(MODELS)}"
        ) from None


def build_model(name: str, *, num_nodes: int, num_features: int, edge_index: Tensor,
                edge_weight: Tensor | None, **options) -> nn.Module:
    """Build model ``name`` on a graph bound at construction.

    The model's ``forward(x, y=None)`` maps ``x`` (B, L, N, F) to predictions (B, L, N, F);
    ``y`` is the target window (training only; models that do not use it ignore it).
    Unknown ``name`` or options raise ``InputError``.
    """
    constructor = _lookup(name)
    known = model_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise InputError(f"--model {name}: unknown option(s) {', '.join(unknown)} "
                         f"(accepted: {accepted})")
    return constructor(num_nodes=num_nodes, num_features=num_features,
                       edge_index=edge_index, edge_weight=edge_weight, **options)
