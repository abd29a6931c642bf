"""The model zoo (pgti/nn/{linear,gru,a3tgcn2,tgcn2,agcrn,astgcn,stconv,mtgnn}.py) keeps the contract,
and every registered model trains alike from every storage and under DDP."""

import csv
import math

import pytest
import torch

from conftest import requires_gpu
from pgti.engine import cli
from pgti.errors import InputError
from pgti.nn import MODELS, build_model, model_list

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread

ZOO = ("linear", "gru", "a3tgcn2", "tgcn2", "agcrn", "astgcn", "stconv", "mtgnn")
ALL = tuple(sorted(MODELS))  # the zoo, the DCRNN family and the baselines
GRAPH_FREE = ("linear", "gru", "agcrn", "mtgnn")  # agcrn, mtgnn learn their adjacency
SHAPES = {"chickenpox": (20, 4, 1), "metr-la": (207, 12, 2)}  # (N, L, F)


def graph(num_nodes: int, seed: int = 0, extra: int = 3):
    """A ring (every node has in- and out-edges) plus ``extra * N`` random weighted edges."""
    g = torch.Generator().manual_seed(seed)
    nodes = torch.arange(num_nodes)
    ring = torch.stack([nodes, (nodes + 1) % num_nodes])
    random = torch.randint(0, num_nodes, (2, extra * num_nodes), generator=g)
    edge_index = torch.cat([ring, random], 1)
    return edge_index, torch.rand(edge_index.size(1), generator=g) + 0.1


def build(name, num_nodes, lags, num_features, seed=0, graph_seed=0, **options):
    edge_index, edge_weight = graph(num_nodes, graph_seed)
    torch.manual_seed(seed)
    return build_model(name, num_nodes=num_nodes, num_features=num_features, lags=lags,
                       edge_index=edge_index, edge_weight=edge_weight, **options)


