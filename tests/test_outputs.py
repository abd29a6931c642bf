"""Output files: columns in the promised order, rows that survive crashes, usable run directories."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from pgti.errors import InputError
from pgti.observability.outputs import (
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    STATS_COLUMNS,
    CsvAppender,
    git_state,
    package_versions,
    write_config,
    write_stats,
)
from pgti.observability.rundir import LOCK_FILE, RunDir


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_stats_columns_start_with_the_artifacts_nine_in_order():
    assert STATS_COLUMNS[:9] == (
        "preprocessing", "training", "total", "t_mae", "v_mae",
        "system_memory_total", "max_system_mem", "gpu_memory_total", "max_gpu_mem",
    )  # fmt: skip
    assert len(set(STATS_COLUMNS)) == len(STATS_COLUMNS)
    assert {"dataset", "mode", "gpu", "test_mae_h12", "world_size"} <= set(STATS_COLUMNS)


def test_epoch_rows_written_before_an_exception_survive_it(tmp_path):
    path = tmp_path / EPOCHS_FILE
    with pytest.raises(RuntimeError):
        with CsvAppender(path, EPOCH_COLUMNS) as epochs:
            epochs.append({"epoch": 0, "runtime": 1.5, "t_mae": 3.2, "v_mae": 3.4})
            epochs.append({"epoch": 1, "runtime": 1.4, "t_mae": 2.9, "v_mae": 3.1})
            assert len(read(path)) == 3  # flushed already, before close
            raise RuntimeError("crash in epoch 2")
    rows = read(path)
    assert rows[0] == list(EPOCH_COLUMNS)
    assert rows[2][:4] == ["1", "1.4", "2.9", "3.1"]
    assert rows[2][4:] == [""] * (len(EPOCH_COLUMNS) - 4)


def test_unknown_key_is_an_error_not_a_lost_number(tmp_path):
    with CsvAppender(tmp_path / EPOCHS_FILE, EPOCH_COLUMNS) as epochs:
        with pytest.raises(ValueError, match="v_mea"):
            epochs.append({"epoch": 0, "v_mea": 1.0})
    with pytest.raises(ValueError, match="trainign"):
        write_stats(tmp_path / "stats.csv", {"trainign": 3.0})


def test_appending_to_a_file_with_another_header_is_refused(tmp_path):
    path = tmp_path / EPOCHS_FILE
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="different header"):
        CsvAppender(path, EPOCH_COLUMNS)


def test_reopened_appender_continues_without_a_second_header(tmp_path):
    path = tmp_path / EPOCHS_FILE
    for epoch in range(2):
        with CsvAppender(path, EPOCH_COLUMNS) as epochs:
            epochs.append({"epoch": epoch})
    assert [r[0] for r in read(path)] == ["epoch", "0", "1"]


def test_write_stats_is_one_row_with_missing_keys_empty(tmp_path):
    path = write_stats(tmp_path / "stats.csv", {"total": 12.5, "dataset": "chickenpox", "gpu": False})
    header, row = read(path)
    assert header == list(STATS_COLUMNS)
    values = dict(zip(header, row))
    assert values["total"] == "12.5" and values["dataset"] == "chickenpox" and values["gpu"] == "False"
    assert values["t_mae"] == "" and values["world_size"] == ""
    write_stats(path, {"total": 1})  # replaces, never appends
    assert len(read(path)) == 2


def test_claim_under_a_regular_file_raises_input_error(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(InputError, match="output directory .*not_a_dir.* cannot be created"):
        RunDir.claim(blocker / "run")


def test_claim_creates_parents_holds_a_lock_and_releases_it(tmp_path):
    run = RunDir.claim(tmp_path / "a" / "b")
    assert run.path.is_dir() and [p.name for p in run.path.iterdir()] == [LOCK_FILE]
    run.close(failed=False)
    assert list(run.path.iterdir()) == []


def test_claim_new_layout_and_suffix_on_collision(tmp_path):
    now = dt.datetime(2026, 11, 23, 4, 6, 29)
    first = RunDir.claim_new(tmp_path, "pems-bay", "index-gpu", now=now)
    second = RunDir.claim_new(tmp_path, "pems-bay", "index-gpu", now=now)
    cpu = RunDir.claim_new(tmp_path, "pems-bay", "index", now=now)
    assert first.path == tmp_path / "pems-bay" / "index-gpu" / "20261123-040629"
    assert second.path == first.path.with_name("20261123-040629-1")
    assert cpu.path == tmp_path / "pems-bay" / "index" / "20261123-040629"
    assert first.path.is_dir() and second.path.is_dir()


def test_claim_new_under_a_file_raises_input_error(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot be created"):
        RunDir.claim_new(blocker, "chickenpox", "base")


def test_config_records_args_versions_machine_git_and_command(tmp_path):
    path = write_config(tmp_path / "config.json", {"epochs": 3, "out": tmp_path}, {"nodes": 20})
    config = json.loads(path.read_text())
    assert config["args"] == {"epochs": 3, "out": str(tmp_path)}
    assert config["extra"] == {"nodes": 20}
    for name in ("torch", "torch-geometric", "torch-geometric-temporal", "numpy", "pandas", "h5py",
                 "dask", "distributed", "psutil", "pgti"):  # fmt: skip
        assert name in config["versions"]
    assert config["versions"]["pgti"] is not None
    for key in ("python", "host", "platform", "cpu_model", "cpu_cores_logical", "ram_total_mb",
                "devices", "git", "command", "created"):  # fmt: skip
        assert key in config
    assert config["devices"]  # GPU names, or ["cpu"]
    assert set(config["git"]) == {"commit", "dirty"}


def test_package_versions_of_a_missing_distribution_is_none():
    assert package_versions(["surely-not-installed-pgti-xyz"]) == {"surely-not-installed-pgti-xyz": None}


def test_git_state_outside_a_checkout_is_none(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
