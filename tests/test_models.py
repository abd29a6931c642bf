"""The models of ``pgti.nn``: the diffusion against dense maths, and each model's contract."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from pgti.errors import InputError
from pgti.nn import MODELS, DualRandomWalkDiffusion, build_model, dual_random_walk, resolve_model
from pgti.nn.baselines import BASELINE_MODELS
from pgti.nn.dcrnn import DCGRUCell, _DiffusionConvolution, _NodeBatchedProduct

# The baselines have no parameters and need training statistics (fit): tests/test_baselines.py.
# Models that need no training statistics (``fit``) to run: the baselines and the models built on
# them (dcrnn-cell-s2s-ha) are tested with real statistics in test_baselines.py.
NEURAL_MODELS = tuple(m for m in MODELS if m not in BASELINE_MODELS and not hasattr(resolve_model(m), "fit"))

SMALL_DCRNN = {"hidden": 8}  # the published 64 units are slow to test on a CPU


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def weighted_graph(num_nodes: int = 7, self_loops: bool = False, seed: int = 0):
    """Random asymmetric weighted graph; node 0 has no incoming edge, node N-1 no outgoing one."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(num_nodes, num_nodes, generator=g) < 0.45
    dense[:, 0] = False  # nothing into node 0
    dense[-1, :] = False  # nothing out of node N-1
    dense[0, 1] = dense[1, -1] = True  # node 0 has an out-edge, node N-1 an in-edge
    dense.fill_diagonal_(False)
    if self_loops:  # on every node but the two special ones
        for i in range(1, num_nodes - 1):
            dense[i, i] = True
    edge_index = dense.nonzero().t()
    edge_weight = 0.1 + torch.rand(edge_index.size(1), generator=g)
    return edge_index, edge_weight


def dense_transitions(edge_index, edge_weight, num_nodes):
    """``D_out^-1 W`` and ``D_in^-1 W^T`` the naive way, in float64, with 1/0 := 0."""
    w = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    w.index_put_(tuple(edge_index), edge_weight.double(), accumulate=True)
    out_deg, in_deg = w.sum(1), w.sum(0)
    inv = lambda d: torch.where(d > 0, 1.0 / d.clamp_min(1e-300), torch.zeros_like(d))  # noqa: E731
    return torch.diag(inv(out_deg)) @ w, torch.diag(inv(in_deg)) @ w.t()


def run_model(model, x, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return model(x, y)


def build(name, edge_index, edge_weight, num_nodes, num_features=2, lags=4, **options):
    if name == "dcrnn":
        options = {**SMALL_DCRNN, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pgt-dcrnn's warning about NaN
        return build_model(name, num_nodes=num_nodes, num_features=num_features, lags=lags,
                           edge_index=edge_index, edge_weight=edge_weight, **options)


# --- the diffusion -------------------------------------------------------------------------


@pytest.mark.parametrize("self_loops", [False, True])
def test_diffusion_terms_equal_dense_transition_powers(self_loops):
    n = 7
    edge_index, edge_weight = weighted_graph(n, self_loops=self_loops)
    p_f, p_b = dense_transitions(edge_index, edge_weight, n)
    diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=4, dtype=torch.float64)
    assert diffusion.term_names == ("x", "P_f^1 x", "P_b^1 x", "P_f^2 x", "P_b^2 x",
                                    "P_f^3 x", "P_b^3 x")
    x = torch.randn(n, 3, dtype=torch.float64)
    terms = diffusion(x)  # (N, terms, C)
    for k in range(4):
        expected_f = torch.linalg.matrix_power(p_f, k) @ x
        expected_b = torch.linalg.matrix_power(p_b, k) @ x
        got_f = terms[:, 0] if k == 0 else terms[:, 2 * k - 1]
        got_b = terms[:, 0] if k == 0 else terms[:, 2 * k]
        torch.testing.assert_close(got_f, expected_f, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got_b, expected_b, rtol=1e-12, atol=1e-12)


def test_diffusion_of_a_batch_equals_diffusing_each_sample():
    n = 7
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    p_f, p_b = dense_transitions(edge_index, edge_weight, n)
    diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=3, dtype=torch.float64)
    x = torch.randn(n, 2, 4, 5, dtype=torch.float64)  # (N, C, T, B), the models' layout
    terms = diffusion(x)
    assert terms.shape == (n, 5, 2, 4, 5)
    for b in range(5):
        for t in range(4):
            sample = x[:, :, t, b]
            for m, matrix in enumerate([p_f, p_b, p_f @ p_f, p_b @ p_b], start=1):
                torch.testing.assert_close(terms[:, m, :, t, b], matrix @ sample)


