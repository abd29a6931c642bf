"""Plots and the cross-run summary, from run directories written by the real writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pgti.errors import InputError
from pgti.observability.monitor import SYSTEM_STATS_COLUMNS
from pgti.observability.outputs import (
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    CsvAppender,
    write_config,
    write_stats,
)
from pgti.observability.rundir import RunDir
from pgti.observability.plots import plot_runs, summarize_runs, summary_markdown

REPO = Path(__file__).resolve().parents[1]


def fake_run(root: Path, mode: str, gpu: bool, scale: float, seconds: int = 20) -> Path:
    """A run directory as a finished run leaves it, with plausible numbers."""
    claimed = RunDir.claim_new(root, "chickenpox", f"{mode}-gpu" if gpu else mode)
    claimed.release()
    run_dir = claimed.path
    with CsvAppender(run_dir / "system_stats.csv", SYSTEM_STATS_COLUMNS) as system:
        for t in range(seconds):
            system.append({
                "Timestamp": f"2026-11-23 04:06:{t:02d}.000",
                "System_Memory_Used": 4000 + 30 * t * scale, "System_Memory_Total": 24000,
                "GPU_Memory_Used": 900 + 10 * t if gpu else None,
                "GPU_Memory_Total": 81559 if gpu else None,
                "Elapsed_s": float(t), "Process_Memory_Used": 300 + 20 * t * scale,
                "Process_Memory_Peak": 300 + 20 * t * scale,
                "Torch_GPU_Peak_Allocated": 500 + 5 * t if gpu else None,
                "Phase": "preprocessing" if t < 5 else "training",
            })  # fmt: skip
    with CsvAppender(run_dir / EPOCHS_FILE, EPOCH_COLUMNS) as epochs:
        for epoch in range(5):
            epochs.append({"epoch": epoch, "runtime": 3.0 * scale, "t_mae": 1.0 / (epoch + 1),
                           "v_mae": 1.1 / (epoch + 1), "train_batches": 10, "val_batches": 3})  # fmt: skip
    write_stats(run_dir / "stats.csv", {
        "preprocessing": 5.0 * scale, "training": 15.0 * scale, "total": 20.0 * scale,
        "t_mae": 0.2, "v_mae": 0.22, "system_memory_total": 24000, "max_system_mem": 4600,
        "gpu_memory_total": 81559 if gpu else None, "max_gpu_mem": 1090 if gpu else None,
        "dataset": "chickenpox", "mode": mode, "gpu": gpu, "model": "dcrnn", "epochs": 5,
        "batch_size": 32, "seed": 0, "max_process_mem": 300 + 20 * (seconds - 1) * scale,
        "test_mae": 0.25, "world_size": 1,
    })  # fmt: skip
    write_config(run_dir / "config.json", {"mode": mode, "gpu": gpu})
    return run_dir


@pytest.fixture
def two_runs(tmp_path):
    root = tmp_path / "results"
    return root, [fake_run(root, "base", False, 2.0), fake_run(root, "index", True, 1.0)]


def test_plot_runs_writes_three_nontrivial_pngs(two_runs, tmp_path):
    _, runs = two_runs
    paths = plot_runs(runs, tmp_path / "plots")
    assert [p.name for p in paths] == ["memory_over_time.png", "mae_per_epoch.png", "peak_memory_runtime.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000


def test_plot_a_run_missing_its_epoch_csv_plots_the_rest_and_names_the_file(two_runs, tmp_path):
    _, runs = two_runs
    (runs[0] / EPOCHS_FILE).unlink()
    notes = []
    written = plot_runs(runs, tmp_path / "plots", note=notes.append)
    assert len(notes) == 1 and str(runs[0]) in notes[0] and EPOCHS_FILE in notes[0]
    assert all(p.is_file() for p in written)


def test_plot_a_directory_holding_no_run_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a run directory"):
        plot_runs([tmp_path / "empty"], tmp_path / "plots")


def test_summary_has_a_row_per_run_joined_with_config(two_runs):
    root, runs = two_runs
    summary = summarize_runs(root)
    assert len(summary) == 2
    assert list(summary["mode"]) == ["base", "index"]
    assert set(summary["run_dir"]) == {str(r) for r in runs}
    assert summary["host"].notna().all() and "git_commit" in summary.columns
    table = summary_markdown(summary).splitlines()
    assert table[0].startswith("| dataset | mode | gpu | model | epochs | batch | preprocessing s")
    assert len(table) == 4 and "| chickenpox | index | True | dcrnn |" in table[3]


def test_summary_of_a_directory_without_runs_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no runs found"):
        summarize_runs(tmp_path)


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_summarize_cli_writes_csv_and_md_and_prints_the_table(two_runs, tmp_path):
    root, _ = two_runs
    done = run_script("summarize.py", str(root), "--out", str(tmp_path / "out" / "summary"))
    assert done.returncode == 0, done.stderr
    assert "| chickenpox | base |" in done.stdout
    assert len(pd.read_csv(tmp_path / "out" / "summary.csv")) == 2
    assert (tmp_path / "out" / "summary.md").read_text() == done.stdout


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    done = run_script("summarize.py", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "no runs found" in done.stderr
    done = run_script("plot_results.py", str(tmp_path / "missing"))
    assert done.returncode == 2 and "not a run directory" in done.stderr


def test_plot_cli_defaults_to_the_runs_common_parent(two_runs, tmp_path):
    _, runs = two_runs
    done = run_script("plot_results.py", str(runs[0]))
    assert done.returncode == 0, done.stderr
    printed = [Path(line) for line in done.stdout.split()]
    assert len(printed) == 3 and all(p.parent == runs[0].parent for p in printed)
