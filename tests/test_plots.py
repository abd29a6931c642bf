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
    STATS_COLUMNS,
    CsvAppender,
    rewrite_csv,
    write_config,
)
from pgti.observability.rundir import RunDir
from pgti.observability.plots import (
    load_runs,
    mae_figure,
    memory_figure,
    peaks_figure,
    phase_spans,
    plot_runs,
    summarize_runs,
    summary_markdown,
)

REPO = Path(__file__).resolve().parents[1]


BASELINE_COLUMNS = (
    "best_epoch", "test_mae_last_value", "test_mae_historical_average",
    *(f"test_mae_h{h}_{b}" for b in ("last_value", "historical_average") for h in (3, 6, 12)),
    *(f"test_skill_h{h}" for h in (3, 6, 12)),
)  # fmt: skip
"""stats.csv columns that runs made before the naive baselines existed lack."""


def fake_run(root: Path, mode: str, gpu: bool, scale: float, seconds: int = 20, *, epochs: int = 5,
             curve: float = 1.0, baselines: bool = False, max_batches: int | None = None,
             dataset: str = "chickenpox", model: str = "dcrnn") -> Path:
    """A run directory as a finished run leaves it, with plausible numbers. ``curve`` scales the
    per-epoch MAE (runs with one ``curve`` have identical curves, as base and index do);
    ``baselines`` writes the naive baselines' columns (horizon 3 only: chickenpox has L = 4);
    without it stats.csv lacks them, as an older run's does."""
    claimed = RunDir.claim_new(root, dataset, f"{mode}-gpu" if gpu else mode)
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
                "Phase": ("" if t == 0 else "preprocessing" if t < 5
                          else "training" if t < seconds - 2 else "evaluation"),
            })  # fmt: skip
    with CsvAppender(run_dir / EPOCHS_FILE, EPOCH_COLUMNS) as rows:
        for epoch in range(epochs):
            rows.append({"epoch": epoch, "runtime": 3.0 * scale, "t_mae": curve / (epoch + 1),
                         "v_mae": 1.1 * curve / (epoch + 1), "train_batches": 10, "val_batches": 3})  # fmt: skip
    stats = {
        "preprocessing": 5.0 * scale, "training": 15.0 * scale, "total": 20.0 * scale,
        "t_mae": 0.2, "v_mae": 0.22, "system_memory_total": 24000, "max_system_mem": 4600,
        "gpu_memory_total": 81559 if gpu else None, "max_gpu_mem": 1090 if gpu else None,
        "dataset": dataset, "mode": mode, "gpu": gpu, "model": model, "epochs": epochs,
        "batch_size": 32, "seed": 0, "max_process_mem": 300 + 20 * (seconds - 1) * scale,
        "test_mae": 0.25, "test_mae_h3": 0.24, "world_size": 1,
    }  # fmt: skip
    if baselines:
        stats.update({"best_epoch": epochs - 1, "test_mae_last_value": 0.4, "test_mae_historical_average": 0.5,
                      "test_mae_h3_last_value": 0.32, "test_mae_h3_historical_average": 0.5,
                      "test_skill_h3": 1 - 0.24 / 0.32})  # fmt: skip
        columns = list(dict.fromkeys([*STATS_COLUMNS, *BASELINE_COLUMNS]))
    else:
        columns = [c for c in STATS_COLUMNS if c not in BASELINE_COLUMNS]
    rewrite_csv(run_dir / "stats.csv", columns, [stats])
    write_config(run_dir / "config.json", {"mode": mode, "gpu": gpu, "model": model, "max_batches": max_batches})
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
    assert table[0].startswith("| run | dataset | mode | gpu | model | epochs | batch | preprocessing s")
    assert table[3].startswith(f"| chickenpox/index-gpu/{runs[1].name} | chickenpox | index | True | dcrnn |")
    assert table[4] == ""  # the table ends; notes follow


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