def test_float32_diffusion_matches_float64():
    n = 7
    edge_index, edge_weight = weighted_graph(n)
    fast = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=3)
    exact = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=3, dtype=torch.float64)
    x = torch.randn(n, 6, dtype=torch.float64)
    torch.testing.assert_close(fast(x.float()).double(), exact(x), rtol=1e-5, atol=1e-6)


def test_node_without_edges_gets_zero_transition_rows_not_nan():
    n = 7
    edge_index, edge_weight = weighted_graph(n)
    p_f, p_b = (m.to_dense() for m in dual_random_walk(edge_index, edge_weight, n))
    assert torch.isfinite(p_f).all() and torch.isfinite(p_b).all()
    assert (p_b[0] == 0).all()  # node 0: no incoming edge
    assert (p_f[n - 1] == 0).all()  # node N-1: no outgoing edge
    torch.testing.assert_close(p_f[: n - 1].sum(1), torch.ones(n - 1, dtype=torch.float64))
    torch.testing.assert_close(p_b[1:].sum(1), torch.ones(n - 1, dtype=torch.float64))


def test_diffusion_and_shared_weight_product_gradients_are_exact():
    n = 6
    edge_index, edge_weight = weighted_graph(n)
    diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=3, dtype=torch.float64)
    x = torch.randn(n, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: diffusion(v), (x,))
    # both branches of the weight gradient: O*K small and large compared with the batch
    for out, k, batch in [(3, 4, 5), (12, 10, 2)]:
        w = torch.randn(out, k, dtype=torch.float64, requires_grad=True)
        v = torch.randn(n, k, batch, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(_NodeBatchedProduct.apply, (w, v))


@pytest.mark.parametrize("K", [1, 2, 4])
def test_diffusion_adjoint_is_its_transpose(K):
    """<D x, g> = <x, D^T g> for the whole term map D, in float64."""
    n = 7
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=K, dtype=torch.float64)
    x = torch.randn(n, 3, 4, dtype=torch.float64)
    g = torch.randn(n, diffusion.num_terms, 3, 4, dtype=torch.float64)
    adjoint = diffusion.adjoint(g)
    assert adjoint.shape == x.shape
    torch.testing.assert_close((diffusion(x) * g).sum(), (x * adjoint).sum(), rtol=1e-12, atol=1e-12)


def test_recomputing_diffusion_convolution_has_exact_gradients():
    n = 6
    edge_index, edge_weight = weighted_graph(n)
    diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=3, dtype=torch.float64)
    for out, channels, batch in [(3, 2, 5), (6, 2, 1)]:  # both weight-gradient branches
        w = torch.randn(out, diffusion.num_terms * channels, dtype=torch.float64, requires_grad=True)
        x = torch.randn(n, channels, batch, dtype=torch.float64, requires_grad=True)
        fn = lambda w, x: _DiffusionConvolution.apply(w, x, diffusion, None)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (w, x))
        stored = _NodeBatchedProduct.apply(w, diffusion(x).reshape(n, -1, batch))
        torch.testing.assert_close(fn(w, x), stored, rtol=0, atol=0)


