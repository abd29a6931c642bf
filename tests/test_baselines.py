"""Baselines in every run (last value, historical average), best-epoch evaluation, and the
reference training recipe (lr decay, gradient clipping, early stopping), checked against hand
computations in numpy/pandas on tiny series."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from fixtures import write_traffic
from pgti.data.loader import prepare
from pgti.engine import cli as run_module
from pgti.engine.checkpoint import read_checkpoint
from pgti.engine.metrics import HORIZONS, TargetUnits
from pgti.engine.trainer import Trainer
from pgti.nn import build_model
from pgti.nn.baselines import HistoricalAverage, LastValue, training_statistics
from pgti.observability.outputs import STATS_COLUMNS

L = 12  # metr-la's window
DAYS = 9  # long enough that the test windows' days of the week were seen in training
STEPS_PER_DAY = 288


def run_main(*argv, dataset="metr-la"):
    return run_module.main(dataset, [*argv, "--quiet"])


def stats(run_dir) -> dict:
    with open(run_dir / "stats.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    return row


def epochs(run_dir) -> list[dict]:
    with open(run_dir / "per_epoch_stats.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """Nine days of 5-minute speeds at 3 sensors, 20% of the readings missing (0.0)."""
    data_dir = tmp_path_factory.mktemp("data")
    h5, _ = write_traffic(data_dir, nodes=3, timesteps=DAYS * STEPS_PER_DAY, missing=0.2, seed=4)
    frame = pd.read_hdf(h5, "df")
    return data_dir, frame


def _split(num_timesteps: int):
    n = num_timesteps - 2 * L + 1
    n_train, n_test = round(n * 0.7), round(n * 0.2)
    return n_train, n - n_train - n_test, n_test


def _hand_table(frame: pd.DataFrame, day_of_week: bool) -> dict:
    """The training mean per node and slot, by pandas groupby, missing (0.0) left out; a slot
    without a reading falls back to the time-of-day mean, the node mean, the global mean."""
    n_train, _, _ = _split(len(frame))
    train = frame.iloc[: n_train + 2 * L - 1].replace(0.0, np.nan)
    minutes = train.index.hour * 60 + train.index.minute
    by_tod = train.groupby(minutes // 5).mean()
    by_slot = train.groupby([minutes // 5, train.index.day_of_week]).mean() if day_of_week else by_tod
    node_mean = train.mean()
    global_mean = np.nanmean(train.to_numpy())

    def lookup(tod: int, dow: int) -> np.ndarray:
        value = np.full(frame.shape[1], np.nan)
        key = (tod, dow) if day_of_week else tod
        if key in by_slot.index:
            value = by_slot.loc[key].to_numpy(dtype=float)
        if tod in by_tod.index:
            value = np.where(np.isnan(value), by_tod.loc[tod].to_numpy(dtype=float), value)
        value = np.where(np.isnan(value), node_mean.to_numpy(dtype=float), value)
        return np.where(np.isnan(value), global_mean, value)

    return lookup


def _hand_metrics(frame: pd.DataFrame, predict) -> dict:
    """Masked MAE/RMSE/MAPE of ``predict(start) -> (L, N)`` over the test windows, overall and
    per reported horizon, in original units."""
    values = frame.to_numpy()
    n_train, n_val, n_test = _split(len(frame))
    errors, truths = [], []
    for s in range(n_train + n_val, n_train + n_val + n_test):
        errors.append(predict(s) - values[s + L : s + 2 * L])
        truths.append(values[s + L : s + 2 * L])
    err, truth = np.stack(errors), np.stack(truths)  # (windows, L, N)
    mask = truth != 0.0

    def summary(e, t, m):
        return {"mae": np.abs(e[m]).mean(), "rmse": math.sqrt((e[m] ** 2).mean()),
                "mape": 100 * (np.abs(e[m]) / np.abs(t[m])).mean()}

    out = {"": summary(err, truth, mask)}
    for h in HORIZONS:
        out[f"_h{h}"] = summary(err[:, h - 1], truth[:, h - 1], mask[:, h - 1])
    return out


def _hand_last_value(frame: pd.DataFrame):
    values = frame.to_numpy()

    def predict(s):
        window = values[s : s + L]
        last = window[-1].copy()
        for node in range(values.shape[1]):
            seen = np.flatnonzero(window[:, node] != 0.0)
            if len(seen):
                last[node] = window[seen[-1], node]
        return np.broadcast_to(last, (L, values.shape[1]))

    return predict


def _hand_historical_average(frame: pd.DataFrame, day_of_week: bool):
    lookup = _hand_table(frame, day_of_week)

    def predict(s):
        times = frame.index[s + L : s + 2 * L]
        return np.stack([lookup((t.hour * 60 + t.minute) // 5, t.day_of_week) for t in times])

    return predict


def _assert_columns(row: dict, hand: dict, suffix: str) -> None:
    for key, metrics in hand.items():
        for metric, value in metrics.items():
            column = f"test_{metric}{key}{suffix}"
            if column in STATS_COLUMNS:
                assert float(row[column]) == pytest.approx(value, rel=2e-5), column


# --- the columns against a hand computation ------------------------------------------------------


@pytest.mark.parametrize("day_of_week", [False, True])
def test_baseline_columns_equal_a_hand_computation(traffic, tmp_path, day_of_week):
    data_dir, frame = traffic
    out = tmp_path / "run"
    # Every test window is evaluated (no --max-batches); the model is irrelevant to the columns.
    assert run_main("-e", "1", "-bs", "64", "--model", "dcrnn-cell", "--data-dir", str(data_dir),
                    "--output-dir", str(out), "--day-of-week", str(day_of_week)) == 0
    row = stats(out)
    last_value = _hand_metrics(frame, _hand_last_value(frame))
    _assert_columns(row, last_value, "_last_value")
    _assert_columns(row, _hand_metrics(frame, _hand_historical_average(frame, day_of_week)),
                    "_historical_average")
    assert float(row["test_mae_last_value"]) == pytest.approx(last_value[""]["mae"], rel=2e-5)
    for h in HORIZONS:
        expected = 1 - float(row[f"test_mae_h{h}"]) / float(row[f"test_mae_h{h}_last_value"])
        assert float(row[f"test_skill_h{h}"]) == pytest.approx(expected, rel=1e-12)
    # the hand computation's premise: missing readings were masked, not predicted as 0 mph
    assert 0 < float(row["test_mae_h3_last_value"]) < 20


# --- the historical-average table ---------------------------------------------------------------


@pytest.mark.parametrize("day_of_week", [False, True])
def test_historical_average_table_holds_the_training_mean_of_each_slot(traffic, day_of_week):
    data_dir, frame = traffic
    data = prepare("metr-la", data_dir, "index", day_of_week=day_of_week)
    table = training_statistics(data)
    data.close()
    lookup = _hand_table(frame, day_of_week)
    days = 7 if day_of_week else 1
    assert table.table_original.shape == (STEPS_PER_DAY * days, 3) and table.steps_per_day == STEPS_PER_DAY
    for dow in range(days):
        for tod in range(STEPS_PER_DAY):
            np.testing.assert_allclose(table.table_original[dow * STEPS_PER_DAY + tod], lookup(tod, dow),
                                       rtol=1e-12, err_msg=f"slot tod={tod} dow={dow}")
    if day_of_week:  # the day of week matters: the table is not the time-of-day means repeated
        tod_only = _hand_table(frame, False)
        assert any(not np.allclose(table.table_original[d * STEPS_PER_DAY + t], tod_only(t, d))
                   for d in range(7) for t in range(0, STEPS_PER_DAY, 7))


def test_without_timestamps_the_historical_average_is_the_per_node_training_mean():
    data = prepare("chickenpox", REPO / "data", "index")
    table = training_statistics(data)
    series = np.asarray(json.loads((REPO / "data" / "chickenpox.json").read_text())["FX"], dtype=float)
    rows = data.split.size("train") + 2 * data.lags - 1
    assert table.steps_per_day is None and table.table_original.shape == (1, data.num_nodes)
    np.testing.assert_allclose(table.table_original[0], series[:rows].mean(axis=0), rtol=1e-12)
    # as a model: the same value at every step of every window, in normalised units
    model = HistoricalAverage(data.num_nodes, data.num_features, data.edge_index, data.edge_weight).fit(table)
    x, _ = next(data.batches("test", 4))
    pred = model(x)
    assert pred.shape == x.shape
    expected = torch.from_numpy(data.features.normaliser.apply(table.table_original[0][None]))[0]
    assert torch.equal(pred[..., 0], expected.expand(4, data.lags, -1))
    data.close()


def test_last_value_repeats_the_last_observed_reading_in_normalised_units(traffic):
    data_dir, _ = traffic
    data = prepare("metr-la", data_dir, "index")
    stats_ = training_statistics(data)
    model = LastValue(data.num_nodes, data.num_features, data.edge_index, data.edge_weight).fit(stats_)
    x, _ = next(data.batches("test", 32))
    missing = torch.as_tensor(stats_.missing)
    x[0, -1, 0, 0] = missing  # node 0 of window 0: last step missing, the one before seen
    x[0, -2, 0, 0] = 1.25
    x[1, :, 1, 0] = missing  # node 1 of window 1: nothing seen, the last step is repeated
    pred = model(x)
    assert pred.shape == x.shape and torch.equal(pred[..., 1:], x[:, -1:, :, 1:].expand(-1, L, -1, -1))
    assert torch.all(pred[0, :, 0, 0] == 1.25)
    assert torch.all(pred[1, :, 1, 0] == missing)
    seen = x[2:, -1, :, 0] != missing
    assert torch.equal(pred[2:, :, :, 0][seen.unsqueeze(1).expand(-1, L, -1)],
                       x[2:, -1:, :, 0].expand(-1, L, -1)[seen.unsqueeze(1).expand(-1, L, -1)])
    data.close()


# --- the baselines as models --------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])])
@pytest.mark.parametrize("name", ["last-value", "historical-average"])
def test_baselines_keep_the_model_contract_on_each_device(traffic, name, device):
    """(B, L, N, F) in, (B, L, N, F) out, contiguous, no parameters; statistics follow .to()."""
    data_dir, _ = traffic
    data = prepare("metr-la", data_dir, "index", day_of_week=True)
    model = build_model(name, num_nodes=data.num_nodes, num_features=data.num_features,
                        edge_index=data.edge_index, edge_weight=data.edge_weight)
    assert list(model.parameters()) == [] and model.state_dict() == {}
    reference = build_model(name, num_nodes=data.num_nodes, num_features=data.num_features,
                            edge_index=data.edge_index, edge_weight=data.edge_weight)
    stats_ = training_statistics(data)
    reference.fit(stats_)
    model.to(device).fit(stats_)
    x, _ = next(data.batches("test", 5))
    out = model(x.to(device))
    assert out.shape == x.shape and out.is_contiguous() and out.device.type == device
    assert torch.equal(out.cpu(), reference(x))
    data.close()



@pytest.mark.parametrize("day_of_week", [False, True])
def test_input_slots_are_the_steps_before_the_target_slots(traffic, day_of_week):
    data_dir, _ = traffic
    data = prepare("metr-la", data_dir, "index", day_of_week=day_of_week)
    model = HistoricalAverage(data.num_nodes, data.num_features, data.edge_index, data.edge_weight)
    model.fit(training_statistics(data))
    # The input slots of the window starting L steps later are this window's target slots.
    starts = torch.from_numpy(data.split.starts("train"))[::97][:16]
    x_now, _ = data.storage.gather(starts)
    x_next, _ = data.storage.gather(starts + L)
    assert torch.equal(model.input_slots(x_next), model.target_slots(x_now))
    slots = model.slots(x_now, torch.arange(-L + 1, L + 1))
    assert torch.equal(slots, torch.cat([model.input_slots(x_now), model.target_slots(x_now)], dim=1))
    data.close()


def test_the_seasonal_residual_model_starts_from_the_historical_average(traffic):
    """dcrnn-cell-s2s-ha predicts the historical average plus its network's correction: with the
    network's read-out at zero it is the historical-average baseline exactly."""
    data_dir, _ = traffic
    data = prepare("metr-la", data_dir, "index", day_of_week=True)
    graph = dict(num_nodes=data.num_nodes, num_features=data.num_features, edge_index=data.edge_index,
                 edge_weight=data.edge_weight)
    stats_ = training_statistics(data)
    model = build_model("dcrnn-cell-s2s-ha", **graph, hidden=4).fit(stats_)
    baseline = HistoricalAverage(**graph).fit(stats_)
    x, _ = next(data.batches("test", 8))
    assert not torch.allclose(model(x)[..., 0], baseline(x)[..., 0])
    with torch.no_grad():
        model.network.readout.weight.zero_()
        model.network.readout.bias.zero_()
    assert torch.equal(model(x)[..., 0], baseline(x)[..., 0])
    assert model(x).shape == x.shape
    assert not any(k.startswith("average") for k in model.state_dict())  # refitted, never saved
    data.close()


