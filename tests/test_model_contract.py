"""The model contract: a built-in model is one registered module, and any ``nn.Module`` named
``package.module:ClassName`` builds and trains like one.

Contract: built with ``num_nodes, num_features, lags, edge_index (2 x E long), edge_weight
(E float)`` plus options; ``forward(x, y=None)`` maps x (B, L, N, F) to (B, L, N, C), C >= 1,
channel 0 predicting channel 0 of y.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from pgti.engine.metrics import MetricSums, TargetUnits, check_prediction, masked_mae
from pgti.engine.trainer import Trainer
from pgti.errors import InputError
from pgti.nn import DEFAULT_MODEL, MODELS, build_model, model_options, registry, resolve_model
from pgti.nn.dcrnn import DCRNN, DCRNNCell

NODES, FEATURES, LAGS, BATCH = 4, 2, 3, 2
BUILTINS = {"pgt-dcrnn", "dcrnn-cell", "dcrnn-cell-s2s", "dcrnn", "last-value", "historical-average",
            "linear", "gru", "a3tgcn2", "tgcn2", "agcrn", "astgcn", "stconv", "mtgnn", "dcrnn-cell-s2s-ha"}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread

USER_MODELS = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """Mixes each node's neighbours, then one linear map from the window to C channels."""

    def __init__(self, *, num_nodes, num_features, lags, edge_index, edge_weight, channels=1, **kwargs):
        super().__init__()
        if edge_index.dtype != torch.long or edge_weight.dtype != torch.float32:
            raise TypeError(f"contract broken: {edge_index.dtype}, {edge_weight.dtype}")
        self.lags, self.channels, self.extra = lags, channels, kwargs
        adjacency = torch.zeros(num_nodes, num_nodes).index_put_(tuple(edge_index), edge_weight, accumulate=True)
        self.register_buffer("adjacency", adjacency + torch.eye(num_nodes))
        self.linear = nn.Linear(lags * num_features, lags * channels)

    def forward(self, x, y=None):
        b, l, n, f = x.shape
        mixed = torch.einsum("nm,blmf->blnf", self.adjacency, x)
        out = self.linear(mixed.permute(0, 2, 1, 3).reshape(b, n, l * f))
        return out.view(b, n, l, self.channels).permute(0, 2, 1, 3)


class Strict(nn.Module):
    """No **kwargs, and neither lags nor num_features in its signature."""

    def __init__(self, num_nodes, edge_index, edge_weight, width=3):
        super().__init__()
        self.width = width
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x, y=None):
        return self.scale * x[..., :1]


class NeedsDepth(nn.Module):
    def __init__(self, *, num_nodes, num_features, lags, edge_index, edge_weight, depth):
        super().__init__()


class NoChannelAxis(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x, y=None):
        return self.w * x[..., 0]  # (B, L, N): breaks the contract


class NotAModule:
    pass