def test_bad_graph_is_an_input_error():
    with pytest.raises(InputError, match="edge_index"):
        DualRandomWalkDiffusion(torch.tensor([[0, 5]]), None, 3, K=2)
    with pytest.raises(InputError, match="outside"):
        DualRandomWalkDiffusion(torch.tensor([[0], [5]]), None, 3, K=2)
    with pytest.raises(InputError, match="non-negative"):
        DualRandomWalkDiffusion(torch.tensor([[0], [1]]), torch.tensor([-1.0]), 3, K=2)


# --- the models' contract ------------------------------------------------------------------


@pytest.mark.parametrize("name", NEURAL_MODELS)
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape_is_batch_lags_nodes_features(name, batch):
    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    edge_index = torch.cat([edge_index, torch.tensor([[0], [0]])], 1)  # in-edge for PGT
    edge_weight = torch.cat([edge_weight, torch.ones(1)])
    model = build(name, edge_index, edge_weight, n)
    x = torch.randn(batch, 4, n, 2)
    out = run_model(model, x, torch.randn_like(x))
    assert out.shape[:3] == (batch, 4, n) and out.size(3) in (1, 2)  # C = F, or C = 1 (the zoo)
    assert out.is_contiguous()
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["dcrnn-cell", "dcrnn-cell-s2s", "dcrnn"])
def test_outputs_and_gradients_finite_with_sourceless_and_sinkless_nodes(name):
    n = 7
    edge_index, edge_weight = weighted_graph(n)  # node 0: no in-edge; node 6: no out-edge
    model = build(name, edge_index, edge_weight, n)
    x = torch.randn(3, 5, n, 2, requires_grad=True)
    out = run_model(model, x, torch.randn(3, 5, n, 2))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


def test_pgt_dcrnn_warns_and_gives_nan_for_a_node_without_incoming_edges():
    """Documents the upstream bug that dcrnn-cell fixes (PGT's in-degree normalisation)."""
    n = 7
    edge_index, edge_weight = weighted_graph(n)
    with pytest.warns(RuntimeWarning, match="no incoming edges"):
        model = build_model("pgt-dcrnn", num_nodes=n, num_features=2,
                            edge_index=edge_index, edge_weight=edge_weight)
    assert not torch.isfinite(model(torch.randn(2, 3, n, 2))).all()


def test_pgt_dcrnn_is_upstream_batched_dcrnn():
    from torch_geometric_temporal.nn.recurrent import BatchedDCRNN  # compat shim loaded by pgti

    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    edge_index = torch.cat([edge_index, torch.tensor([[0], [0]])], 1)
    edge_weight = torch.cat([edge_weight, torch.ones(1)])
    model = build("pgt-dcrnn", edge_index, edge_weight, n)
    upstream = BatchedDCRNN(in_channels=2, out_channels=2, K=3)
    upstream.load_state_dict(model.recurrent.state_dict())
    x = torch.randn(3, 4, n, 2)
    torch.testing.assert_close(model(x), upstream(x, edge_index, edge_weight))
    assert not any("edge" in key for key in model.state_dict())  # graph not in checkpoints


def _swap_graph():
    """Self-loops everywhere; 0 -> {1, 2} and 3 -> {1, 2} with weights (a, b) and (b, a).

    Swapping a and b changes the random walk (P_f[0, 1] = a / (1 + a + b) becomes
    b / (1 + a + b)) but no node's in- or out-degree.
    """
    n = 5
    loops = [[i, i] for i in range(n)]
    edges = torch.tensor(loops + [[0, 1], [0, 2], [3, 1], [3, 2]]).t()
    weights = lambda a, b: torch.tensor([1.0] * n + [a, b, b, a])  # noqa: E731
    return n, edges, weights(0.2, 0.9), weights(0.9, 0.2)