# --- what each plot shows (read from the matplotlib objects, not the pixels) -------------------


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def labelled_lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_legends_name_dataset_mode_and_model(tmp_path):
    root = tmp_path / "results"
    runs = load_runs([
        fake_run(root, "base", False, 2.0, curve=1.0),
        fake_run(root, "index", True, 1.0, curve=2.0, dataset="pedalme", model="dcrnn-cell"),
    ])  # fmt: skip
    process = memory_figure(runs).axes[0]
    assert legend_texts(process) == ["chickenpox · base · dcrnn: peak 1,060 MB",
                                     "pedalme · index-gpu · dcrnn-cell: peak 680 MB"]  # fmt: skip
    mae = legend_texts(mae_figure(runs).axes[0])
    assert "chickenpox · base · dcrnn: train MAE" in mae
    assert "pedalme · index-gpu · dcrnn-cell: validation MAE" in mae
    memory_bars = peaks_figure(runs).axes[0]
    assert [t.get_text() for t in memory_bars.get_xticklabels()] == ["chickenpox\nbase\ndcrnn",
                                                                     "pedalme\nindex-gpu\ndcrnn-cell"]  # fmt: skip


def test_coinciding_curves_are_drawn_once_and_labelled_as_identical(tmp_path):
    root = tmp_path / "results"
    same = [fake_run(root, mode, False, 1.0, curve=1.0) for mode in ("base", "index", "lazy-index")]
    other = fake_run(root, "base", False, 1.0, curve=1.0 + 1e-12, model="dcrnn-cell")  # one ulp-ish off
    ax = mae_figure(load_runs([*same, other])).axes[0]
    train = {label for label in labelled_lines(ax) if label.endswith("train MAE")}
    assert train == {"chickenpox · base ≡ index ≡ lazy-index · dcrnn (identical): train MAE",
                     "chickenpox · base · dcrnn-cell: train MAE"}  # fmt: skip


def test_runs_of_different_datasets_with_equal_curves_are_joined_by_their_full_names(tmp_path):
    root = tmp_path / "results"
    runs = [fake_run(root, "base", False, 1.0), fake_run(root, "index", False, 1.0, dataset="pedalme")]
    labels = labelled_lines(mae_figure(load_runs(runs)).axes[0])
    assert "chickenpox · base · dcrnn ≡ pedalme · index · dcrnn (identical): train MAE" in labels


def test_a_one_epoch_run_is_a_visible_point_on_integer_epoch_ticks(tmp_path):
    run = fake_run(tmp_path / "results", "index", False, 1.0, epochs=1)
    ax = mae_figure(load_runs([run])).axes[0]
    train = labelled_lines(ax)["chickenpox · index · dcrnn: train MAE"]
    assert list(train.get_xdata()) == [1] and train.get_marker() == "o" and train.get_markersize() >= 8
    low, high = ax.get_xlim()
    assert low < 1 < high
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks == [1.0]


def test_epoch_ticks_are_integers_for_a_longer_run(tmp_path):
    run = fake_run(tmp_path / "results", "index", False, 1.0, epochs=7)
    ax = mae_figure(load_runs([run])).axes[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks)


def test_mae_plot_draws_the_baselines_from_stats_csv_when_it_has_them(tmp_path):
    root = tmp_path / "results"
    runs = load_runs([fake_run(root, "base", False, 1.0, baselines=True),
                      fake_run(root, "index", False, 1.0, baselines=True)])  # fmt: skip
    lines = labelled_lines(mae_figure(runs).axes[0])
    last_value = lines["last-value baseline: test MAE 0.4"]
    average = lines["historical-average baseline: test MAE 0.5"]
    assert list(last_value.get_ydata()) == [0.4, 0.4] and list(average.get_ydata()) == [0.5, 0.5]
    star = lines["chickenpox · base ≡ index · dcrnn (identical): test MAE 0.25 (weights of the best epoch)"]
    assert list(star.get_xdata()) == [5] and list(star.get_ydata()) == [0.25]  # best_epoch 4 counts from 0


def test_mae_plot_of_older_runs_without_baseline_columns_has_no_baseline_lines(tmp_path):
    root = tmp_path / "results"
    old = fake_run(root, "base", False, 1.0)
    assert "test_mae_last_value" not in pd.read_csv(old / "stats.csv").columns
    lines = labelled_lines(mae_figure(load_runs([old])).axes[0])
    assert not [label for label in lines if "baseline" in label]
    assert "chickenpox · base · dcrnn: test MAE 0.25 (final weights)" in lines