@pytest.mark.parametrize("model", ["last-value", "historical-average"])
def test_baselines_as_models_give_exactly_the_baseline_columns(traffic, tmp_path, model):
    data_dir, _ = traffic
    out = tmp_path / model
    assert run_main("-e", "2", "-bs", "32", "--model", model, "--data-dir", str(data_dir), "--day-of-week",
                    "--output-dir", str(out)) == 0
    row = stats(out)
    suffix = "_" + model.replace("-", "_")
    assert row["test_mae"] == row[f"test_mae{suffix}"]
    for h in HORIZONS:
        for metric in ("mae", "rmse", "mape"):
            assert row[f"test_{metric}_h{h}"] == row[f"test_{metric}_h{h}{suffix}"]  # bit for bit
    # nothing to learn: both epochs evaluate the same predictions, and the first stays the best
    rows = epochs(out)
    assert [r["v_mae"] for r in rows] == [rows[0]["v_mae"]] * 2 and row["best_epoch"] == "0"
    state = read_checkpoint(out / "checkpoint.pt").state
    assert state["model"] == {} and state["optimizer"] == {}
    if model == "last-value":
        assert float(row["test_skill_h3"]) == 0.0


# --- the best epoch, not the last ---------------------------------------------------------------

RECIPE = ("--model", "dcrnn-cell", "-bs", "8", "--max-batches", "6")


