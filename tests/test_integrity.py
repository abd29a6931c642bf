"""Results integrity: a run directory belongs to one run, epochs are committed in order, and a
checkpoint is untrusted input. Each test here failed on the code before these rules existed."""

from __future__ import annotations

import csv
import errno
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from pgti.engine import cli as run_module
from pgti.engine.checkpoint import read_checkpoint
from pgti.errors import InputError
from pgti.observability import outputs
from pgti.observability.rundir import LOCK_FILE

ARGS = ("-e", "3", "--max-batches", "4", "-bs", "8")


def run_main(*argv, dataset="chickenpox"):
    return run_module.main(dataset, [*argv, "--quiet"])


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def losses(run_dir):
    return [(r["epoch"], r["t_mae"], r["v_mae"]) for r in rows(run_dir / "per_epoch_stats.csv")]


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def one_error_line(capsys) -> str:
    """The run ends with exactly one error line (progress lines may come before it)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error") for line in lines) == 1, err
    return lines[-1]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An uninterrupted 3-epoch run: the reference every interrupted run must equal."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert run_main(*ARGS, "--output-dir", str(out)) == 0
    return out


# --- a run directory belongs to one run -----------------------------------------------------------


def test_a_new_run_refuses_a_directory_holding_a_run_and_touches_nothing(finished, capsys):
    before = snapshot(finished)
    assert run_main(*ARGS, "--output-dir", str(finished)) == 2
    line = one_error_line(capsys)
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert snapshot(finished) == before


def test_overwrite_replaces_the_run(tmp_path, finished):
    out = tmp_path / "run"
    assert run_main("-e", "1", "--max-batches", "2", "-bs", "8", "--output-dir", str(out)) == 0
    assert run_main(*ARGS, "--output-dir", str(out), "--overwrite") == 0
    assert losses(out) == losses(finished)  # the old epoch rows are gone, not appended to
    assert not (out / ".replaced-run").exists() and not (out / LOCK_FILE).exists()


def test_a_refused_overwrite_puts_the_old_run_back(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_main("-e", "1", "--max-batches", "2", "-bs", "8", "--output-dir", str(out)) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert run_main("-e", "1", "-bs", "80", "--output-dir", str(out), "--overwrite") == 2  # batch too large
    assert "--batch-size: 80" in one_error_line(capsys)
    assert snapshot(out) == before and not (out / ".replaced-run").exists()


def test_a_second_writer_fails_at_once_while_the_first_holds_the_lock(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    me = {"pid": os.getpid(), "host": os.uname().nodename,
          "started": __import__("psutil").Process().create_time(), "since": "now"}
    (out / LOCK_FILE).write_text(json.dumps(me))
    assert run_main(*ARGS, "--output-dir", str(out)) == 2
    assert "in use by another run" in one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == [LOCK_FILE]


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                             "started": 0.0, "since": "then"}))
    assert run_main("-e", "1", "--max-batches", "2", "-bs", "8", "--output-dir", str(out)) == 0
    assert (out / "stats.csv").is_file() and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("default_dir", [False, True])
def test_a_run_refused_for_bad_data_leaves_nothing_behind(tmp_path, monkeypatch, capsys, default_dir):
    data = tmp_path / "data"
    data.mkdir()
    (data / "chickenpox.json").write_text(json.dumps({"edges": [[0, 1]], "node_ids": {"a": 0, "b": 1},
                                                      "FX": [[1.0, "x"], [2.0, 3.0]]}))
    monkeypatch.chdir(tmp_path)
    out = [] if default_dir else ["--output-dir", str(tmp_path / "deep" / "run")]
    assert run_main(*ARGS, "--data-dir", str(data), *out) == 2
    assert "'FX'" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# --- epochs are committed in order ----------------------------------------------------------------


def test_a_crash_between_checkpoint_and_row_loses_no_epoch_and_repeats_none(tmp_path, monkeypatch, finished):
    out = tmp_path / "run"
    original = outputs.CsvAppender.append
    calls = []

    def crash_on_second_epoch_row(self, row):
        if self.path.name == "per_epoch_stats.csv":
            calls.append(row["epoch"])
            if row["epoch"] == 1:
                raise KeyboardInterrupt  # killed after the checkpoint of epoch 1, before its row
        return original(self, row)

    monkeypatch.setattr(outputs.CsvAppender, "append", crash_on_second_epoch_row)
    assert run_main(*ARGS, "--output-dir", str(out)) == 130
    assert [r["epoch"] for r in rows(out / "per_epoch_stats.csv")] == ["0"]
    monkeypatch.undo()
    assert run_main(*ARGS, "--resume", str(out)) == 0
    assert losses(out) == losses(finished)


def test_a_full_disk_at_the_checkpoint_ends_in_one_line_and_resume_repeats_no_epoch(
        tmp_path, monkeypatch, capsys, finished):
    out = tmp_path / "run"
    real_replace = os.replace
    saves = []

    def disk_full_on_third_checkpoint(src, dst, *a, **k):
        if str(dst).endswith("checkpoint.pt"):
            saves.append(1)
            if len(saves) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", disk_full_on_third_checkpoint)
    assert run_main(*ARGS, "--output-dir", str(out)) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "checkpoint.pt" in line
    assert [r["epoch"] for r in rows(out / "per_epoch_stats.csv")] == ["0", "1"]
    assert read_checkpoint(out / "checkpoint.pt").epochs_done == 2
    assert not list(out.glob(".*.tmp"))
    monkeypatch.undo()
    assert run_main(*ARGS, "--resume", str(out)) == 0
    assert losses(out) == losses(finished)


def test_resume_with_no_epochs_left_is_refused_and_touches_nothing(finished, capsys):
    before = snapshot(finished)
    assert run_main("-e", "2", "--max-batches", "4", "-bs", "8", "--resume", str(finished)) == 2
    assert "already finished 3 epoch" in one_error_line(capsys)
    assert snapshot(finished) == before


def test_resume_keeps_the_original_config_and_records_each_resume(tmp_path):
    out = tmp_path / "run"
    assert run_main("-e", "1", "--max-batches", "2", "-bs", "8", "--output-dir", str(out)) == 0
    original = json.loads((out / "config.json").read_text())
    assert run_main("-e", "2", "--max-batches", "2", "-bs", "8", "--resume", str(out)) == 0
    assert run_main("-e", "3", "--max-batches", "2", "-bs", "8", "--resume", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["args"] == original["args"] and config["created"] == original["created"]
    assert [(r["from_epoch"], r["to_epochs"]) for r in config["resumes"]] == [(1, 2), (2, 3)]


# --- a checkpoint is untrusted input --------------------------------------------------------------


def test_a_checkpoint_from_a_run_on_other_data_is_refused(tmp_path, finished, capsys):
    data = tmp_path / "data"
    data.mkdir()
    chickenpox = json.loads((REPO / "data" / "chickenpox.json").read_text())
    chickenpox["edges"] = chickenpox["edges"][:-5]  # same nodes and shapes, another graph
    (data / "chickenpox.json").write_text(json.dumps(chickenpox))
    before = snapshot(finished)
    assert run_main("-e", "5", "--max-batches", "4", "-bs", "8", "--data-dir", str(data),
                    "--resume", str(finished)) == 2
    line = one_error_line(capsys)
    assert "was made by a different run" in line and "graph" in line
    assert snapshot(finished) == before


def test_a_checkpoint_from_another_model_is_refused(finished, capsys):
    assert run_main("-e", "5", "--max-batches", "4", "-bs", "8", "--model", "dcrnn-cell",
                    "--resume", str(finished)) == 2
    assert "model: checkpoint 'pgt-dcrnn', this run 'dcrnn-cell'" in one_error_line(capsys)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creating the marker file proves code ran


@pytest.mark.parametrize("kind", ["code", "garbage", "truncated", "empty", "foreign", "plain-pickle"])
def test_a_bad_checkpoint_is_refused_in_one_line_and_never_executes(tmp_path, finished, capsys, kind):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "per_epoch_stats.csv", "system_stats.csv", "stats.csv"):
        (run_dir / name).write_bytes((finished / name).read_bytes())
    ckpt = run_dir / "checkpoint.pt"
    marker = tmp_path / "pwned"
    good = (finished / "checkpoint.pt").read_bytes()
    if kind == "code":
        torch.save({"format": "pgti-checkpoint", "x": _Payload(str(marker))}, ckpt)
    elif kind == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        ckpt.write_bytes(good[: len(good) // 2])
    elif kind == "empty":
        ckpt.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, ckpt)
    else:
        ckpt.write_bytes(pickle.dumps({"epoch": 1}))
    before = snapshot(run_dir)
    assert run_main("-e", "9", "--max-batches", "2", "-bs", "8", "--resume", str(run_dir)) == 2
    line = one_error_line(capsys)
    assert str(ckpt) in line
    assert not marker.exists()
    assert snapshot(run_dir) == before
    with pytest.raises(InputError):
        read_checkpoint(ckpt)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.update(version=1), "version 1, this pgti reads version 2"),
    (lambda s: s.pop("best"), "'best' is missing"),
    (lambda s: s.update(best={"epoch": 7, "v_mae": 0.5, "model": {}}), "'best' epoch 7 is not one of the epochs"),
    (lambda s: s["best"].update(model={"w": [1.0]}), "'best' weights are missing or hold values that are not"),
    (lambda s: s.update(scheduler=[1, 2]), "'scheduler' is missing or neither a dict nor None"),
])
def test_a_checkpoint_with_a_bad_best_or_schedule_is_refused(tmp_path, finished, capsys, damage, message):
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    assert state["best"]["epoch"] in (0, 1, 2) and state["scheduler"] is None  # no --lr-decay-epochs
    damage(state)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save(state, run_dir / "checkpoint.pt")
    before = snapshot(run_dir)
    assert run_main("-e", "9", "--max-batches", "2", "-bs", "8", "--resume", str(run_dir)) == 2
    line = one_error_line(capsys)
    assert str(run_dir / "checkpoint.pt") in line and message in line
    assert snapshot(run_dir) == before


def test_a_model_with_extra_state_resumes_as_an_uninterrupted_run(tmp_path):
    """DCRNN keeps a counter (batches seen, for scheduled sampling) as plain extra state in its
    state_dict: the checkpoint admits it (numbers, not objects) and resume restores it."""
    small = ("--model", "dcrnn", "--hidden", "4", "--layers", "1", "--max-batches", "2", "-bs", "8")
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_main(*small, "-e", "2", "--output-dir", str(full)) == 0
    assert run_main(*small, "-e", "1", "--output-dir", str(part)) == 0
    assert run_main(*small, "-e", "2", "--resume", str(part)) == 0
    assert losses(part) == losses(full)
    state = read_checkpoint(part / "checkpoint.pt").state
    extra = [v for k, v in state["model"].items() if k.endswith("_extra_state")]
    assert extra and all(isinstance(v, dict) for v in extra)