def test_baselines_of_two_datasets_are_named_by_dataset(tmp_path):
    root = tmp_path / "results"
    runs = [fake_run(root, "base", False, 1.0, baselines=True),
            fake_run(root, "base", False, 1.0, baselines=True, dataset="pedalme", curve=2.0)]  # fmt: skip
    labels = labelled_lines(mae_figure(load_runs(runs)).axes[0])
    assert "last-value baseline (chickenpox): test MAE 0.4" in labels
    assert "last-value baseline (pedalme): test MAE 0.4" in labels


def test_peak_memory_and_runtime_bars_carry_their_values(tmp_path):
    root = tmp_path / "results"
    runs = load_runs([fake_run(root, "base", False, 2.0), fake_run(root, "index", False, 1.0)])
    memory, runtime = peaks_figure(runs).axes
    assert [t.get_text() for t in memory.texts] == ["1,060 MB", "680 MB\n0.64× base"]
    assert [t.get_text() for t in runtime.texts] == ["40.0 s", "20.0 s"]


def test_a_crashed_run_gets_a_bar_that_says_what_is_missing(two_runs):
    _, dirs = two_runs
    (dirs[0] / "stats.csv").unlink()
    memory, runtime = peaks_figure(load_runs(dirs)).axes
    assert memory.texts[0].get_text() == "1,060 MB"  # from system_stats.csv
    assert runtime.texts[0].get_text() == "no stats.csv"


def test_phase_spans_follow_the_phase_column():
    system = pd.DataFrame({
        "Elapsed_s": [0.0, 0.1, 1.0, 2.0, 3.0, 3.5, 4.0],
        "Phase": [None, "preprocessing", "preprocessing", "training", "training", "evaluation", "evaluation"],
    })  # fmt: skip
    assert phase_spans(system) == [("preprocessing", 0.1, 2.0), ("training", 2.0, 3.5), ("evaluation", 3.5, 4.0)]
    assert phase_spans(system.drop(columns="Phase")) == []


def test_memory_plot_shades_the_phases_and_keeps_the_process_tree_on_its_own_scale(two_runs):
    _, dirs = two_runs
    fig = memory_figure(load_runs(dirs))
    process, strip, host, gpu = fig.axes
    shaded = [c for c in strip.collections if c.get_label().endswith(("preprocessing", "training", "evaluation"))]
    assert len(shaded) == 6  # three phases for each of the two runs
    assert legend_texts(strip) == ["preprocessing", "training", "evaluation"]
    process_peak, host_low = 1060, 4000  # fake_run: the process tree peaks far below the host's use
    assert process.get_ylim()[1] < 1.2 * process_peak < host_low <= host.get_ylim()[1]
    assert {line.get_linestyle() for line in host.get_lines()} == {"--"}
    assert "includes other processes and users" in host.get_title()
    assert gpu.get_ylabel() == "MB (MiB)"


# --- the summary table --------------------------------------------------------------------------


def test_summary_markdown_shows_horizons_skill_run_names_and_marks_capped_runs(tmp_path):
    root = tmp_path / "results"
    full = fake_run(root, "index", False, 1.0, baselines=True)
    capped = fake_run(root, "base", False, 1.0, baselines=True, max_batches=5)
    table = summary_markdown(summarize_runs(root)).splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert {"test_mae_h3", "skill_h3", "last-value test_mae", "hist-avg test_mae", "best epoch"} <= set(header)
    assert "test_mae_h6" not in header and "skill_h12" not in header  # chickenpox's L = 4: no such horizon
    rows = {row.split("|")[1].strip(): dict(zip(header, (c.strip() for c in row.strip("|").split("|"))))
            for row in table[2:4]}  # fmt: skip
    assert set(rows) == {f"chickenpox/base/{capped.name} (capped: 5 batches)", f"chickenpox/index/{full.name}"}
    row = rows[f"chickenpox/index/{full.name}"]
    assert row["test_mae_h3"] == "0.2400" and row["skill_h3"] == "0.250" and row["last-value test_mae"] == "0.4000"
    notes = "\n".join(table[4:])
    assert "skill_h{h} = 1 - test_mae_h{h} / the last-value baseline" in notes and "capped:" in notes


def test_summary_markdown_of_older_runs_has_no_baseline_columns_and_no_cap_note(two_runs):
    root, _ = two_runs
    table = summary_markdown(summarize_runs(root))
    header = table.splitlines()[0]
    assert "test_mae_h3" in header and "skill" not in header and "last-value" not in header
    assert "capped" not in table