def _test_mae_of(weights: dict) -> float:
    """Test MAE of ``weights`` on the run's test batches, evaluated afresh."""
    data = prepare("chickenpox", REPO / "data", "index")
    model = build_model("dcrnn-cell", num_nodes=data.num_nodes, num_features=data.num_features,
                        edge_index=data.edge_index, edge_weight=data.edge_weight)
    model.load_state_dict(weights)
    trainer = Trainer(model, TargetUnits.of(data), data.lags)
    mae = trainer.evaluate(data.batches("test", 8, max_batches=6), 6).mae()
    data.close()
    return mae


def test_the_test_metrics_are_those_of_the_epoch_with_the_lowest_validation_mae(tmp_path):
    out = tmp_path / "run"
    # a high learning rate makes the validation MAE go down and up again
    assert run_main(*RECIPE, "-e", "5", "--lr", "0.05", "--output-dir", str(out), dataset="chickenpox") == 0
    v_mae = [float(r["v_mae"]) for r in epochs(out)]
    best = int(np.argmin(v_mae))
    assert 0 < best < len(v_mae) - 1, v_mae  # the premise: not the first, not the last
    row = stats(out)
    assert row["best_epoch"] == str(best) and float(row["v_mae"]) == v_mae[best]
    state = read_checkpoint(out / "checkpoint.pt").state
    assert state["best"]["epoch"] == best and state["best"]["v_mae"] == v_mae[best]
    assert float(row["test_mae"]) == _test_mae_of(state["best"]["model"])
    assert float(row["test_mae"]) != _test_mae_of(state["model"])  # the last epoch's weights differ


