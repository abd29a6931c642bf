"""Checks of the model contract's input window, shared by the models."""

from __future__ import annotations

from torch import Tensor


def check_input(x: Tensor, num_nodes: int, num_features: int, lags: int | None = None, model: str = "model") -> None:
    """``x`` must be (B, L, N, F) for this model's N and F, and, for a model built for a fixed
    window length, L = ``lags``."""
    if x.dim() != 4 or x.size(2) != num_nodes or x.size(3) != num_features:
        raise ValueError(
            f"expected x of shape (B, L, {num_nodes}, {num_features}), got {tuple(x.shape)}"
        )
    if lags is not None and x.size(1) != lags:
        raise ValueError(f"{model} was built for windows of {lags} steps, got {x.size(1)}")


def window_length(model: str, lags: int | None) -> int:
    """The window length a model sized by L is built for (the contract's ``lags``)."""
    if lags is None or lags < 1:
        raise ValueError(f"{model} needs the window length lags >= 1, got {lags}")
    return lags