def test_dcrnn_cell_uses_edge_weights():
    n, edge_index, weights, swapped = _swap_graph()
    x = torch.randn(2, 4, n, 2)
    torch.manual_seed(0)
    base = build("dcrnn-cell", edge_index, weights, n)
    for other in (swapped, weights * torch.tensor([1.0] * (n + 1) + [3.0, 1.0, 1.0])):
        model = build("dcrnn-cell", edge_index, other, n)
        model.load_state_dict(base.state_dict())
        assert not torch.allclose(model(x), base(x))


def test_pgt_dcrnn_drops_edge_weights_from_messages():
    """Upstream bug, kept for parity: swapping weights that leave every degree unchanged
    changes nothing in pgt-dcrnn."""
    n, edge_index, weights, swapped = _swap_graph()
    x = torch.randn(2, 4, n, 2)
    base = build("pgt-dcrnn", edge_index, weights, n)
    model = build("pgt-dcrnn", edge_index, swapped, n)
    model.load_state_dict(base.state_dict())
    torch.testing.assert_close(model(x), base(x))


def test_unknown_model_or_option_is_an_input_error():
    edge_index, edge_weight = weighted_graph(5)
    graph = dict(num_nodes=5, num_features=2, edge_index=edge_index, edge_weight=edge_weight)
    with pytest.raises(InputError, match="nope.*built-in models: pgt-dcrnn, .*dcrnn, dcrnn-cell") as error:
        build_model("nope", **graph)
    assert error.value.field == "model.name" and "--model" not in str(error.value)
    with pytest.raises(InputError, match="hidden"):
        build_model("dcrnn-cell", hidden=3, **graph)


def test_scheduled_sampling_changes_nothing_in_eval_mode():
    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    model = build("dcrnn", edge_index, edge_weight, n, scheduled_sampling=True).eval()
    x, y = torch.randn(2, 4, n, 2), torch.randn(2, 4, n, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x, y), model(x))
    assert model.batches_seen == 0


def test_scheduled_sampling_feeds_the_truth_early_in_training():
    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    model = build("dcrnn", edge_index, edge_weight, n, scheduled_sampling=True,
                  cl_decay_steps=10**9)  # teacher-forcing probability ~1
    x, y = torch.randn(2, 4, n, 2), torch.randn(2, 4, n, 2)
    assert model.teacher_forcing_probability() == pytest.approx(1.0)
    with torch.no_grad():
        forced = model(x, y)
        assert not torch.allclose(forced, model(x))  # without y: own predictions
    assert model.batches_seen == 2
    # the first step sees only the encoder and the GO input, whatever the decoder is fed
    torch.testing.assert_close(forced[:, 0], model.eval()(x)[:, 0])
    model.batches_seen = 2000
    model.cl_decay_steps = 2000
    assert model.teacher_forcing_probability() == pytest.approx(2000 / (2000 + math.e))
    assert model.state_dict()["_extra_state"] == {"batches_seen": 2000}


def dense_dcgru_sequence(cell, x, p_f, p_b):
    """DCGRU over a sequence written out in dense float64 maths, with ``cell``'s parameters.

    ``x`` (N, C, T, B). Terms are ``[x, P_f x, P_b x, P_f^2 x, ...]``; weight columns are
    term-major (term m, channel c) -> m * C + c, rows [r | u | c] as in ``DCGRUCell``.
    """
    n, _, steps, batch = x.shape
    k = cell.diffusion.K
    powers = [torch.eye(n, dtype=torch.float64)]
    for j in range(1, k):
        powers += [torch.linalg.matrix_power(p_f, j), torch.linalg.matrix_power(p_b, j)]

    def conv(signal, weight):  # signal (N, C, B) -> (N, out, B)
        terms = torch.stack([p @ signal.reshape(n, -1) for p in powers], 1)  # (N, M, C*B)
        terms = terms.reshape(n, len(powers) * signal.size(1), batch)
        return torch.einsum("ok,nkb->nob", weight, terms)

    hs = cell.hidden_size
    w_x, w_g, w_c, bias = (p.double() for p in (cell.weight_x, cell.weight_h_gates,
                                                 cell.weight_h_candidate, cell.bias))
    h = torch.zeros(n, hs, batch, dtype=torch.float64)
    states = []
    for t in range(steps):
        xp = conv(x[:, :, t], w_x) + bias[:, None]
        gates = torch.sigmoid(xp[:, : 2 * hs] + conv(h, w_g))
        r, u = gates[:, :hs], gates[:, hs:]
        c = torch.tanh(xp[:, 2 * hs :] + conv(r * h, w_c))
        h = u * h + (1 - u) * c
        states.append(h)
    return torch.stack(states, 2)