# --- the reference recipe: decay, clipping, early stopping, and resume -----------------------------

DECAY = (*RECIPE, "--lr", "0.2", "--lr-decay-epochs", "1", "3", "--lr-decay-factor", "0.5",
         "--clip-grad-norm", "5", "--patience", "3")


def test_resume_with_decay_and_patience_equals_an_uninterrupted_run(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_main(*DECAY, "-e", "8", "--output-dir", str(full), dataset="chickenpox") == 0
    err = capsys.readouterr().err
    assert "early stopping after epoch 4: validation MAE has not improved for 3 epoch(s)" in err
    rows = epochs(full)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]  # stopped early: 4 of 8 epochs done
    assert [float(r["lr"]) for r in rows] == [0.2, 0.1, 0.1, 0.05]
    assert stats(full)["epochs"] == "4"
    recorded = json.loads((full / "config.json").read_text())["args"]
    assert (recorded["lr_decay_epochs"], recorded["lr_decay_factor"], recorded["clip_grad_norm"],
            recorded["patience"]) == ([1, 3], 0.5, 5.0, 3)

    assert run_main(*DECAY, "-e", "2", "--output-dir", str(part), dataset="chickenpox") == 0
    assert run_main(*DECAY, "-e", "8", "--resume", str(part), dataset="chickenpox") == 0
    drop = ("runtime", "samples_per_s", "max_process_mem", "data_wait_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in epochs(part)] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows]
    a, b = stats(full), stats(part)
    assert {k: v for k, v in a.items() if k.startswith("test_") or k in ("best_epoch", "v_mae", "epochs")} == \
           {k: v for k, v in b.items() if k.startswith("test_") or k in ("best_epoch", "v_mae", "epochs")}
    sa, sb = read_checkpoint(full / "checkpoint.pt").state, read_checkpoint(part / "checkpoint.pt").state
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]) and torch.equal(
            sa["best"]["model"][key], sb["best"]["model"][key])
    assert sa["scheduler"] == sb["scheduler"] and sa["scheduler"]["last_epoch"] == 4

    # a run that stopped early has nothing left to do, whatever -e says
    capsys.readouterr()
    assert run_main(*DECAY, "-e", "9", "--resume", str(part), dataset="chickenpox") == 0
    assert "early stopping after epoch 4" in capsys.readouterr().err and len(epochs(part)) == 4