def test_zoo_models_are_registered():
    assert set(ZOO) <= set(MODELS)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_output_is_batch_lags_nodes_channels_and_finite(name, shape):
    n, lags, f = SHAPES[shape]
    model = build(name, n, lags, f)
    x, y = torch.randn(2, lags, n, f), torch.randn(2, lags, n, f)
    out = model(x, y)
    assert out.dim() == 4 and out.shape[:3] == (2, lags, n) and out.size(3) >= 1
    assert out.is_contiguous()
    assert torch.isfinite(out).all()
    (out[..., 0] - y[..., 0]).abs().mean().backward()
    for pname, p in model.named_parameters():  # every parameter trains (DDP needs no unused ones)
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_predicts_each_window_alike_in_batches_of_any_size(name):
    """The last batch is smaller: a model built once serves it, and a window's prediction does
    not depend on the batch around it (in evaluation)."""
    n, lags, f = SHAPES["chickenpox"]
    model = build(name, n, lags, f).eval()
    x = torch.randn(5, lags, n, f)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(5)])
        three = model(x[:3])
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(three, together[:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_uses_the_graph_unless_graph_free(name):
    """Same seed, two different graphs: the graph-free models give the same output bit for bit,
    the graph models do not."""
    n, lags, f = SHAPES["chickenpox"]
    x = torch.randn(3, lags, n, f)
    a = build(name, n, lags, f, graph_seed=0).eval()(x)
    b = build(name, n, lags, f, graph_seed=1).eval()(x)
    if name in GRAPH_FREE:
        assert torch.equal(a, b)
    else:
        assert not torch.allclose(a, b)


def test_zoo_model_takes_its_options_and_refuses_others():
    assert sum(p.numel() for p in build("gru", 20, 4, 1, hidden=8).parameters()) == \
        3 * (1 * 8 + 8 * 8 + 2 * 8) + (8 * 4 + 4)  # GRU(1 -> 8) and Linear(8 -> 4)
    with pytest.raises(InputError, match="takes no option"):
        build("linear", 20, 4, 1, hidden=8)
    with pytest.raises(InputError, match="takes no option"):
        build("a3tgcn2", 20, 4, 1, layers=2)


def test_stconv_fits_its_kernel_to_short_windows():
    assert build("stconv", 20, 4, 1).kernel_size == 1  # L = 4: 2 blocks of width 3 do not fit
    assert build("stconv", 20, 9, 1).kernel_size == 3  # the paper's Kt = 3 from L = 9
    assert build("stconv", 20, 8, 1, blocks=1).kernel_size == 3


def test_linear_learns_a_linear_autoregression():
    """Windows of a noiseless AR(2) series: each target step is a linear function of the last
    two inputs, so the shared linear map fits it (far below the last-value forecast's error)."""
    torch.manual_seed(0)
    n, lags, samples = 4, 6, 64
    values = [torch.randn(samples, n), torch.randn(samples, n)]
    for _ in range(2 * lags - 2):
        values.append(1.2 * values[-1] - 0.5 * values[-2])
    series = torch.stack(values, 1).unsqueeze(-1)  # (S, 2L, N, 1)
    x, y = series[:, :lags], series[:, lags:]
    model = build("linear", n, lags, 1)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = ((model(x)[..., 0] - y[..., 0]) ** 2).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    mae = (model(x)[..., 0] - y[..., 0]).abs().mean().item()
    last_value_mae = (x[:, -1:, :, 0] - y[..., 0]).abs().mean().item()
    assert last_value_mae > 0.3
    assert mae < 1e-3 * last_value_mae, (mae, last_value_mae)


def losses_by_storage(tmp_path, name: str, gpu: bool) -> dict[str, list[tuple[str, str]]]:
    losses = {}
    for mode in ("base", "index", "lazy-index"):
        out = tmp_path / mode
        assert cli.main("chickenpox", ["-e", "1", "-m", mode, "--max-batches", "2", "--model", name,
                                       "--seed", "2", "--output-dir", str(out), "--quiet",
                                       *(["-g"] if gpu else [])]) == 0
        with open(out / "per_epoch_stats.csv", newline="") as f:
            losses[mode] = [(r["t_mae"], r["v_mae"]) for r in csv.DictReader(f)]
    return losses


@pytest.mark.parametrize("name", ALL)
def test_every_model_trains_bitwise_alike_from_every_storage(tmp_path, name):
    """base, index and lazy-index batches are bitwise equal, so each model's losses are too (the
    baselines, which have no parameters, evaluate the batch)."""
    losses = losses_by_storage(tmp_path, name, gpu=False)
    assert losses["base"] == losses["index"] == losses["lazy-index"]
    assert losses["base"] and all(float(t) > 0 for t, _ in losses["base"])


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("name", ALL)
def test_every_model_trains_bitwise_alike_from_every_storage_on_the_gpu(tmp_path, name):
    """The same on the GPU: the series there once (GPU-index), or each batch copied over."""
    losses = losses_by_storage(tmp_path, name, gpu=True)
    assert losses["base"] == losses["index"] == losses["lazy-index"]
    assert losses["base"] and all(float(t) > 0 for t, _ in losses["base"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_model_trains_under_ddp_on_two_cpu_ranks(tmp_path, name):
    out = tmp_path / "run"
    assert cli.ddp_main("pems_ddp.py", ["--dataset", "chickenpox", "-m", "index", "-np", "2", "-e", "1",
                                        "--max-batches", "2", "-bs", "4", "--model", name,
                                        "--output-dir", str(out), "--quiet"]) == 0
    with open(out / "stats.csv", newline="") as f:
        stats = list(csv.DictReader(f))
    assert len(stats) == 1 and stats[0]["world_size"] == "2"
    assert math.isfinite(float(stats[0]["test_mae"]))


def test_model_list_reads_names_or_all_and_refuses_what_it_cannot_resolve():
    assert model_list("all") == list(MODELS)
    assert model_list(" linear , faulty_model:DiesAfter") == ["linear", "faulty_model:DiesAfter"]
    for text, message in ((" , ", "no model named"), ("gru,linear,gru", "gru given twice"),
                          ("linear,nope", "unknown model 'nope'"), ("faulty_model:Nope", "has no attribute")):
        with pytest.raises(InputError, match=message):
            model_list(text)
