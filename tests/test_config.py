"""The typed run config, --config reruns, the storage registry, --mode auto and the lazy-index
reader thread."""

import csv
import json
import threading

import numpy as np
import pytest
import torch

from conftest import REPO
from pgti.config import RunConfig, read_config
from pgti.data.loader import prepare, read_dataset
from pgti.data.modes import MODE_NAMES, parse_size, pick_auto
from pgti.data.plan import Plan, Sharding
from pgti.data.storages import STORAGES, BuildContext, Shape, build_storages
from pgti.data.storages.lazy_index import LazyIndexStorage
from pgti.engine import cli
from pgti.errors import InputError

CHICKENPOX = ("-e", "2", "--max-batches", "4", "-bs", "8", "--model", "dcrnn-cell", "-q")
TIMING = ("runtime", "samples_per_s", "max_process_mem", "data_wait_s")


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without_timing(table):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in table]


def run(*argv, dataset="chickenpox"):
    return cli.main(dataset, list(argv))


# --- the config itself ---------------------------------------------------------------------------


def test_config_round_trips_through_its_dict_and_json():
    config = RunConfig()
    config.model.options.update(hidden=8, layers=1)
    config.optim.lr_decay_epochs = [2, 4]
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.data.split, tuple)


@pytest.mark.parametrize("patch, fragment", [
    ({"batching": {"batch_size": "64"}}, "batching.batch_size must be an integer"),
    ({"batching": {"batch_size": True}}, "batching.batch_size must be an integer"),
    ({"optim": {"lr": float("inf")}}, "optim.lr must be a finite number"),
    ({"data": {"split": [0.7, 0.3]}}, "data.split needs 3 values"),
    ({"training": {"epochs": None}}, "training.epochs must be an integer"),
    ({"model": {"options": [1]}}, "model.options must be an object"),
    ({"surprise": {}}, "unknown config field(s) surprise"),
    ({"optim": {"momentum": 0.9}}, "unknown config field(s) optim.momentum"),
])
def test_a_damaged_config_is_refused_naming_the_field(patch, fragment):
    value = RunConfig().to_dict()
    for section, fields in patch.items():
        if section in value:
            value[section].update(fields)
        else:
            value[section] = fields
    with pytest.raises(InputError) as err:
        RunConfig.from_dict(value, "run/config.json")
    assert fragment in str(err.value) and "run/config.json" in str(err.value)


@pytest.mark.parametrize("text, expected", [("512MB", 512 << 20), ("4GB", 4 << 30), ("1.5GiB", int(1.5 * 2**30)),
                                            ("800m", 800 << 20), ("1000", 1000)])
def test_sizes_with_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "-1GB", "4XB", "nan", "inf"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


# --- --config reruns a run exactly ---------------------------------------------------------------


def test_config_reruns_a_run_bitwise_and_flags_override_it(tmp_path, capsys):
    first, again, other = tmp_path / "first", tmp_path / "again", tmp_path / "other"
    assert run(*CHICKENPOX, "--seed", "3", "--lr", "0.01", "--model", "dcrnn-cell-s2s", "--hidden", "4",
               "--output-dir", str(first)) == 0
    saved = json.loads((first / "config.json").read_text())["config"]
    assert saved["model"] == {"name": "dcrnn-cell-s2s", "options": {"hidden": 4}} and saved["training"]["seed"] == 3

    assert run("--config", str(first), "--output-dir", str(again), "-q") == 0
    assert without_timing(rows(again / "per_epoch_stats.csv")) == without_timing(rows(first / "per_epoch_stats.csv"))
    assert read_config(again).to_dict() == {**read_config(first).to_dict(),
                                            "output": read_config(again).to_dict()["output"]}

    assert run("--config", str(first / "config.json"), "--seed", "4", "--output-dir", str(other), "-q") == 0
    changed = read_config(other)
    assert changed.training.seed == 4 and changed.optim.lr == 0.01 and changed.model.options == {"hidden": 4}
    assert rows(other / "per_epoch_stats.csv")[0]["t_mae"] != rows(first / "per_epoch_stats.csv")[0]["t_mae"]


def test_config_of_another_dataset_or_a_foreign_file_is_refused(tmp_path, capsys):
    first = tmp_path / "first"
    assert run(*CHICKENPOX, "-e", "1", "--output-dir", str(first)) == 0
    capsys.readouterr()
    assert run("--config", str(first), "--output-dir", str(tmp_path / "x"), dataset="pedalme") == 2
    err = capsys.readouterr().err
    assert "--config:" in err and "a run on chickenpox; this driver trains pedalme" in err
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"args": {"epochs": 3}}))
    assert run("--config", str(foreign), "--output-dir", str(tmp_path / "y")) == 2
    assert "has no 'config' section" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# --- the storage registry ------------------------------------------------------------------------


