"""The benchmark library and scripts: sizes, peak-RSS measurement, the watched fresh-process
runner, the peer's index path, and each script end to end on tiny synthetic data."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from pgti.bench import cli
from pgti.bench.peer import peer_loader, peer_series
from pgti.bench.rss import PeakRss
from pgti.bench.runner import GIB, run_task
from pgti.bench.sizes import shape_of
from pgti.bench.tasks import _copy_blocks
from pgti.data.loader import prepare
from pgti.datasets.formats import load_raw
from pgti.datasets.registry import get_spec
from pgti.datasets.synthetic import generate

TINY = ["--nodes", "8", "--timesteps", "300", "--repeats", "1", "--quick"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-cache")


def run_script(repo, name, *args, timeout=900):
    proc = subprocess.run([sys.executable, str(repo / "scripts" / name), *args], cwd=repo,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# --- sizes ------------------------------------------------------------------------------------


def test_base_estimate_is_every_window_pair_plus_the_series():
    shape = shape_of(get_spec("pems"))
    n = 105_120 - 2 * 12 + 1
    assert shape.num_windows == n
    assert shape.estimate("base") == 2 * n * 12 * 11_160 * 2 * 4 + 105_120 * 11_160 * 2 * 4
    assert shape.series_bytes == 105_120 * 11_160 * 2 * 4
    assert shape.estimate("lazy-index") < shape.series_bytes / 10
    assert shape_of(get_spec("chickenpox")).num_features == 1


def test_check_fit_names_the_need_and_what_is_available():
    class Args:
        assume_available_gib, reserve_gib = 1.0, 0.5

    assert cli.check_fit(int(0.25 * GIB), Args) is None
    message = cli.check_fit(int(3 * GIB), Args)
    assert message.startswith("does not fit: needs 3.00 GiB, 1.00 GiB available")


def test_rotate_starts_each_repeat_at_the_next_mode():
    assert cli.rotate(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert cli.rotate(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_copy_blocks_add_up_to_the_batch_rows_within_the_series():
    assert _copy_blocks(768, 52_116) == [768]
    assert _copy_blocks(768, 300) == [300, 300, 168]


# --- measuring ----------------------------------------------------------------------------------


def test_peak_rss_counts_a_transient_allocation_above_the_baseline():
    with PeakRss() as m:
        block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
        del block
    assert m.peak_above_baseline >= 60 << 20
    assert m.peak_above_baseline < 200 << 20


def test_runner_reports_a_task_result_from_a_fresh_process(tmp_path):
    outcome = run_task("generate", {"name": "chickenpox", "data_dir": str(tmp_path), "nodes": 4,
                                    "timesteps": 100})
    assert outcome.ok, outcome.message
    assert (tmp_path / "chickenpox.json").is_file()


def test_runner_stops_a_child_when_memory_runs_short(tmp_path):
    # A guard above the machine's total memory trips at once: the child is stopped, not crashed.
    outcome = run_task("generate", {"name": "chickenpox", "data_dir": str(tmp_path), "nodes": 4,
                                    "timesteps": 100}, guard_bytes=1 << 50)
    assert outcome.status == "killed: memory guard"
    assert "available memory" in outcome.message


def test_runner_turns_bad_input_into_an_input_error(tmp_path):
    outcome = run_task("memory", {"dataset": "metr-la", "data_dir": str(tmp_path), "mode": "index"})
    assert outcome.status == "input error"
    assert "missing dataset file" in outcome.message


# --- the peer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,dtype", [("pems-bay", np.float32), ("pems", np.float64),
                                        ("windmill-large", np.float64), ("chickenpox", np.float64)])
def test_peer_series_is_what_its_loader_hands_to_index_dataset(tmp_path, name, dtype):
    generate(name, tmp_path, nodes=5, timesteps=300, progress=False)
    raw = load_raw(name, tmp_path)
    series = peer_series(raw)
    features = 2 if raw.spec.is_traffic else 1
    assert series.shape == (300, 5, features)
    assert series.dtype == dtype
    if raw.spec.normalisation != "none":
        assert abs(float(series[..., 0].mean())) < 1e-3  # z-scored
    raw.close()


def test_peer_index_dataset_on_our_series_gives_our_index_batches_bitwise(tmp_path):
    generate("metr-la", tmp_path, nodes=6, timesteps=400, progress=False)
    data = prepare("metr-la", tmp_path, "index")
    starts = data.split.starts("train")[:40]
    loader = peer_loader(data.storage.series.numpy(), starts, data.lags, 8, shuffle=False)
    for i, (px, py) in enumerate(loader):
        x, y = data.storage.gather(torch.from_numpy(starts[i * 8 : (i + 1) * 8]))
        assert torch.equal(px, x) and torch.equal(py, y)
    data.close()


# --- the scripts, end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_bench_data_writes_its_tables_and_target_lines(repo, tmp_path, cache):
    out = run_script(repo, "bench_data.py", *TINY, "--out", str(tmp_path), "--cache-dir", str(cache))
    for label in ("index peak / base peak", "index / peer batch assembly",
                  "index / plain copies of the same bytes", "lazy-index peak above idle / series bytes"):
        assert f"target {label}:" in out
    assert (tmp_path / "data.md").read_text().count("| base |") == 1
    runs = read_csv(tmp_path / "data_runs.csv")
    assert {r["mode"] for r in runs} == {"base", "index", "lazy-index"}
    assert all(r["status"] == "ok" and float(r["peak_gib"]) > 0 for r in runs)
    assert len(read_csv(tmp_path / "data_rates.csv")) == 4


@pytest.mark.slow
def test_bench_memory_measures_each_mode_and_the_peer(repo, tmp_path, cache):
    out = run_script(repo, "bench_memory.py", *TINY, "--datasets", "metr-la", "--batches", "1",
                     "--modes", "base,index,lazy-index,gpu-index,peer", "--out", str(tmp_path),
                     "--cache-dir", str(cache))
    assert "target paper claim, peak memory index vs base:" in out
    rows = {r["mode"]: r for r in read_csv(tmp_path / "memory.csv")}
    for mode in ("base", "index", "lazy-index", "peer"):
        assert rows[mode]["status"] == "ok", rows[mode]
        assert float(rows[mode]["peak_gib"]) > 0
    if not torch.cuda.is_available():
        assert rows["gpu-index"]["status"] == "no GPU on this machine"
    assert (tmp_path / "memory.png").read_bytes()[:4] == b"\x89PNG"
    assert "| metr-la |" in (tmp_path / "memory.md").read_text()


@pytest.mark.slow
def test_bench_memory_refuses_what_does_not_fit_without_running_it(repo, tmp_path, cache):
    out = run_script(repo, "bench_memory.py", *TINY, "--datasets", "pems", "--modes", "base,index",
                     "--assume-available-gib", "0.001", "--out", str(tmp_path), "--cache-dir", str(cache))
    rows = {r["mode"]: r for r in read_csv(tmp_path / "memory.csv")}
    assert rows["base"]["status"].startswith("does not fit: needs ")
    shape = shape_of(get_spec("pems"), 8, 300)
    assert float(rows["base"]["estimate_gib"]) == pytest.approx(shape.estimate("base") / GIB, rel=1e-4)
    assert "target PeMS base refused with its estimate" in out
    assert read_csv(tmp_path / "memory_runs.csv")[0]["peak_gib"] == ""


@pytest.mark.slow
def test_bench_speed_writes_rates_epochs_and_step_times(repo, tmp_path, cache):
    out = run_script(repo, "bench_speed.py", *TINY, "--models", "pgt-dcrnn,dcrnn-cell", "--model-nodes", "8",
                     "--out", str(tmp_path), "--cache-dir", str(cache))
    assert "target index / peer batch assembly (same data):" in out
    assert "target pgt-dcrnn / dcrnn-cell step time:" in out
    steps = {r["model"]: r for r in read_csv(tmp_path / "speed_steps.csv")}
    assert steps["dcrnn-cell"]["status"] == "ok" and float(steps["dcrnn-cell"]["ms_per_step"]) > 0
    epochs = {r["mode"]: r for r in read_csv(tmp_path / "speed_epoch.csv")}
    assert set(epochs) == {"base", "index", "lazy-index", "peer"}
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"