# --- the quick start ----------------------------------------------------------------------------


def test_quickstart_metr_la_step_holds_half_a_gigabyte_in_base_mode(tmp_path):
    """The quick start must show the memory saving: its METR-LA-shaped base run holds >= 0.5 GiB
    of windows. The sizes are read from the script's own commands (--dry-run runs nothing); the
    bytes base holds are checked against the real BaseStorage on a tiny series of the same set."""
    import shlex

    from pgti.data.loader import prepare
    from pgti.datasets.registry import get_spec
    from pgti.datasets.synthetic import generate, min_timesteps

    done = subprocess.run(["bash", str(REPO / "scripts" / "quickstart.sh"), "--dry-run"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line[2:]) for line in done.stdout.splitlines() if line.startswith("+ ")]

    def flag(argv: list[str], name: str) -> str:
        return argv[argv.index(name) + 1]

    make = [c for c in commands if c[1].endswith("make_synthetic.py")]
    assert len(make) == 1 and flag(make[0], "--dataset") == "metr-la"
    nodes, steps = int(flag(make[0], "--nodes")), int(flag(make[0], "--timesteps"))
    data_dir = flag(make[0], "--data-dir")
    trains = [c for c in commands if c[1].endswith("metr_la_main.py")]
    assert sorted(flag(c, "--mode") for c in trains) == ["base", "index", "lazy-index"]
    for argv in trains:
        assert flag(argv, "--data-dir") == data_dir and flag(argv, "--model") == "dcrnn-cell"
        assert int(flag(argv, "--max-batches")) <= 20 and "--overwrite" in argv  # a rerun replaces its runs
    assert len({flag(c, "--output-dir") for c in trains}) == 3

    spec = get_spec("metr-la")
    lags = spec.lags

    def base_bytes(n: int, t: int, features: int) -> int:  # every (input, target) pair, float32
        return 2 * (t - 2 * lags + 1) * lags * n * features * 4

    tiny_t = min_timesteps(spec)
    generate("metr-la", tmp_path, nodes=3, timesteps=tiny_t, progress=False)
    tiny = prepare("metr-la", tmp_path, mode="base")
    assert tiny.storage.nbytes == base_bytes(3, tiny_t, tiny.num_features)
    assert nodes == 207 and base_bytes(nodes, steps, tiny.num_features) >= 2**29


def test_quickstart_refuses_an_unknown_argument():
    done = subprocess.run(["bash", str(REPO / "scripts" / "quickstart.sh"), "--bogus"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0


def test_runs_of_one_dataset_with_different_baseline_values_say_whose_line_is_whose(tmp_path):
    root = tmp_path / "results"
    full = fake_run(root, "base", False, 1.0, baselines=True)
    capped = fake_run(root, "index", False, 1.0, baselines=True, max_batches=2, curve=3.0)
    frame = pd.read_csv(capped / "stats.csv")
    frame["test_mae_last_value"] = 0.45  # a capped run evaluates fewer test windows
    rewrite_csv(capped / "stats.csv", list(frame.columns), frame.to_dict("records"))
    labels = labelled_lines(mae_figure(load_runs([full, capped])).axes[0])
    assert "last-value baseline of chickenpox · base · dcrnn: test MAE 0.4" in labels
    assert "last-value baseline of chickenpox · index · dcrnn: test MAE 0.45" in labels
    assert "historical-average baseline: test MAE 0.5" in labels  # the runs agree on this one


def test_coinciding_runs_whose_test_mae_differs_get_a_star_each(tmp_path):
    root = tmp_path / "results"
    base, index = fake_run(root, "base", False, 1.0), fake_run(root, "index", False, 1.0)
    frame = pd.read_csv(index / "stats.csv")
    frame["test_mae"] = 0.3
    rewrite_csv(index / "stats.csv", list(frame.columns), frame.to_dict("records"))
    labels = labelled_lines(mae_figure(load_runs([base, index])).axes[0])
    assert "chickenpox · base · dcrnn: test MAE 0.25 (final weights)" in labels
    assert "chickenpox · index · dcrnn: test MAE 0.3 (final weights)" in labels