@pytest.mark.parametrize("recompute, checkpoint", [(False, False), (True, False), (True, True)])
def test_dcgru_cell_equals_dense_float64_maths(recompute, checkpoint):
    """The cell, with or without the memory reductions, against DCRNN's equations in dense float64
    maths: outputs, and the gradients of its parameters and input."""
    n = 7
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    p_f, p_b = dense_transitions(edge_index, edge_weight, n)
    diffusion = DualRandomWalkDiffusion(edge_index, edge_weight, n, K=3)
    torch.manual_seed(0)
    cell = DCGRUCell(2, 5, diffusion, recompute_diffusion=recompute, checkpoint_steps=checkpoint)
    with torch.no_grad():  # random gate biases, so nothing is near saturation by construction
        cell.bias.uniform_(-0.5, 0.5)
    x = torch.randn(n, 2, 4, 3)
    x32, x64 = x.clone().requires_grad_(), x.double().requires_grad_()
    weight = torch.randn(n, 5, 4, 3)
    out, _ = cell(x32)
    (out * weight).sum().backward()
    params = [cell.weight_x, cell.weight_h_gates, cell.weight_h_candidate, cell.bias]
    grads32 = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    double_params = [p.detach().double().requires_grad_() for p in params]
    reference_cell = type("Params", (), dict(zip(
        ("weight_x", "weight_h_gates", "weight_h_candidate", "bias"), double_params),
        hidden_size=5, diffusion=diffusion))
    expected = dense_dcgru_sequence(reference_cell, x64, p_f, p_b)
    (expected * weight.double()).sum().backward()
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)
    for got, p in zip(grads32, double_params):
        torch.testing.assert_close(got.double(), p.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"checkpoint_steps": True}])