def test_every_storage_is_registered_with_its_predictions():
    assert {"base", "index", "lazy-index", "dask-windows", "dask-series", "slab"} <= set(STORAGES)
    shape = Shape("x", num_timesteps=1000, num_nodes=50, num_features=2, lags=12)
    host = {name: kind.predict(shape)[0] for name, kind in STORAGES.items()}
    assert host["lazy-index"] < host["index"] < host["base"]
    assert STORAGES["index"].predict(shape, gpu=True) == (shape.chunk_bytes, shape.series_bytes)
    for names in MODE_NAMES.values():  # every mode name maps onto a registered storage
        assert all(mode.storage in STORAGES for mode in names.values())


@pytest.mark.parametrize("storage", ["base", "index"])
def test_predicted_bytes_cover_what_the_storage_holds(storage):
    data = read_dataset("chickenpox", REPO / "data")
    built = build_storages(storage, BuildContext(data, torch.device("cpu")))["train"]
    host, _ = STORAGES[storage].predict(data.shape)
    assert built.nbytes <= host - data.shape.json_bytes
    assert built.nbytes >= 0.5 * (host - data.shape.json_bytes - data.shape.chunk_bytes)
    data.close()


# --- --mode auto -----------------------------------------------------------------------------------


def test_auto_picks_the_fastest_storage_that_fits():
    shape = Shape("x", num_timesteps=10_000, num_nodes=200, num_features=2, lags=12)
    assert pick_auto(shape, False, 1 << 40, None)[0] == "index"
    storage, why = pick_auto(shape, False, shape.series_bytes // 2, None)
    assert storage == "lazy-index" and "index needs" in why
    assert pick_auto(shape, True, 1 << 40, 1 << 40)[0] == "index"
    storage, why = pick_auto(shape, True, 1 << 40, shape.series_bytes // 2)
    assert storage == "lazy-index" and "GPU memory" in why


def test_auto_mode_says_what_it_picked_and_records_the_storage_used(tmp_path, capsys):
    out = tmp_path / "auto"
    assert run(*CHICKENPOX, "-m", "auto", "--memory-budget", "1KB", "--output-dir", str(out)) == 0
    err = capsys.readouterr().err
    assert "mode auto: lazy-index" in err and "budget" in err
    assert rows(out / "stats.csv")[0]["mode"] == "lazy-index"
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["config"]["batching"]["mode"] == "lazy-index" and recorded["args"]["mode"] == "auto"
    assert recorded["extra"]["mode_auto"].startswith("lazy-index (budget")
    reference = tmp_path / "lazy"
    assert run(*CHICKENPOX, "-m", "lazy-index", "--output-dir", str(reference)) == 0
    assert without_timing(rows(out / "per_epoch_stats.csv")) == without_timing(rows(reference / "per_epoch_stats.csv"))
    roomy = tmp_path / "roomy"
    assert run(*CHICKENPOX, "-m", "auto", "--memory-budget", "4GB", "--output-dir", str(roomy)) == 0
    assert rows(roomy / "stats.csv")[0]["mode"] == "index"


# --- lazy-index reads the next batch in the background ---------------------------------------------


class _RecordingLazy(LazyIndexStorage):
    """Lazy-index that signals, per batch, that its read has started, and in which thread."""

    def __init__(self, *args):
        super().__init__(*args)
        self.started = [threading.Event() for _ in range(64)]
        self.threads, self.count = set(), 0

    def gather(self, starts):
        self.threads.add(threading.current_thread().name)
        self.started[self.count].set()
        self.count += 1
        return super().gather(starts)


def test_lazy_index_reads_the_next_batch_while_this_one_trains_with_the_same_bits():
    data = prepare("chickenpox", REPO / "data", "index")
    lazy = _RecordingLazy(data.raw.rows, data.features, data.lags)
    sharding = Sharding("global", data.split, 1, 0, 8, seed=1, max_batches=6)
    plan = Plan(sharding, dict.fromkeys(("train", "val", "test"), lazy), torch.device("cpu"))
    reference = list(data.batches("train", 8, shuffle=True, seed=1, epoch=0, max_batches=6))
    got = []
    for i, (x, y) in enumerate(plan.batches("train", 0)):
        if i + 1 < 6:  # while batch i is "training", the read of batch i + 1 is under way
            assert lazy.started[i + 1].wait(timeout=30), f"batch {i + 1} was not read ahead"
        got.append((x, y))
    assert len(got) == 6 and all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(got, reference))
    assert lazy.threads == {n for n in lazy.threads if n.startswith("pgti-lazy-read")}
    assert plan.take_data_wait() > 0 and plan.take_data_wait() == 0.0
    plan.close()
    data.close()


def test_per_epoch_stats_record_the_data_wait(tmp_path):
    out = tmp_path / "run"
    assert run(*CHICKENPOX, "-m", "lazy-index", "--output-dir", str(out)) == 0
    waits = [float(r["data_wait_s"]) for r in rows(out / "per_epoch_stats.csv")]
    assert len(waits) == 2 and all(np.isfinite(w) and w >= 0 for w in waits)


@pytest.mark.parametrize("module", ["pgti.distributed.storage", "pgti.distributed.rank", "pgti.data.storages.slab",
                                    "pgti.data.samplers", "pgti.datasets.formats", "pgti.engine.session"])
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    """A Dask worker unpickles whatever module a task names first; a circular import that only
    shows in that order would lose the task's data."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