not_a_class = 3
'''

BAD_MODULES = {
    "broken_syntax": "def oops(:\n    pass\n",
    "raises_on_import": "raise RuntimeError('no GPU\\nhere')\n",
    "imports_missing": "import not_installed_dependency_xyz\n",
}


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """``usermodels`` (and the bad modules) written to tmp_path, which is put on sys.path."""
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    for name, text in BAD_MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("usermodels", *BAD_MODULES):
        sys.modules.pop(name, None)


def ring_graph(n: int = NODES):
    edges = [[i, (i + 1) % n] for i in range(n)]
    edge_index = torch.tensor(edges).t()
    return edge_index, torch.full((n,), 0.5)


def graph(**overrides):
    edge_index, edge_weight = ring_graph()
    return {"num_nodes": NODES, "num_features": FEATURES, "edge_index": edge_index,
            "edge_weight": edge_weight, **overrides}


def units() -> TargetUnits:
    return TargetUnits(torch.tensor(10.0), torch.tensor(2.0), None)


def batches(count: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(BATCH, LAGS, NODES, FEATURES, generator=g),
             torch.randn(BATCH, LAGS, NODES, FEATURES, generator=g)) for _ in range(count)]


# --- bring your own model -------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_external_model_builds_with_the_contract_keywords_and_trains_a_step(user_models, channels):
    torch.manual_seed(0)
    model = build_model("usermodels:Tiny", **graph(), lags=LAGS, channels=channels)
    assert type(model).__module__ == "usermodels" and model.lags == LAGS and model.channels == channels
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, units(), LAGS)
    train = trainer.train_epoch(batches(), total=2)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    test = trainer.evaluate(batches(seed=1), total=2)
    for sums in (train, test):
        assert torch.isfinite(torch.tensor([sums.mae(), sums.mae_all_channels()])).all()
        # the all-channel MAE counts the first min(C, F) channels of every window
        assert sums.all_channels[1].item() == 2 * BATCH * LAGS * NODES * min(channels, FEATURES)


def test_external_model_gets_extra_options_through_its_kwargs(user_models):
    model = build_model("usermodels:Tiny", **graph(), lags=LAGS, hidden=8)
    assert model.extra == {"hidden": 8}


def test_missing_edge_weight_reaches_an_external_model_as_float_ones(user_models):
    edge_index, _ = ring_graph()
    model = build_model("usermodels:Tiny", **graph(edge_index=edge_index.int(), edge_weight=None), lags=LAGS)
    expected = torch.zeros(NODES, NODES).index_put_(tuple(edge_index), torch.ones(NODES)) + torch.eye(NODES)
    assert torch.equal(model.adjacency, expected)


def test_class_without_kwargs_gets_only_the_keywords_it_names_and_refuses_other_options(user_models):
    assert model_options("usermodels:Strict") == {"width": 3}
    assert build_model("usermodels:Strict", **graph(), lags=LAGS, width=5).width == 5
    with pytest.raises(InputError, match=r"takes no option\(s\) depth \(accepted: width\)") as error:
        build_model("usermodels:Strict", **graph(), lags=LAGS, depth=2)
    assert error.value.field == "model.options.depth"


def test_required_option_not_given_is_an_input_error(user_models):
    with pytest.raises(InputError, match="usermodels:NeedsDepth needs option.s. depth") as error:
        build_model("usermodels:NeedsDepth", **graph(), lags=LAGS)
    assert error.value.field == "model.name"


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown model 'nope'; built-in models: pgt-dcrnn, "),
    ("absent_module_xyz:Model", "no module named 'absent_module_xyz' on the Python path or in the working"),
    ("usermodels.sub:Model", "no module named 'usermodels.sub'"),
    ("broken_syntax:Model", r"module 'broken_syntax' has a syntax error: .*broken_syntax.py, line 1\)"),
    ("raises_on_import:Model", "importing module 'raises_on_import' raised RuntimeError: no GPU here"),
    ("imports_missing:Model", "importing module 'imports_missing' failed: ModuleNotFoundError: "
                              "No module named 'not_installed_dependency_xyz'"),
    ("usermodels:Missing", "module 'usermodels' .*usermodels.py\\) has no attribute 'Missing'"),
    ("usermodels:NotAModule", "NotAModule is not a torch.nn.Module subclass"),
    ("usermodels:not_a_class", "not_a_class is not a torch.nn.Module subclass \\(it is 3\\)"),
    ("usermodels:", "expected package.module:ClassName"),
    (":Tiny", "expected package.module:ClassName"),
])
def test_bad_model_spec_is_a_one_line_input_error_on_the_model_field(user_models, spec, message):
    with pytest.raises(InputError, match=message) as error:
        build_model(spec, **graph(), lags=LAGS)
    text = str(error.value)
    assert error.value.field == "model.name" and "\n" not in text and "--model" not in text, text


def test_a_module_in_the_working_directory_is_found(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "mymodels").mkdir(parents=True)
    (project / "mymodels" / "__init__.py").write_text("")
    (project / "mymodels" / "tiny.py").write_text(USER_MODELS)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])  # restored after
    monkeypatch.chdir(project)
    try:
        assert resolve_model("mymodels.tiny:Tiny").__module__ == "mymodels.tiny"
        assert str(project) in sys.path  # so that the module's later imports of its siblings work
    finally:
        for name in ("mymodels", "mymodels.tiny"):
            sys.modules.pop(name, None)


# --- the output contract, where predictions enter the metrics --------------------------------


def test_output_of_the_wrong_shape_stops_training_with_the_contract_error(user_models):
    model = build_model("usermodels:NoChannelAxis", **graph(), lags=LAGS)
    trainer = Trainer(model, units(), LAGS)
    with pytest.raises(InputError, match=r"model contract.*\(B, L, N, C\).*\(2, 3, 4, 2\), got \(2, 3, 4\)") as error:
        trainer.train_epoch(batches(), total=2)
    assert error.value.field == "model.name" and "\n" not in str(error.value)


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 4, 2, 1), (1, 3, 4, 2), (2, 2, 4, 2), (2, 3, 5, 2),
                                   (2, 3, 4, 0)])
def test_prediction_shapes_outside_the_contract_are_refused(shape):
    y = torch.zeros(2, 3, 4, 2)
    pred = torch.zeros(shape)
    for check in (lambda: check_prediction(pred, y), lambda: masked_mae(pred, y, units()),
                  lambda: MetricSums(3).update(pred, y, units())):
        with pytest.raises(InputError, match="model contract"):
            check()


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_metrics_read_channel_0_and_the_first_min_c_f_channels(channels):
    g = torch.Generator().manual_seed(3)
    y = torch.randn(2, 3, 4, 2, generator=g)
    pred = torch.randn(2, 3, 4, channels, generator=g)
    u = TargetUnits(torch.tensor(10.0), torch.tensor(2.0), torch.tensor(0.5))
    y[0, 0, 0, 0] = 0.5  # one missing reading
    sums = MetricSums(3)
    sums.update(pred, y, u)
    shared = min(channels, 2)
    err0 = (pred[..., 0] - y[..., 0]) * 2.0
    keep = y[..., 0] != 0.5
    assert sums.mae() == pytest.approx(err0.abs()[keep].double().mean().item())
    assert masked_mae(pred, y, u).item() == pytest.approx(err0.abs()[keep].mean().item())
    expected_all = (pred[..., :shared] - y[..., :shared]).abs().double().mean().item()
    assert sums.mae_all_channels() == pytest.approx(expected_all)
    # the channels beyond channel 0 change the all-channel MAE only
    other = pred.clone()
    other[..., 1:] += 100.0
    again = MetricSums(3)
    again.update(other, y, u)
    assert again.report() == sums.report()
    assert (again.mae_all_channels() != sums.mae_all_channels()) == (shared > 1)


# --- built-ins: one module each, found by discovery -------------------------------------------


def test_discovery_finds_the_builtins_with_the_default_first():
    assert set(MODELS) == BUILTINS and len(MODELS) == len(BUILTINS)
    assert MODELS[0] == DEFAULT_MODEL == "pgt-dcrnn"
    assert registry.discover_models("pgti.nn") == MODELS
    assert registry.MODELS == MODELS
    for name in MODELS:
        cls = resolve_model(name)
        assert issubclass(cls, nn.Module) and cls.__module__.startswith("pgti.nn.")
    assert resolve_model("dcrnn") is DCRNN and resolve_model("dcrnn-cell") is DCRNNCell


def test_a_builtin_may_ignore_lags_and_is_built_as_without_it():
    torch.manual_seed(7)
    plain = build_model("dcrnn-cell", **graph())
    torch.manual_seed(7)
    with_lags = build_model("dcrnn-cell", **graph(), lags=LAGS)
    for (name, a), (_, b) in zip(plain.state_dict().items(), with_lags.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_new_builtin_is_one_module_that_registers_its_name(tmp_path, monkeypatch):
    package = tmp_path / "extra_models_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "ring.py").write_text(textwrap.dedent('''
        from torch import nn
        from pgti.nn.registry import register_model

        @register_model("ring-test")
        class Ring(nn.Module):
            pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))  # leave the real one alone
    try:
        assert registry.discover_models("extra_models_pkg") == ("ring-test",)
        assert registry._REGISTERED["ring-test"].__module__ == "extra_models_pkg.ring"
    finally:
        for name in ("extra_models_pkg", "extra_models_pkg.ring"):
            sys.modules.pop(name, None)


def test_registering_a_name_twice_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))

    class Other(nn.Module):
        pass

    with pytest.raises(ValueError, match="'dcrnn' is already registered to pgti.nn.dcrnn:DCRNN"):
        registry.register_model("dcrnn")(Other)
    assert registry.register_model("dcrnn")(DCRNN) is DCRNN  # the same class again: a reload
    with pytest.raises(TypeError, match="nn.Module subclass"):
        registry.register_model("not-a-module")(object)
    with pytest.raises(ValueError, match="without ':'"):
        registry.register_model("a:b")