def test_memory_reduced_dcrnn_equals_the_stored_terms_computation(options):
    """``dcrnn`` (recomputing the diffusion terms in the backward pass) against the same weights
    with the terms stored, the implementation before the memory reduction: equal outputs and
    gradients, in training mode with scheduled sampling."""
    n = 7
    edge_index, edge_weight = weighted_graph(n)
    torch.manual_seed(0)
    stored = build("dcrnn", edge_index, edge_weight, n, hidden=6, layers=2,
                   recompute_diffusion=False, scheduled_sampling=True)
    reduced = build("dcrnn", edge_index, edge_weight, n, hidden=6, layers=2,
                    scheduled_sampling=True, **options)
    reduced.load_state_dict(stored.state_dict())
    assert reduced.encoder[0].recompute_diffusion and not stored.encoder[0].recompute_diffusion
    x, y = torch.randn(3, 5, n, 2), torch.randn(3, 5, n, 2)
    results = []
    for model in (stored, reduced):
        xg = x.clone().requires_grad_()
        torch.manual_seed(1)  # the same teacher-forcing draws
        out = model.train()(xg, y)
        (out[..., 0] - y[..., 0]).abs().mean().backward()
        results.append((out, xg.grad, {k: p.grad for k, p in model.named_parameters()}))
    (out_a, gx_a, grads_a), (out_b, gx_b, grads_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for key in grads_a:
        torch.testing.assert_close(grads_b[key], grads_a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_dcrnn_takes_hidden_and_layers():
    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    model = build("dcrnn", edge_index, edge_weight, n, hidden=32, layers=1)
    assert len(model.encoder) == len(model.decoder) == 1
    assert model.encoder[0].hidden_size == 32 and model.projection.in_features == 32
    assert model(torch.randn(2, 3, n, 2)).shape == (2, 3, n, 2)
    published = build_model("dcrnn", num_nodes=n, num_features=2, edge_index=edge_index,
                            edge_weight=edge_weight)
    assert (published.hidden, published.layers, published.diffusion.K) == (64, 2, 3)


def test_dcrnn_cell_learns_a_periodic_signal():
    torch.manual_seed(0)
    n, lags, f = 5, 6, 2
    loops = [[i, i] for i in range(n)]
    ring = [[i, (i + 1) % n] for i in range(n)]
    edge_index = torch.tensor(loops + ring).t()
    edge_weight = torch.ones(edge_index.size(1))
    t = torch.arange(200, dtype=torch.float32)
    phase = torch.arange(n, dtype=torch.float32)
    series = 0.8 * torch.sin(2 * math.pi * (t[:, None] + 2 * phase) / 12)  # (T, N)
    series = torch.stack([series, torch.cos(2 * math.pi * t / 12)[:, None].expand(-1, n)], -1)
    starts = torch.arange(0, 200 - 2 * lags, 3)
    idx = starts[:, None] + torch.arange(lags)
    x, y = series[idx], series[idx + lags]  # (S, L, N, F)

    model = build("dcrnn-cell", edge_index, edge_weight, n)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = (model(x, y)[..., 0] - y[..., 0]).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name, options", [
    ("pgt-dcrnn", []), ("dcrnn-cell", []), ("dcrnn-cell-s2s", []),
    ("dcrnn", ["--hidden", "8", "--layers", "2"]),
])
def test_every_model_trains_bitwise_alike_from_every_storage(tmp_path, name, options):
    """base, index and lazy-index batches are bitwise equal, so each model's losses are too."""
    import csv

    from pgti.engine import cli as run_module

    losses = {}
    for mode in ("base", "index", "lazy-index"):
        out = tmp_path / mode
        assert run_module.main("chickenpox", ["-e", "1", "-m", mode, "--max-batches", "3",
                                              "--model", name, *options, "--seed", "2",
                                              "--output-dir", str(out), "--quiet"]) == 0
        with open(out / "per_epoch_stats.csv", newline="") as f:
            losses[mode] = [(r["t_mae"], r["v_mae"]) for r in csv.DictReader(f)]
    assert losses["base"] == losses["index"] == losses["lazy-index"]
    assert all(float(t) > 0 for t, _ in losses["base"])


def test_models_move_to_float64_and_keep_graph_out_of_state_dict():
    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    for name in ("dcrnn-cell", "dcrnn-cell-s2s", "dcrnn"):
        model = build(name, edge_index, edge_weight, n).double()
        out = model(torch.randn(2, 3, n, 2, dtype=torch.float64))
        assert out.dtype == torch.float64
        assert all(p.dtype == torch.float64 for p in model.state_dict().values()
                   if isinstance(p, torch.Tensor))
        assert not any("support" in k or "first" in k or "step" in k for k in model.state_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NEURAL_MODELS)
def test_models_on_cuda_match_cpu(name):
    n = 6
    edge_index, edge_weight = weighted_graph(n, self_loops=True)
    edge_index = torch.cat([edge_index, torch.tensor([[0], [0]])], 1)
    edge_weight = torch.cat([edge_weight, torch.ones(1)])
    model = build(name, edge_index, edge_weight, n).eval()
    x = torch.randn(3, 4, n, 2)
    expected = model(x)
    model.cuda()
    got = model(x.cuda())
    got.sum().backward()
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-5)
