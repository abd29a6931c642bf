"""The single-node harness: drivers, CSV outputs, resume, crash safety, bad input."""

import csv
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from fixtures import write_traffic
from pgti.engine import cli as run_module
from pgti.engine.trainer import Trainer
from pgti.observability.outputs import EPOCH_COLUMNS, STATS_COLUMNS

DRIVER = REPO / "single_gpu_testing" / "chicken_pox_main.py"
ARTIFACT_SYSTEM_COLUMNS = ["Timestamp", "System_Memory_Used", "System_Memory_Total", "GPU_Memory_Used",
                           "GPU_Memory_Total"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_main(dataset, *argv):
    return run_module.main(dataset, [*argv, "--quiet"])


def test_chickenpox_driver_end_to_end_writes_the_three_csvs(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "-e", "2", "-m", "index", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    stats = read_csv(out / "stats.csv")
    assert len(stats) == 1 and list(stats[0]) == list(STATS_COLUMNS)
    s = stats[0]
    assert (s["dataset"], s["mode"], s["gpu"], s["epochs"], s["batch_size"]) == ("chickenpox", "index", "False", "2", "4")
    assert 0 < float(s["preprocessing"]) < float(s["total"]) and 0 < float(s["training"]) < float(s["total"])
    assert 0.1 < float(s["t_mae"]) < 2 and 0.1 < float(s["v_mae"]) < 2  # standardised cases
    assert 0.1 < float(s["test_mae"]) < 2 and float(s["test_rmse"]) >= float(s["test_mae"])
    assert 100 < float(s["max_process_mem"]) < float(s["max_system_mem"]) <= float(s["system_memory_total"])
    assert s["gpu_memory_total"] == "" and s["max_gpu_mem"] == ""  # no GPU here: empty, not zero
    # the baselines, on the same test windows (chickenpox: L = 4, horizon 3 only)
    assert 0.1 < float(s["test_mae_last_value"]) < 3 and 0.1 < float(s["test_mae_historical_average"]) < 3
    assert s["test_mae_h3_last_value"] != "" and s["test_mae_h6_last_value"] == "" and s["test_skill_h6"] == ""
    assert float(s["test_skill_h3"]) == 1 - float(s["test_mae_h3"]) / float(s["test_mae_h3_last_value"])
    assert s["best_epoch"] in ("0", "1")
    assert (f"test MAE {float(s['test_mae']):.4f} (last-value {float(s['test_mae_last_value']):.4f}, "
            f"historical-average {float(s['test_mae_historical_average']):.4f})") in proc.stdout

    epochs = read_csv(out / "per_epoch_stats.csv")
    assert [r["epoch"] for r in epochs] == ["0", "1"] and list(epochs[0]) == list(EPOCH_COLUMNS)
    assert all(float(r["runtime"]) > 0 and float(r["t_mae"]) > 0 for r in epochs)
    assert float(s["t_mae"]) == min(float(r["t_mae"]) for r in epochs)

    system = read_csv(out / "system_stats.csv")
    assert len(system) >= 2 and list(system[0])[:5] == ARTIFACT_SYSTEM_COLUMNS
    assert all(100 < float(r["Process_Memory_Used"]) < float(r["System_Memory_Used"]) for r in system)
    assert {"preprocessing", "training"} <= {r["Phase"] for r in system}
    assert (out / "config.json").is_file() and (out / "checkpoint.pt").is_file()


def _epoch_losses(out):
    return [(r["t_mae"], r["v_mae"]) for r in read_csv(out / "per_epoch_stats.csv")]


def test_base_and_index_give_identical_per_epoch_losses(tmp_path):
    for mode in ("base", "index", "lazy-index"):
        assert run_main("chickenpox", "-e", "2", "-m", mode, "--max-batches", "15", "--seed", "3",
                        "--output-dir", str(tmp_path / mode)) == 0
    assert _epoch_losses(tmp_path / "base") == _epoch_losses(tmp_path / "index") == _epoch_losses(tmp_path / "lazy-index")
    # and so identical test metrics, baselines and best epoch
    tests = [{k: v for k, v in read_csv(tmp_path / mode / "stats.csv")[0].items()
              if k.startswith("test_") or k == "best_epoch"} for mode in ("base", "index", "lazy-index")]
    assert tests[0] == tests[1] == tests[2] and tests[0]["test_mae_last_value"] != ""


def test_resume_continues_from_the_checkpoint(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run_main("chickenpox", "-e", "3", "--max-batches", "10", "--output-dir", str(full))
    run_main("chickenpox", "-e", "2", "--max-batches", "10", "--output-dir", str(part))
    assert run_main("chickenpox", "-e", "3", "--max-batches", "10", "--resume", str(part)) == 0
    assert _epoch_losses(part) == _epoch_losses(full)
    assert len(read_csv(part / "stats.csv")) == 1


def test_a_crash_mid_training_keeps_the_rows_written_so_far(tmp_path, monkeypatch):
    original = Trainer.train_epoch
    calls = []

    def failing(self, batches, total, desc="train"):
        calls.append(desc)
        if len(calls) == 3:
            raise RuntimeError("simulated failure in epoch 3")
        return original(self, batches, total, desc)

    monkeypatch.setattr(Trainer, "train_epoch", failing)
    out = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="simulated failure"):
        run_main("chickenpox", "-e", "5", "--max-batches", "5", "--output-dir", str(out))
    assert [r["epoch"] for r in read_csv(out / "per_epoch_stats.csv")] == ["0", "1"]
    system = read_csv(out / "system_stats.csv")
    assert len(system) >= 2 and all(r["Process_Memory_Used"] for r in system)
    assert not (out / "stats.csv").exists()


@pytest.mark.parametrize("argv, message", [
    (["--mode", "fast"], "argument -m/--mode: invalid choice: 'fast'"),
    (["--epochs", "many"], "argument -e/--epochs: expected a positive integer"),
    (["--gpu", "maybe"], "argument -g/--gpu: expected a boolean"),
    (["--model", "nope"], "error: --model: unknown model 'nope'"),
    (["--gpu", "True"], "error: --gpu: was given but no usable CUDA GPU"),
    (["-bs", "80"], "error: --batch-size: 80 is larger than the val split of chickenpox (51 windows)"),
    (["--split", "0.5", "0.2", "0.2"], "error: --split: ratios must sum to 1"),
    (["--memory-budget", "lots", "-m", "auto"], "argument --memory-budget: expected a size such as 512MB"),
    (["--model-option", "1x=2"], "argument --model-option: expected KEY=VALUE"),
    (["--config", "nowhere"], "error: --config: nowhere: no such file"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, message):
    if argv == ["--gpu", "True"] and torch.cuda.is_available():
        pytest.skip("a GPU is present, so --gpu is valid input here")
    with pytest.raises(SystemExit) as exc:
        status = run_main("chickenpox", *argv, "--output-dir", str(tmp_path / "o"))
        raise SystemExit(status)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unwritable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_main("chickenpox", "--output-dir", str(blocker / "run")) == 2
    assert "output directory" in capsys.readouterr().err


def test_missing_dataset_file_names_file_and_remedy(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "single_gpu_testing" / "metr_la_main.py"), "--data-dir", str(tmp_path),
         "--output-dir", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "metr-la.h5" in lines[0] and "download_data.py" in lines[0]
    assert "make_synthetic.py" in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "single_gpu_testing" / "metr_la_main.py"), "--data-dir", str(tmp_path),
         "--output-dir", str(tmp_path / "o"), "--debug"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_traffic_driver_masks_missing_readings(tmp_path):
    write_traffic(tmp_path / "data", timesteps=400, missing=0.3)
    out = tmp_path / "run"
    assert run_main("metr-la", "-e", "1", "-bs", "8", "--max-batches", "4", "--model", "dcrnn-cell",
                    "--data-dir", str(tmp_path / "data"), "--output-dir", str(out)) == 0
    s = read_csv(out / "stats.csv")[0]
    # speeds are ~60 mph: an unmasked MAE would include |pred - 0| terms of about 60
    assert 0 < float(s["test_mae"]) < 40
    assert s["test_mae_h12"] != "" and s["test_mae_h3"] != ""


@pytest.mark.parametrize("driver, dataset", [
    ("windmill_main.py", "windmill-large"),
    ("metr_la_main.py", "metr-la"),
    ("pems_bay_main.py", "pems-bay"),
    ("pems_all_la_main.py", "pems-all-la"),
    ("pems_main.py", "pems"),
])
def test_every_driver_trains_on_synthetic_data_of_its_format(tmp_path, driver, dataset):
    from pgti.datasets.registry import get_spec
    from pgti.datasets.synthetic import generate, min_timesteps

    generate(dataset, tmp_path / "data", nodes=12, timesteps=min_timesteps(get_spec(dataset)), progress=False)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "single_gpu_testing" / driver), "-e", "1", "-bs", "8", "--max-batches", "2",
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(out), "-m", "lazy-index"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    s = read_csv(out / "stats.csv")[0]
    assert s["dataset"] == dataset and float(s["test_mae"]) > 0
