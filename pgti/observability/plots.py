"""Read runs back from their output files: comparison plots and a cross-run summary table.

A run directory holds stats.csv, per_epoch_stats.csv, system_stats.csv and config.json (outputs.py).
Everything here only reads those files, so it works on results copied from a cluster.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from pgti.errors import InputError
from pgti.observability.outputs import (
    CONFIG_FILE,
    EPOCHS_FILE,
    STATS_COLUMNS,
    STATS_FILE,
    SYSTEM_STATS_FILE,
    mode_dir_name,
)


def read_csv(path: Path) -> pd.DataFrame:
    """pandas.read_csv, with a missing or unreadable file reported as InputError naming it."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise InputError(f"{path}: cannot read as CSV: {exc}") from exc


def _first(frame: pd.DataFrame, column: str) -> Any:
    if column not in frame.columns or frame.empty:
        return None
    value = frame[column].iloc[0]
    return None if _missing(value) else value


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value)) or (isinstance(value, str) and not value.strip())


@dataclass
class Run:
    """One run directory's files, loaded."""

    path: Path
    stats: pd.DataFrame
    epochs: pd.DataFrame
    system: pd.DataFrame
    label: str
    missing: tuple[str, ...] = ()  # files a crashed or running run has not written

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        """Load what the run left: a run that crashed has no stats.csv (and a distributed one
        has system_stats_rank<r>.csv); what is missing is listed in ``missing``."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: not a run directory")
        system_file = path / SYSTEM_STATS_FILE
        if not system_file.is_file() and (path / "system_stats_rank0.csv").is_file():
            system_file = path / "system_stats_rank0.csv"
        files = {STATS_FILE: path / STATS_FILE, EPOCHS_FILE: path / EPOCHS_FILE, SYSTEM_STATS_FILE: system_file}
        missing = tuple(name for name, f in files.items() if not f.is_file())
        if len(missing) == len(files):
            raise InputError(f"{path}: not a run directory (none of {', '.join(files)} is there)")
        stats, epochs, system = (pd.DataFrame() if name in missing else read_csv(f) for name, f in files.items())
        dataset, mode = _first(stats, "dataset"), _first(stats, "mode")
        gpu = _first(stats, "gpu")
        if dataset is None or mode is None:
            config = _config(path)
            args = config.get("args") if isinstance(config.get("args"), dict) else {}
            extra = config.get("extra") if isinstance(config.get("extra"), dict) else {}
            dataset, mode, gpu = extra.get("dataset"), args.get("mode"), args.get("gpu")
        label = path.name if dataset is None or mode is None else f"{dataset}/{mode_dir_name(mode, gpu)}"
        return cls(path, stats, epochs, system, label, missing)


def _load_runs(run_dirs: Sequence[str | os.PathLike]) -> list[Run]:
    if not run_dirs:
        raise InputError("no run directories given")
    runs = [Run.load(d) for d in run_dirs]
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
    for run in runs:  # repeats of one configuration: tell them apart by their timestamp dir
        if seen[run.label] > 1:
            run.label = f"{run.label} ({run.path.name})"
    return runs


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in frame.columns:
        return None
    series = pd.to_numeric(frame[column], errors="coerce")
    return None if series.isna().all() else series


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
              note: Callable[[str], None] | None = None) -> list[Path]:
    """Write memory_over_time.png, mae_per_epoch.png and peak_memory_runtime.png; return paths.
    ``note`` hears of each run whose files are incomplete (a crashed run has no stats.csv)."""
    runs = _load_runs(run_dirs)
    for run in runs:
        if run.missing and note is not None:
            note(f"{run.path}: {', '.join(run.missing)} missing (the run did not finish); plotting what it left")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"output directory {out} is not writable: {exc}") from exc
    plt = _pyplot()
    colors = [f"C{i % 10}" for i in range(len(runs))]
    written = [
        _plot_memory(plt, runs, colors, out / "memory_over_time.png"),
        _plot_mae(plt, runs, colors, out / "mae_per_epoch.png"),
        _plot_peaks(plt, runs, colors, out / "peak_memory_runtime.png"),
    ]
    return written


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc
    finally:
        plt.close(fig)
    return path


def _plot_memory(plt, runs: list[Run], colors: list[str], path: Path) -> Path:
    has_gpu = any(_numeric(r.system, "GPU_Memory_Used") is not None for r in runs)
    fig, axes = plt.subplots(2 if has_gpu else 1, 1, figsize=(9, 7 if has_gpu else 4.5), squeeze=False)
    host, gpu = axes[0][0], axes[1][0] if has_gpu else None
    for run, color in zip(runs, colors):
        t = _numeric(run.system, "Elapsed_s")
        if t is None:
            continue
        process = _numeric(run.system, "Process_Memory_Used")
        system = _numeric(run.system, "System_Memory_Used")
        if process is not None:
            host.plot(t, process, color=color, label=f"{run.label} process")
        if system is not None:
            host.plot(t, system, color=color, linestyle="--", alpha=0.6, label=f"{run.label} host")
        if gpu is not None:
            used = _numeric(run.system, "GPU_Memory_Used")
            torch_peak = _numeric(run.system, "Torch_GPU_Peak_Allocated")
            if used is not None:
                gpu.plot(t, used, color=color, label=f"{run.label} GPU used")
            if torch_peak is not None:
                gpu.plot(t, torch_peak, color=color, linestyle=":", label=f"{run.label} torch peak")
    host.set_title("Memory over time (process tree solid, whole host dashed)")
    host.set_ylabel("MB (MiB)")
    host.set_xlabel("elapsed (s)")
    host.legend(fontsize="small")
    host.grid(alpha=0.3)
    if gpu is not None:
        gpu.set_title("GPU memory (NVML device use solid, torch peak allocated dotted)")
        gpu.set_ylabel("MB (MiB)")
        gpu.set_xlabel("elapsed (s)")
        gpu.legend(fontsize="small")
        gpu.grid(alpha=0.3)
    return _save(plt, fig, path)


def _plot_mae(plt, runs: list[Run], colors: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, color in zip(runs, colors):
        epoch = _numeric(run.epochs, "epoch")
        if epoch is None:
            continue
        for column, style in (("t_mae", "-"), ("v_mae", "--")):
            values = _numeric(run.epochs, column)
            if values is not None:
                ax.plot(epoch, values, color=color, linestyle=style, marker="o", markersize=3,
                        label=f"{run.label} {column}")  # fmt: skip
    ax.set_title("MAE per epoch (train solid, validation dashed)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MAE (target units)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def _peak_process_mb(run: Run) -> float:
    value = _first(run.stats, "max_process_mem")
    if value is None:
        series = _numeric(run.system, "Process_Memory_Used")
        value = None if series is None else series.max()
    return float("nan") if value is None else float(value)


def _plot_peaks(plt, runs: list[Run], colors: list[str], path: Path) -> Path:
    labels = [r.label for r in runs]
    peaks = [_peak_process_mb(r) for r in runs]
    totals = [float(v) if (v := _first(r.stats, "total")) is not None else float("nan") for r in runs]
    fig, (mem, time_ax) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(runs) + 4), 4.5))
    x = range(len(runs))
    mem.bar(x, peaks, color=colors)
    mem.set_title("Peak process-tree memory")
    mem.set_ylabel("MB (MiB)")
    time_ax.bar(x, totals, color=colors)
    time_ax.set_title("Total runtime")
    time_ax.set_ylabel("seconds")
    for ax in (mem, time_ax):
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


# --- summary across runs -----------------------------------------------------------------------

SUMMARY_TABLE = (
    # (markdown header, column in summary.csv, decimals)
    ("dataset", "dataset", None),
    ("mode", "mode", None),
    ("gpu", "gpu", None),
    ("model", "model", None),
    ("epochs", "epochs", 0),
    ("batch", "batch_size", 0),
    ("preprocessing s", "preprocessing", 2),
    ("training s", "training", 2),
    ("total s", "total", 2),
    ("t_mae", "t_mae", 4),
    ("v_mae", "v_mae", 4),
    ("test_mae", "test_mae", 4),
    ("max_process_mem MB", "max_process_mem", 1),
    ("max_gpu_mem MB", "max_gpu_mem", 1),
)
CONFIG_SUMMARY_COLUMNS = ("created", "host", "devices", "git_commit", "git_dirty", "command")


def find_stats(results_root: str | os.PathLike) -> list[Path]:
    root = Path(results_root)
    if not root.is_dir():
        raise InputError(f"{root}: results directory not found")
    return sorted(root.rglob(STATS_FILE))


def _config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as a dict ({} when absent)."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: not a pgti config.json (a JSON object)")
    return config


REQUIRED_STATS_COLUMNS = ("dataset", "mode", "total", "test_mae")
"""Columns without which a stats.csv is not one of ours."""


def _config_fields(run_dir: Path) -> dict[str, Any]:
    config = _config(run_dir)
    git = config.get("git") if isinstance(config.get("git"), dict) else {}
    devices = config.get("devices")
    return {
        "created": config.get("created"),
        "host": config.get("host"),
        "devices": ";".join(devices) if isinstance(devices, list) else devices,
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "command": config.get("command"),
    }


def summarize_runs(results_root: str | os.PathLike) -> pd.DataFrame:
    """One row per stats.csv under ``results_root``, joined with its config.json when present."""
    paths = find_stats(results_root)
    if not paths:
        raise InputError(f"{results_root}: no runs found (no {STATS_FILE} below it)")
    rows = []
    for path in paths:
        frame = read_csv(path)
        absent = [c for c in REQUIRED_STATS_COLUMNS if c not in frame.columns]
        if absent or frame.empty:
            what = f"it lacks the columns {', '.join(absent)}" if absent else "it has no row"
            raise InputError(f"{path} is not a pgti stats.csv ({what}); move it out of {results_root}")
        for record in frame.to_dict("records"):
            record["run_dir"] = str(path.parent)
            record.update(_config_fields(path.parent))
            rows.append(record)
    summary = pd.DataFrame(rows)
    ordered = [c for c in (*STATS_COLUMNS, "run_dir", *CONFIG_SUMMARY_COLUMNS) if c in summary.columns]
    summary = summary[ordered + [c for c in summary.columns if c not in ordered]]
    keys = [c for c in ("dataset", "mode", "gpu", "run_dir") if c in summary.columns]
    return summary.sort_values(keys, key=lambda s: s.astype(str), kind="stable").reset_index(drop=True)


def _format(value: Any, decimals: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if decimals is not None:
        try:
            return f"{float(value):.{decimals}f}"
        except (TypeError, ValueError):
            pass
    return str(value).replace("|", "\\|")


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table (the columns of SUMMARY_TABLE)."""
    headers = [h for h, _, _ in SUMMARY_TABLE]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for record in summary.to_dict("records"):
        cells = [_format(record.get(column), decimals) for _, column, decimals in SUMMARY_TABLE]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(summary: pd.DataFrame, prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<prefix>.csv`` and ``<prefix>.md``; return both paths."""
    prefix = Path(prefix)
    csv_path, md_path = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        summary.to_csv(csv_path, index=False)
        md_path.write_text(summary_markdown(summary))
    except OSError as exc:
        raise InputError(f"cannot write {csv_path} / {md_path}: {exc}") from exc
    return csv_path, md_path


def common_parent(run_dirs: Iterable[str | os.PathLike], fallback: str | os.PathLike) -> Path:
    """The directory the run dirs share as parent, else ``fallback``."""
    parents = {Path(d).resolve().parent for d in run_dirs}
    return parents.pop() if len(parents) == 1 else Path(fallback)