def test_resume_with_another_decay_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_main(*DECAY, "-e", "1", "--output-dir", str(out), dataset="chickenpox") == 0
    capsys.readouterr()
    assert run_main(*RECIPE, "--lr", "0.2", "--lr-decay-epochs", "2", "-e", "3", "--resume", str(out),
                    dataset="chickenpox") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: checkpoint") and "learning-rate decay" in err[-1]


# --- model size flags ---------------------------------------------------------------------------


def test_hidden_and_layers_reach_the_model_only_when_given(tmp_path, monkeypatch):
    built = []
    from pgti.engine import session as session_module

    real = session_module.build_model

    def spy(name, **kwargs):
        built.append({k: v for k, v in kwargs.items() if k in ("hidden", "layers")})
        return real(name, **kwargs)

    monkeypatch.setattr(session_module, "build_model", spy)
    common = ("--model", "dcrnn", "-e", "1", "-bs", "8", "--max-batches", "1")
    assert run_main(*common, "--hidden", "4", "--layers", "1", "--output-dir", str(tmp_path / "small"),
                    dataset="chickenpox") == 0
    assert run_main(*common, "--hidden", "4", "--output-dir", str(tmp_path / "hidden"), dataset="chickenpox") == 0
    assert built == [{"hidden": 4, "layers": 1}, {"hidden": 4}]

    def size(run):
        weights = read_checkpoint(tmp_path / run / "checkpoint.pt").state["model"]
        return sum(v.numel() for v in weights.values() if isinstance(v, torch.Tensor))

    data = prepare("chickenpox", REPO / "data", "index")
    default = build_model("dcrnn", num_nodes=data.num_nodes, num_features=data.num_features,
                          edge_index=data.edge_index, edge_weight=data.edge_weight)
    data.close()
    assert size("small") < size("hidden") < sum(v.numel() for v in default.state_dict().values()
                                                if isinstance(v, torch.Tensor))


