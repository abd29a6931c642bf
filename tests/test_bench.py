"""The benchmark library and its suites: sizes, peak-RSS measurement, the watched fresh-process
runner, the peer's index path, the model-step timing that bench_models and bench_speed share,
and each suite end to end on tiny synthetic data (the scripts only call the suites' ``main``)."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pgti.bench import cli, report
from pgti.bench.peer import peer_loader, peer_series
from pgti.bench.rss import PeakRss
from pgti.bench.runner import GIB, run_task
from pgti.bench.sizes import shape_of
from pgti.bench.suites import data as data_suite
from pgti.bench.suites import memory as memory_suite
from pgti.bench.suites import models as models_suite
from pgti.bench.suites import speed as speed_suite
from pgti.bench.suites import zoo as zoo_suite
from pgti.bench.tasks import _copy_blocks
from pgti.engine.trainer import Trainer
from pgti.data.loader import prepare
from pgti.datasets.formats import load_raw
from pgti.datasets.registry import get_spec
from pgti.datasets.synthetic import generate

TINY = ["--nodes", "8", "--timesteps", "300", "--repeats", "1", "--quick"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-cache")


def run_script(repo, name, *args, timeout=600):
    proc = subprocess.run([sys.executable, str(repo / "scripts" / name), *args], cwd=repo,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def run_suite(suite, capsys, *args):
    status = suite.main(list(args))
    out, err = capsys.readouterr()
    assert status == 0, out[-3000:] + err[-3000:]
    return out


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


# --- the training step that bench_models and bench_speed time ------------------------------------

TINY_STEP = models_suite.StepShape(batch_size=2, lags=4, nodes=5, features=2, edges=12)


def test_model_step_is_one_train_epoch_of_the_real_trainer(monkeypatch, one_thread):
    epochs = []
    real = Trainer.train_epoch

    def counted(self, batches, total, *args, **kwargs):
        batches = list(batches)
        epochs.append((len(batches), total))
        return real(self, batches, total, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", counted)
    result = models_suite.measure_steps("dcrnn-cell", {}, dataclasses.asdict(TINY_STEP), warmup=1, repeats=3)
    assert epochs == [(1, 1)] * 4  # warm-up + timed steps, each one batch through Trainer
    assert len(result["times"]) == 3 and all(t > 0 for t in result["times"])
    edge_index, edge_weight, _, _ = models_suite.make_inputs(TINY_STEP, 0, "cpu")
    model = models_suite.build("dcrnn-cell", {}, TINY_STEP, edge_index, edge_weight, "cpu")
    assert result["params"] == sum(p.numel() for p in model.parameters())


def test_a_model_that_needs_training_statistics_is_timed_on_flat_ones():
    """Random batches have no dataset behind them: a model with ``fit`` gets one flat slot (and
    a model without ``fit`` is left as it is)."""
    for name, options in (("dcrnn-cell-s2s-ha", {}), ("faulty_model:DiesAfter", {"die_rank": 9})):
        result = models_suite.measure_steps(name, options, dataclasses.asdict(TINY_STEP), warmup=0, repeats=1)
        assert len(result["times"]) == 1 and result["params"] > 0


def test_pgt_layout_windows_are_our_index_windows_transposed(tmp_path):
    """The PGT workflow of bench_zoo trains on the very windows our index path gathers: inputs
    (S, N, F, L) = ours (S, L, N, F) moved, targets (S, N, L) = channel 0 of ours."""
    generate("metr-la", tmp_path, nodes=6, timesteps=300, seed=3, progress=False)
    data = prepare("metr-la", tmp_path, "index")
    starts = np.asarray(data.split.starts("train"))[[0, 5, 17, 40]]
    x, y = zoo_suite.materialise_like_pgt(data.storage.series.numpy(), starts, data.lags)
    ours_x, ours_y = data.storage.gather(torch.as_tensor(starts))
    assert x.is_contiguous() and y.is_contiguous() and x.dtype == y.dtype == torch.float32
    assert torch.equal(x, ours_x.permute(0, 2, 3, 1))
    assert torch.equal(y, ours_y[..., 0].permute(0, 2, 1))
    data.raw.close()


@pytest.mark.parametrize("name", sorted(zoo_suite.PGT_EXAMPLES))
def test_pgt_example_networks_train_on_the_examples_layouts(name):
    torch.manual_seed(0)
    net = zoo_suite.PGT_EXAMPLES[name](num_features=2, lags=4)
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    x, y = torch.randn(3, 5, 2, 4), torch.randn(3, 5, 4)  # (B, N, F, L), (B, N, L)
    out = net(x, edge_index, torch.ones(5))
    target = net.target(y)
    assert out.shape == target.shape
    torch.nn.functional.mse_loss(out, target).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_model_steps_in_a_fresh_process_come_back_as_json_numbers():
    outcome = models_suite.run_alone("dcrnn-cell", {}, TINY_STEP, warmup=0, repeats=2, threads=1, rss=True)
    assert outcome.ok, outcome.message + outcome.log_tail
    result = outcome.result
    assert [type(t) for t in result["times"]] == [float, float] and min(result["times"]) > 0
    assert result["peak_total"] >= result["peak_above_start"] >= 0


def test_bench_speed_times_models_through_the_models_suite_not_their_output():
    shape = SimpleNamespace(lags=TINY_STEP.lags, num_features=TINY_STEP.features)
    args = SimpleNamespace(batch_size=2, model_repeats=3, model_warmup=0, seed=0, threads=1, model_timeout=300.0,
                           guard_gib=0.5)
    row = speed_suite.time_model("dcrnn-cell", 5, shape, args)
    assert row["status"] == "ok", row["status"]
    assert row["steps"] == 3 and row["edges"] == 25  # PeMS-Bay's 2,694 / 325 per node, at most N^2
    assert isinstance(row["ms_per_step"], float)
    assert 0 < row["min_ms"] <= row["ms_per_step"] <= row["max_ms"]


def test_a_model_step_that_overruns_is_a_row_status_not_a_crash():
    shape = SimpleNamespace(lags=4, num_features=2)
    args = SimpleNamespace(batch_size=2, model_repeats=1, model_warmup=0, seed=0, threads=1, model_timeout=0.05,
                           guard_gib=0.5)
    row = speed_suite.time_model("dcrnn-cell", 5, shape, args)
    assert row["status"].startswith("timeout: ran past") and "ms_per_step" not in row


# --- shared report pieces ------------------------------------------------------------------------


def test_fmt_formats_floats_and_shows_counts_and_missing_values_as_they_are():
    assert report.fmt(0.12345, ".1%") == "12.3%"
    assert report.fmt(float("inf"), ".1f") == "inf"
    assert report.fmt(3, ".1f") == "3"
    assert report.fmt(None) == "-"


RATE = {"batch_bytes": 2_000_000, "index_batches_per_s": 1000.04, "index_all": [999.6, 1000.4],
        "peer_same_data_batches_per_s": 100.0, "peer_same_data_all": [100.0],
        "memcpy_batches_per_s": 1500.0, "memcpy_all": [1500.0]}


def test_rate_rows_compare_each_method_with_index_batching_and_the_copy_rate():
    rows = {r["method"]: r for r in report.rate_rows(RATE, "index")}
    assert list(rows) == ["index", "peer IndexDataset + DataLoader, same float32 series",
                          "plain tensor copies of the same bytes"]  # no peer_own_layout in RATE
    peer = rows["peer IndexDataset + DataLoader, same float32 series"]
    assert peer["vs_index"] == pytest.approx(10.0004)
    assert peer["gbytes_per_s"] == pytest.approx(0.2)
    assert rows["index"]["fraction_of_copy_rate"] == pytest.approx(1000.04 / 1500)
    assert rows["index"]["trials"] == "1000 1000"
    assert report.rate_rows(None, "index") == []


def test_bench_data_rate_table_keeps_its_rounded_numbers():
    index = data_suite.rate_table(RATE)[0]
    assert index["method"] == "index batching (ours: 2 index_select)"
    assert (index["batches_per_s"], index["gbytes_per_s"], index["vs_index"]) == (1000.0, 2.0, 1.0)


def test_scripts_are_entry_points_of_the_suites(repo):
    for name in ("data", "ddp", "memory", "models", "speed", "zoo"):
        text = (repo / "scripts" / f"bench_{name}.py").read_text()
        assert f"from pgti.bench.suites.{name} import main" in text
        assert len(text.splitlines()) <= 25
    assert "--saved-tensors" in run_script(repo, "bench_models.py", "--help")


# --- the suites, end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_bench_data_writes_its_tables_and_target_lines(capsys, tmp_path, cache):
    out = run_suite(data_suite, capsys, *TINY, "--out", str(tmp_path), "--cache-dir", str(cache))
    for label in ("index peak / base peak", "index / peer batch assembly",
                  "index / plain copies of the same bytes", "lazy-index peak above idle / series bytes"):
        assert f"target {label}:" in out
    assert (tmp_path / "data.md").read_text().count("| base |") == 1
    runs = read_csv(tmp_path / "data_runs.csv")
    assert {r["mode"] for r in runs} == {"base", "index", "lazy-index"}
    assert all(r["status"] == "ok" and float(r["peak_gib"]) > 0 for r in runs)
    assert len(read_csv(tmp_path / "data_rates.csv")) == 4


@pytest.mark.slow
def test_bench_memory_measures_each_mode_and_the_peer(capsys, tmp_path, cache):
    out = run_suite(memory_suite, capsys, *TINY, "--datasets", "metr-la", "--batches", "1",
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
def test_bench_memory_refuses_what_does_not_fit_without_running_it(capsys, tmp_path, cache):
    out = run_suite(memory_suite, capsys, *TINY, "--datasets", "pems", "--modes", "base,index",
                     "--assume-available-gib", "0.001", "--out", str(tmp_path), "--cache-dir", str(cache))
    rows = {r["mode"]: r for r in read_csv(tmp_path / "memory.csv")}
    assert rows["base"]["status"].startswith("does not fit: needs ")
    shape = shape_of(get_spec("pems"), 8, 300)
    assert float(rows["base"]["estimate_gib"]) == pytest.approx(shape.estimate("base") / GIB, rel=1e-4)
    assert "target PeMS base refused with its estimate" in out
    assert read_csv(tmp_path / "memory_runs.csv")[0]["peak_gib"] == ""


@pytest.mark.slow
def test_bench_speed_writes_rates_epochs_and_step_times(capsys, tmp_path, cache):
    out = run_suite(speed_suite, capsys, *TINY, "--models", "pgt-dcrnn,dcrnn-cell", "--model-nodes", "8",
                     "--out", str(tmp_path), "--cache-dir", str(cache))
    assert "target index / peer batch assembly (same data):" in out
    assert "target pgt-dcrnn / dcrnn-cell step time:" in out
    steps = {r["model"]: r for r in read_csv(tmp_path / "speed_steps.csv")}
    assert steps["dcrnn-cell"]["status"] == "ok" and float(steps["dcrnn-cell"]["ms_per_step"]) > 0
    epochs = {r["mode"]: r for r in read_csv(tmp_path / "speed_epoch.csv")}
    assert set(epochs) == {"base", "index", "lazy-index", "peer"}
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_bench_ddp_compares_the_bytes_dask_and_batch_shuffled_dask_index_move(repo, tmp_path, cache):
    # Through the script, in a fresh interpreter: a Dask cluster started late in a long pytest
    # process (after many torch tests) has been seen to hang there.
    out = run_script(repo, "bench_ddp.py", "--nodes", "8", "--timesteps", "300", "--max-batches", "2", "--epochs", "1",
                    "-bs", "8", "--configs", "dask,batch-shuffled dask-index", "--cache-dir", str(cache),
                    "--out", str(tmp_path))
    assert "target dask / batch-shuffled dask-index bytes moved (one full epoch incl. setup):" in out
    rows = {r["config"]: r for r in read_csv(tmp_path / "bench_ddp.csv")}
    assert set(rows) == {"dask", "batch-shuffled dask-index"}
    assert float(rows["dask"]["full_epoch_with_setup_mib"]) > 0
    assert "| batch-shuffled dask-index |" in (tmp_path / "bench_ddp.md").read_text()


@pytest.mark.slow
def test_bench_zoo_times_each_model_through_each_mode_and_against_pgt(capsys, tmp_path, cache):
    out = run_suite(zoo_suite, capsys, *TINY, "--dataset", "metr-la", "--batch-size", "8", "--batches", "3",
                    "--models", "linear,tgcn2,last-value,dcrnn-cell-s2s-ha", "--modes", "base,index,gpu-index",
                    "--pgt-steps", "2", "--pgt-rounds", "1", "--min-pass-seconds", "0", "--out", str(tmp_path),
                    "--cache-dir", str(cache))
    runs = read_csv(tmp_path / "zoo_runs.csv")
    models = ("linear", "tgcn2", "last-value", "dcrnn-cell-s2s-ha")
    assert [(r["model"], r["mode"]) for r in runs] == [(m, mode) for m in models
                                                      for mode in ("base", "index", "gpu-index")]
    for r in runs:
        if r["mode"] == "gpu-index" and not torch.cuda.is_available():
            assert r["status"] == "no GPU on this machine"
            continue
        assert r["status"] == "ok", r
        assert float(r["step_s"]) > 0 and float(r["peak_gib"]) > 0 and r["batches"] == "3"
    params = {r["model"]: int(r["params"]) for r in runs if r["status"] == "ok"}
    assert params["last-value"] == 0 and min(params["linear"], params["tgcn2"], params["dcrnn-cell-s2s-ha"]) > 0
    assert "last-value (no parameters: forward only)" in (tmp_path / "zoo.md").read_text()
    pgt = read_csv(tmp_path / "zoo_pgt.csv")
    assert [r["model"] for r in pgt] == ["tgcn2"] and pgt[0]["status"] == "ok"
    ours, theirs = ([float(v) for v in pgt[0][side].split()] for side in ("ours_all", "pgt_all"))  # ms, rounded
    assert len(ours) == len(theirs) == 1 and float(pgt[0]["ratio"]) == pytest.approx(ours[0] / theirs[0], rel=0.05)
    assert float(pgt[0]["ratio_min"]) == float(pgt[0]["ratio"]) == float(pgt[0]["ratio_max"])  # one round
    assert "target tgcn2: our index path / PGT's materialising workflow, per step:" in out
    for png in ("zoo_step.png", "zoo_peak.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_bench_zoo_gives_a_fast_model_more_batches_within_its_limits():
    args = SimpleNamespace(min_pass_seconds=3.0, max_batches=50)
    ok = {"status": "ok", "batches": 3}
    assert zoo_suite._batches_for({**ok, "step_s": 2.0}, 3, args) == 3  # 6 s a pass: enough
    assert zoo_suite._batches_for({**ok, "step_s": 0.25}, 3, args) == 12  # 3 s / 0.25 s
    assert zoo_suite._batches_for({**ok, "step_s": 0.001}, 3, args) == 50  # capped by --max-batches
    assert zoo_suite._batches_for({"status": "ok", "batches": 2, "step_s": 0.001}, 3, args) == 3  # split ran out
    assert zoo_suite._batches_for({"status": "timeout"}, 3, args) == 3


def test_bench_zoo_names_a_bad_model_or_mode_in_one_line(capsys):
    for argv, flag in ((["--models", "nope"], "--models"), (["--modes", "base,peer"], "--modes")):
        assert zoo_suite.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {flag}: "), err


def test_bench_models_times_a_model_brought_as_module_and_class(capsys):
    """--models takes package.module:ClassName, as --model does (tests/ is on sys.path: conftest);
    an unknown name is one line."""
    result = models_suite.measure_steps("faulty_model:DiesAfter", {"die_rank": 9}, dataclasses.asdict(TINY_STEP),
                                        warmup=1, repeats=2)
    assert len(result["times"]) == 2 and all(t > 0 for t in result["times"])
    assert models_suite.main(["--models", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --models: unknown model 'nope'")
