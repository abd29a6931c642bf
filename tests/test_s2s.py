"""``dcrnn-cell-s2s``: every horizon sees the whole input window, and it forecasts better for it.

``dcrnn-cell`` (the paper's one-cell architecture) predicts target step h from the state after
input step h, so its forecasts are in effect L steps ahead at every horizon; the s2s variant
encodes the window first and decodes the horizons from the final state.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgti.errors import InputError
from pgti.nn import MODELS, build_model, model_options

NODES, LAGS = 5, 12


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def ring_graph(n: int = NODES):
    """A directed ring with self-loops, unit weights."""
    edges = [[i, i] for i in range(n)] + [[i, (i + 1) % n] for i in range(n)]
    edge_index = torch.tensor(edges).t()
    return edge_index, torch.ones(edge_index.size(1))


def build(name: str, num_features: int, **options):
    edge_index, edge_weight = ring_graph()
    return build_model(name, num_nodes=NODES, num_features=num_features, edge_index=edge_index,
                       edge_weight=edge_weight, **options)


def windows(series: torch.Tensor, stride: int = 1):
    """(T, N, F) -> inputs and targets (S, L, N, F): the L steps from each start and the L after."""
    starts = torch.arange(0, series.size(0) - 2 * LAGS + 1, stride)
    index = starts[:, None] + torch.arange(LAGS)
    return series[index], series[index + LAGS]


def train(name: str, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 0.05):
    """Full-batch Adam on the MAE of channel 0, seeded; the model is returned in eval mode."""
    torch.manual_seed(0)
    model = build(name, x.size(-1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (model(x, y)[..., 0] - y[..., 0]).abs().mean().backward()
        optimizer.step()
    return model.eval()


def mae_per_horizon(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(L,): the MAE of channel 0 at each horizon 1..L."""
    return (prediction[..., 0] - y[..., 0]).abs().mean(dim=(0, 2))


def last_value(x: torch.Tensor) -> torch.Tensor:
    """The last-value forecast: the last input step repeated for all L horizons."""
    return x[:, -1:].expand(-1, LAGS, -1, -1)


def test_s2s_is_a_registered_model_with_size_options():
    assert "dcrnn-cell-s2s" in MODELS
    assert model_options("dcrnn-cell-s2s") == {"hidden": 2, "layers": 1, "K": 3}
    small, big = build("dcrnn-cell-s2s", 2), build("dcrnn-cell-s2s", 2, hidden=5, layers=2)
    assert sum(p.numel() for p in big.parameters()) > sum(p.numel() for p in small.parameters())
    assert len(big.encoder) == len(big.decoder) == 2 and big.encoder[0].hidden_size == 5
    out = big(torch.randn(3, 7, NODES, 2))  # any L: the horizon is read from x
    assert out.shape == (3, 7, NODES, 2) and out.is_contiguous()
    with pytest.raises(InputError, match="scheduled_sampling"):
        build("dcrnn-cell-s2s", 2, scheduled_sampling=True)
    with pytest.raises(ValueError, match="hidden"):
        build("dcrnn-cell-s2s", 2, hidden=0)


@pytest.mark.parametrize("layers", [1, 2])
def test_every_s2s_horizon_depends_on_the_last_input_step(layers):
    """Structural: the gradient of each horizon's forecast with respect to the latest input is
    non-zero for the s2s model, and zero for dcrnn-cell at every horizon h < L (it has not
    read input step L when it predicts target step h)."""
    torch.manual_seed(0)
    for name, options in (("dcrnn-cell-s2s", {"layers": layers}), ("dcrnn-cell", {})):
        model = build(name, 2, **options)
        # sample h of the batch carries horizon h's forecast: samples do not mix, so one
        # backward gives d forecast[h, h] / d x[h] for every h at once
        x = torch.randn(1, LAGS, NODES, 2).repeat(LAGS, 1, 1, 1).requires_grad_()
        out = model(x)
        horizons = torch.arange(LAGS)
        out[horizons, horizons, :, 0].sum().backward()
        sees_latest = (x.grad[:, -1].abs().sum(dim=(1, 2)) > 0).tolist()
        expected = [name == "dcrnn-cell-s2s" or h == LAGS - 1 for h in range(LAGS)]
        assert sees_latest == expected, name


def test_s2s_error_grows_with_the_horizon_on_a_random_walk_unlike_dcrnn_cell():
    """On a random walk per node the latest value is what matters: a forecast from the last
    input has an error growing like sqrt(h), while dcrnn-cell forecasts every horizon from
    L steps back and is flat (the paper's architecture)."""
    g = torch.Generator().manual_seed(3)
    walk = torch.cumsum(torch.randn(420, NODES, generator=g), 0)
    walk = ((walk - walk.mean(0)) / walk.std(0))[..., None]  # (T, N, 1)
    x, y = windows(walk[:300], stride=3)
    x_test, y_test = windows(walk[300:])
    errors = {}
    for name in ("dcrnn-cell-s2s", "dcrnn-cell"):
        model = train(name, x, y, steps=100)
        with torch.no_grad():
            errors[name] = mae_per_horizon(model(x_test), y_test)
    s2s, cell = errors["dcrnn-cell-s2s"], errors["dcrnn-cell"]
    assert s2s[-1] > 1.8 * s2s[0], s2s  # grows with the horizon
    assert (s2s[3:] >= s2s[:-3]).all(), s2s  # and keeps growing (3-step differences: noise-proof)
    assert cell[-1] < 1.25 * cell[0], cell  # flat
    assert s2s[0] < 0.6 * cell[0], (s2s, cell)  # near horizons: far better


def test_s2s_beats_the_last_value_forecast_at_horizon_12_on_a_noisy_sinusoid():
    """A period of 17 steps, which the 12-step window mostly covers and 12 does not divide
    (at a period of 12 the last value would be exact at horizon 12), plus noise: learnable,
    and a fair demand. The baseline is computed here, on the same held-out windows."""
    g = torch.Generator().manual_seed(1)
    t = torch.arange(400, dtype=torch.float32)
    phase = 3 * torch.arange(NODES, dtype=torch.float32)
    value = torch.sin(2 * math.pi * (t[:, None] + phase) / 17) + 0.1 * torch.randn(400, NODES, generator=g)
    clock = torch.cos(2 * math.pi * t / 17)[:, None].expand(-1, NODES)  # like a time-of-day channel
    series = torch.stack([value, clock], -1)
    x, y = windows(series[:300], stride=4)
    x_test, y_test = windows(series[300:])
    model = train("dcrnn-cell-s2s", x, y, steps=120)
    with torch.no_grad():
        s2s = mae_per_horizon(model(x_test), y_test)
    baseline = mae_per_horizon(last_value(x_test), y_test)
    assert s2s[-1] < 0.6 * baseline[-1], (s2s, baseline)