# --- bad values of the new flags ----------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--lr-decay-epochs", "0"], "argument --lr-decay-epochs: must be a positive integer, got 0"),
    (["--lr-decay-epochs"], "argument --lr-decay-epochs: expected at least one argument"),
    (["--lr-decay-factor", "1.5"], "argument --lr-decay-factor: must be in (0, 1]"),
    (["--lr-decay-factor", "0"], "argument --lr-decay-factor: must be a positive finite number"),
    (["--clip-grad-norm", "-1"], "argument --clip-grad-norm: must be a positive finite number"),
    (["--clip-grad-norm", "nan"], "argument --clip-grad-norm: must be a positive finite number"),
    (["--patience", "0"], "argument --patience: must be a positive integer"),
    (["--hidden", "0"], "argument --hidden: must be a positive integer"),
    (["--layers", "two"], "argument --layers: expected a positive integer"),
    (["--model", "last-value", "--hidden", "8"], "--hidden: model last-value takes no option(s) hidden"),
    (["--model", "pgt-dcrnn", "--layers", "2"], "--layers: model pgt-dcrnn takes no option(s) layers"),
    (["--model", "pgt-dcrnn", "--model-option", "depth=2"], "--model-option: model pgt-dcrnn takes no option(s) depth"),
])
def test_bad_recipe_and_size_flags_exit_2_with_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    assert run_main(*argv, "-e", "1", "--output-dir", str(out), dataset="chickenpox") == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists()  # nothing left behind


# --- distributed runs ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_distributed_run_reports_the_baselines_and_the_best_epoch(traffic, tmp_path):
    """Two DDP ranks, each evaluating its share of the test windows; the sums are all-reduced. A
    baseline as the model (no parameters: not wrapped in DDP) gives exactly the baseline columns."""
    from pgti.distributed.driver import DRIVERS, run_distributed
    from pgti.engine.cli import build_ddp_parser, config_from_args

    data_dir, _ = traffic
    driver = DRIVERS["pems_ddp.py"]
    out = tmp_path / "run"
    args = build_ddp_parser(driver).parse_args([
        "--dataset", "metr-la", "-m", "index", "--data-dir", str(data_dir), "--output-dir", str(out),
        "-e", "2", "-bs", "16", "--max-batches", "3", "--model", "historical-average", "-np", "2", "--quiet",
        "--patience", "1", "--lr-decay-epochs", "1"])
    run_distributed(config_from_args(args, set()), driver, log=lambda message: None)
    row = stats(out)
    assert row["world_size"] == "2" and row["best_epoch"] == "0" and row["epochs"] == "2"
    for h in HORIZONS:
        assert row[f"test_mae_h{h}"] == row[f"test_mae_h{h}_historical_average"] != ""
        assert math.isfinite(float(row[f"test_mae_h{h}_last_value"]))
    assert 0 < float(row["test_mae_last_value"]) < 20
