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
    HORIZONS,
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
    """One run directory's files, loaded, and what the plots call it."""

    path: Path
    stats: pd.DataFrame
    epochs: pd.DataFrame
    system: pd.DataFrame
    dataset: str | None
    mode: str | None  # with "-gpu" when the run trained on a GPU
    model: str | None
    max_batches: int | None  # --max-batches: batches per epoch and evaluation were capped
    missing: tuple[str, ...] = ()  # files a crashed or running run has not written
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = legend_name(self.dataset, self.mode, self.model, self.path)

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
        config = _config(path)
        args = config.get("args") if isinstance(config.get("args"), dict) else {}
        extra = config.get("extra") if isinstance(config.get("extra"), dict) else {}
        dataset = _first(stats, "dataset") or extra.get("dataset")
        mode = _first(stats, "mode") or args.get("mode")
        gpu = _first(stats, "gpu") if _first(stats, "mode") is not None else args.get("gpu")
        model = _first(stats, "model") or args.get("model")
        return cls(path, stats, epochs, system, dataset,
                   None if mode is None else mode_dir_name(mode, gpu), model,
                   _batch_cap(args.get("max_batches")), missing)  # fmt: skip


def _batch_cap(value: Any) -> int | None:
    """config.json's args.max_batches as a positive int, None when the run was not capped."""
    try:
        cap = int(value)
    except (TypeError, ValueError):
        return None
    return cap if cap > 0 and not isinstance(value, bool) else None


def _batches(count: int) -> str:
    return f"{count} batch{'' if count == 1 else 'es'}"


def capped_note(max_batches: int | None) -> str:
    """``(capped: 5 batches)`` for a run made with --max-batches 5; "" for a full run."""
    return "" if max_batches is None else f"(capped: {_batches(max_batches)})"


def legend_name(dataset: Any, mode: Any, model: Any, path: Path) -> str:
    """``dataset · mode · model``; the directory name when the files do not say."""
    if dataset is None or mode is None:
        return path.name
    return " · ".join([str(dataset), str(mode)] + ([] if model is None else [str(model)]))


def caps_note(runs: list[Run]) -> str:
    """A line saying which runs were capped with --max-batches ("" when none was)."""
    capped = [r for r in runs if r.max_batches is not None]
    if not capped:
        return ""
    if len(capped) == len(runs) and len({r.max_batches for r in runs}) == 1:
        return f"every run capped at {_batches(capped[0].max_batches)} per epoch and evaluation (--max-batches)"
    return "capped with --max-batches: " + ", ".join(f"{r.label} {capped_note(r.max_batches)}" for r in capped)


def _suptitle(fig, runs: list[Run]) -> None:
    note = caps_note(runs)
    if note:
        fig.suptitle(note, fontsize="small", color="#444444")


def load_runs(run_dirs: Sequence[str | os.PathLike]) -> list[Run]:
    """Load each run directory; repeats of one configuration are told apart by their directory."""
    if not run_dirs:
        raise InputError("no run directories given")
    runs = [Run.load(d) for d in run_dirs]
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
    for run in runs:
        if seen[run.label] > 1:
            run.label = f"{run.label} [{run.path.name}]"
    return runs


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in frame.columns:
        return None
    series = pd.to_numeric(frame[column], errors="coerce")
    return None if series.isna().all() else series


def _number(frame: pd.DataFrame, column: str) -> float | None:
    value = _first(frame, column)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def plot_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
              note: Callable[[str], None] | None = None) -> list[Path]:
    """Write memory_over_time.png, mae_per_epoch.png and peak_memory_runtime.png; return paths.
    ``note`` hears of each run whose files are incomplete (a crashed run has no stats.csv)."""
    runs = load_runs(run_dirs)
    for run in runs:
        if run.missing and note is not None:
            note(f"{run.path}: {', '.join(run.missing)} missing (the run did not finish); plotting what it left")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"output directory {out} is not writable: {exc}") from exc
    figures = {
        "memory_over_time.png": memory_figure(runs),
        "mae_per_epoch.png": mae_figure(runs),
        "peak_memory_runtime.png": peaks_figure(runs),
    }
    return [_save(fig, out / name) for name, fig in figures.items()]


def _save(fig, path: Path) -> Path:
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc
    return path


def _figure(width: float, height: float):
    """A Figure not registered with pyplot (nothing global to close), laid out without overlaps."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _color(i: int) -> str:
    return f"C{i % 10}"


# --- memory over time ---------------------------------------------------------------------------

PHASE_COLORS = {"preprocessing": "#f6c28b", "training": "#a6cee3", "evaluation": "#b2df8a"}
OTHER_PHASE_COLOR = "#d9d9d9"


def phase_spans(system: pd.DataFrame) -> list[tuple[str, float, float]]:
    """(phase, start s, end s) for each stretch of system_stats.csv rows with one ``Phase``.
    A stretch ends where the next begins (the monitor writes a row at every phase change), the
    last one at the last sample; rows before the first phase is set are left out."""
    t = _numeric(system, "Elapsed_s")
    if t is None or "Phase" not in system.columns:
        return []
    phases = system["Phase"].where(system["Phase"].notna(), "").astype(str).str.strip()
    spans: list[tuple[str, float, float]] = []
    current, start = None, None
    for phase, time in zip(phases, t):
        if pd.isna(time) or phase == current:
            continue
        if current:
            spans.append((current, start, float(time)))
        current, start = phase, float(time)
    end = t.max()
    if current and end > start:
        spans.append((current, start, float(end)))
    return spans


def memory_figure(runs: list[Run]):
    """Process-tree memory per run (own scale), a strip of each run's phases, whole-host memory
    below it, and GPU memory when recorded."""
    has_gpu = any(_numeric(r.system, "GPU_Memory_Used") is not None for r in runs)
    heights = [3.0, 0.35 * len(runs) + 0.6, 1.6] + ([2.2] if has_gpu else [])
    fig = _figure(12, sum(heights) + 0.8)
    _suptitle(fig, runs)
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    process, strip, host = axes[:3]
    gpu = axes[3] if has_gpu else None
    for i, run in enumerate(runs):
        color = _color(i)
        t = _numeric(run.system, "Elapsed_s")
        if t is None:
            continue
        used = _numeric(run.system, "Process_Memory_Used")
        if used is not None:
            peak_at = used.idxmax()
            process.plot(t, used, color=color, linewidth=1.8, label=f"{run.label}: peak {used.max():,.0f} MB")
            process.plot([t[peak_at]], [used[peak_at]], color=color, marker="o", markersize=5)
        system = _numeric(run.system, "System_Memory_Used")
        if system is not None:
            host.plot(t, system, color=color, linestyle="--", label=run.label)
        if gpu is not None:
            device = _numeric(run.system, "GPU_Memory_Used")
            torch_peak = _numeric(run.system, "Torch_GPU_Peak_Allocated")
            if device is not None:
                gpu.plot(t, device, color=color, label=f"{run.label}: NVML device use")
            if torch_peak is not None:
                gpu.plot(t, torch_peak, color=color, linestyle=":", label=f"{run.label}: torch peak allocated")
    process.set_title("Memory of each run's process tree (RSS of the run and its children; dot: peak)")
    process.set_ylabel("MB (MiB)")
    process.set_ylim(bottom=0)
    _legend_right(process)
    _phase_strip(strip, runs)
    host.set_title("Whole host memory in use (total − available: includes other processes and users)",
                   fontsize="medium")  # fmt: skip
    host.set_ylabel("MB (MiB)")
    _legend_right(host)
    if gpu is not None:
        gpu.set_title("GPU memory (NVML device use solid, torch peak allocated dotted)", fontsize="medium")
        gpu.set_ylabel("MB (MiB)")
        _legend_right(gpu)
    axes[-1].set_xlabel("elapsed since the run started (s)")
    for ax in (process, host, *([gpu] if gpu is not None else [])):
        ax.grid(alpha=0.3)
    return fig


def _phase_strip(ax, runs: list[Run]) -> None:
    """One row per run, its phases as shaded spans."""
    from matplotlib.patches import Patch

    seen: dict[str, str] = {}
    for row, run in enumerate(runs):
        for phase, start, end in phase_spans(run.system):
            color = PHASE_COLORS.get(phase, OTHER_PHASE_COLOR)
            seen.setdefault(phase, color)
            ax.broken_barh([(start, end - start)], (row - 0.4, 0.8), facecolors=color, edgecolor="white",
                           label=f"{run.label}: {phase}")  # fmt: skip
    ax.set_yticks(range(len(runs)), [r.label for r in runs], fontsize="small")
    ax.set_ylim(len(runs) - 0.5, -0.5)  # first run on top, as in the legends
    ax.set_title("Phases (the Phase column of system_stats.csv)", fontsize="medium")
    ax.tick_params(axis="y", length=0)
    if seen:
        handles = [Patch(facecolor=c, label=p) for p, c in seen.items()]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", frameon=False)
    else:
        ax.text(0.5, 0.5, "no phases recorded", transform=ax.transAxes, ha="center", va="center")


def _legend_right(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", frameon=False)


# --- MAE per epoch --------------------------------------------------------------------------------

BASELINE_LABELS = {"last_value": "last-value", "historical_average": "historical-average"}
BASELINE_STYLES = {"last_value": ("#444444", ":"), "historical_average": ("#888888", "-.")}


def _mae_curves(run: Run) -> tuple[tuple[float, ...], ...] | None:
    """(epochs, train MAE, validation MAE) as tuples, or None without per-epoch rows."""
    epoch = _numeric(run.epochs, "epoch")
    if epoch is None:
        return None
    columns = [epoch] + [_numeric(run.epochs, c) for c in ("t_mae", "v_mae")]
    return tuple(() if c is None else tuple(float(v) for v in c) for c in columns)


def coinciding_groups(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by identical per-epoch curves (the same epochs, and bit-for-bit the same
    train and validation MAE, as base, index and lazy-index give for one seed), in first-seen
    order; runs without per-epoch rows are left out."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        curves = _mae_curves(run)
        if curves is None:
            continue
        # NaN != NaN, so key on the repr of each value: identical floats give identical text.
        key = tuple(tuple(repr(v) for v in c) for c in curves)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def group_label(group: list[Run]) -> str:
    """One run's label, or for coinciding runs ``dataset · base ≡ index · model`` (the shared
    parts said once), else every label joined by ≡."""
    if len(group) == 1:
        return group[0].label
    first = group[0]
    same = all((r.dataset, r.model, r.max_batches) == (first.dataset, first.model, first.max_batches)
               and r.dataset is not None and r.mode is not None for r in group)  # fmt: skip
    if same and len({r.mode for r in group}) == len(group):
        modes = " ≡ ".join(str(r.mode) for r in group)
        return legend_name(first.dataset, modes, first.model, first.path)
    return " ≡ ".join(r.label for r in group)


def mae_figure(runs: list[Run]):
    """Train (solid) and validation (dashed) MAE per epoch, one colour per group of coinciding
    runs; each group's test MAE as a star at its best epoch; the naive baselines' test MAE as
    horizontal lines."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(10, 7)
    _suptitle(fig, runs)
    ax = fig.subplots()
    color_of = {id(run): _color(i) for i, run in enumerate(runs)}
    last_epoch = 1
    for group in coinciding_groups(runs):
        epochs, train, val = _mae_curves(group[0])
        x = [e + 1 for e in epochs]  # per_epoch_stats.csv counts from 0; the plot from 1
        last_epoch = max([last_epoch, *x])
        color = color_of[id(group[0])]
        name = group_label(group)
        if len(group) > 1:
            name += " (identical)"
        size = 9 if len(x) == 1 else 4  # a one-epoch run is a point: make it one you can see
        for values, style, marker, what in ((train, "-", "o", "train"), (val, "--", "s", "validation")):
            if values:
                ax.plot(x, values, color=color, linestyle=style, marker=marker, markersize=size,
                        label=f"{name}: {what} MAE")  # fmt: skip
        tests = {(_number(r.stats, "test_mae"), _number(r.stats, "best_epoch")) for r in group}
        # one star for the group when its runs agree on the test too, else one per run
        for run in group if len(tests) > 1 else group[:1]:
            test, best = _number(run.stats, "test_mae"), _number(run.stats, "best_epoch")
            if test is None:
                continue
            at = best + 1 if best is not None else x[-1]
            where = "weights of the best epoch" if best is not None else "final weights"
            ax.plot([at], [test], color=color, marker="*", markersize=14, markeredgecolor="black",
                    markeredgewidth=0.6, linestyle="none",
                    label=f"{name if len(tests) == 1 else run.label}: test MAE {test:.4g} ({where})")  # fmt: skip
    several_datasets = len({r.dataset for r in runs}) > 1
    baselines = baseline_maes(runs)
    for (dataset, baseline, value), found_in in baselines.items():
        color, style = BASELINE_STYLES[baseline]
        where = f" ({dataset})" if several_datasets else ""
        if sum(1 for d, b, _ in baselines if (d, b) == (dataset, baseline)) > 1:  # e.g. capped runs
            where += f" of {', '.join(r.label for r in found_in)}"
        ax.axhline(value, color=color, linestyle=style, linewidth=1.5,
                   label=f"{BASELINE_LABELS[baseline]} baseline{where}: test MAE {value:.4g}")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlim(0.5, last_epoch + 0.5)
    datasets = sorted({str(r.dataset) for r in runs if r.dataset is not None})
    ax.set_title(f"MAE per epoch{' on ' + ', '.join(datasets) if datasets else ''}\n"
                 "train solid, validation dashed; ★ the model's test MAE; "
                 "horizontal lines: naive baselines' test MAE",
                 fontsize="medium")  # fmt: skip
    ax.set_xlabel("epoch (1 = first; per_epoch_stats.csv counts from 0)")
    ax.set_ylabel("MAE (target units)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize="small", frameon=False)
    else:
        ax.text(0.5, 0.5, "no per-epoch rows", transform=ax.transAxes, ha="center", va="center")
    return fig


def baseline_maes(runs: list[Run]) -> dict[tuple[Any, str, float], list[Run]]:
    """{(dataset, baseline, test MAE over all horizons): the runs whose stats.csv gives it}, for
    the runs that have the columns (those made before the baselines existed have not). Runs of
    one dataset and split share a value; a capped run, evaluated on fewer windows, may not."""
    found: dict[tuple[Any, str, float], list[Run]] = {}
    for run in runs:
        for baseline in BASELINE_LABELS:
            value = _number(run.stats, f"test_mae_{baseline}")
            if value is not None:
                found.setdefault((run.dataset, baseline, value), []).append(run)
    return found


# --- peak memory and runtime ----------------------------------------------------------------------


def _peak_process_mb(run: Run) -> float | None:
    value = _number(run.stats, "max_process_mem")
    if value is None:
        series = _numeric(run.system, "Process_Memory_Used")
        value = None if series is None else float(series.max())
    return value


def _base_peak(run: Run, runs: list[Run]) -> float | None:
    """Peak memory of the base run with the same dataset, model and cap, to compare with."""
    for other in runs:
        if (other.mode == "base" and other is not run
                and (other.dataset, other.model, other.max_batches) == (run.dataset, run.model, run.max_batches)):
            return _peak_process_mb(other)
    return None


def peaks_figure(runs: list[Run]):
    """Bars of peak process-tree memory (with the ratio to the matching base run) and of runtime
    split into preprocessing, training and the rest; every bar carries its value."""
    from matplotlib.patches import Patch

    fig = _figure(max(9, 2.4 * len(runs) + 3), 5)
    _suptitle(fig, runs)
    mem, time_ax = fig.subplots(1, 2)
    x = list(range(len(runs)))
    colors = [_color(i) for i in x]
    ticks = [r.label.replace(" · ", "\n") for r in runs]
    peaks = [_peak_process_mb(r) for r in runs]
    bars = mem.bar(x, [p or 0.0 for p in peaks], color=colors)
    labels = []
    for run, peak in zip(runs, peaks):
        if peak is None:
            labels.append("not recorded")
            continue
        base = _base_peak(run, runs)
        ratio = f"\n{peak / base:.2f}× base" if base and run.mode != "base" else ""
        labels.append(f"{peak:,.0f} MB{ratio}")
    mem.bar_label(bars, labels, padding=3, fontsize="small")
    mem.set_title("Peak memory of the run's process tree")
    mem.set_ylabel("MB (MiB)")

    parts = [(c, [_number(r.stats, c) for r in runs]) for c in ("preprocessing", "training")]
    totals = [_number(r.stats, "total") for r in runs]
    bottom = [0.0] * len(runs)
    for (column, values), alpha, hatch in zip(parts, (0.45, 1.0), ("//", None)):
        heights = [v or 0.0 for v in values]
        time_ax.bar(x, heights, bottom=bottom, color=colors, alpha=alpha, hatch=hatch, edgecolor="white",
                    label=column)  # fmt: skip
        bottom = [b + h for b, h in zip(bottom, heights)]
    rest = [max(t - b, 0.0) if t is not None else 0.0 for t, b in zip(totals, bottom)]
    stack = time_ax.bar(x, rest, bottom=bottom, color=colors, alpha=0.2, edgecolor="grey",
                        label="evaluation and the rest")  # fmt: skip
    time_ax.bar_label(stack, ["no stats.csv" if t is None else f"{t:,.1f} s" for t in totals],
                      padding=3, fontsize="small")  # fmt: skip
    time_ax.set_title("Runtime (total on top)")
    time_ax.set_ylabel("seconds")
    fig.legend(handles=[Patch(facecolor="grey", alpha=0.45, hatch="//", edgecolor="white", label="preprocessing"),
                            Patch(facecolor="grey", label="training"),
                            Patch(facecolor="grey", alpha=0.2, edgecolor="grey", label="evaluation and the rest")],
                   fontsize="small", loc="outside lower center", ncol=3, frameon=False,
                   title="runtime:", title_fontsize="small")  # fmt: skip
    for ax in (mem, time_ax):
        ax.set_xticks(x, ticks, fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.2)  # room for the labels above the bars
    return fig


# --- summary across runs -----------------------------------------------------------------------

SUMMARY_TABLE = (
    # (markdown header, column in summary.csv, decimals, shown even when empty in every row)
    ("run", "run", None, True),
    ("dataset", "dataset", None, True),
    ("mode", "mode", None, True),
    ("gpu", "gpu", None, True),
    ("model", "model", None, True),
    ("epochs", "epochs", 0, True),
    ("batch", "batch_size", 0, True),
    ("best epoch", "best_epoch", 0, False),
    ("preprocessing s", "preprocessing", 2, True),
    ("training s", "training", 2, True),
    ("total s", "total", 2, True),
    ("t_mae", "t_mae", 4, True),
    ("v_mae", "v_mae", 4, True),
    ("test_mae", "test_mae", 4, True),
    *((f"test_mae_h{h}", f"test_mae_h{h}", 4, False) for h in HORIZONS),
    *((f"skill_h{h}", f"test_skill_h{h}", 3, False) for h in HORIZONS),
    ("last-value test_mae", "test_mae_last_value", 4, False),
    ("hist-avg test_mae", "test_mae_historical_average", 4, False),
    ("max_process_mem MB", "max_process_mem", 1, True),
    ("max_gpu_mem MB", "max_gpu_mem", 1, False),
)
"""The markdown table's columns. Optional ones appear when some run has them: a horizon only
when it is <= the dataset's L, baselines and skill only for runs made since they exist."""
CONFIG_SUMMARY_COLUMNS = ("created", "host", "devices", "git_commit", "git_dirty", "command", "max_batches")


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
    args = config.get("args") if isinstance(config.get("args"), dict) else {}
    devices = config.get("devices")
    return {
        "created": config.get("created"),
        "host": config.get("host"),
        "devices": ";".join(devices) if isinstance(devices, list) else devices,
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "command": config.get("command"),
        "max_batches": _batch_cap(args.get("max_batches")),
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
            record["run"] = _run_name(path.parent, Path(results_root))
            record["run_dir"] = str(path.parent)
            record.update(_config_fields(path.parent))
            rows.append(record)
    summary = pd.DataFrame(rows)
    ordered = [c for c in ("run", *STATS_COLUMNS, "run_dir", *CONFIG_SUMMARY_COLUMNS) if c in summary.columns]
    summary = summary[ordered + [c for c in summary.columns if c not in ordered]]
    keys = [c for c in ("dataset", "mode", "gpu", "run_dir") if c in summary.columns]
    return summary.sort_values(keys, key=lambda s: s.astype(str), kind="stable").reset_index(drop=True)


def _run_name(run_dir: Path, root: Path) -> str:
    """The run directory relative to the results root (its own name when it is the root)."""
    try:
        name = run_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        name = str(run_dir)
    return run_dir.resolve().name if name == "." else name


def _format(value: Any, decimals: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if decimals is not None:
        try:
            return f"{float(value):.{decimals}f}"
        except (TypeError, ValueError):
            pass
    return str(value).replace("|", "\\|")


def _present(value: Any) -> bool:
    return not (value is None or (isinstance(value, float) and math.isnan(value)) or value == "")


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table (the columns of SUMMARY_TABLE; optional ones only where
    some run has a value), the run column marking capped runs, and a note on what is read how."""
    records = summary.to_dict("records")
    table = [(header, column, decimals) for header, column, decimals, always in SUMMARY_TABLE
             if always or any(_present(r.get(column)) for r in records)]  # fmt: skip
    headers = [h for h, _, _ in table]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    capped = False
    for record in records:
        record = dict(record)
        cap = _batch_cap(record.get("max_batches"))
        name = record.get("run") if _present(record.get("run")) else record.get("run_dir")
        record["run"] = " ".join(str(p) for p in (name, capped_note(cap)) if _present(p))
        capped = capped or cap is not None
        cells = [_format(record.get(column), decimals) for _, column, decimals in table]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["MB = MiB. MAE in the target's units; t_mae and v_mae are the lowest over the epochs."]
    if any(column.startswith("test_skill_") for _, column, _ in table):
        notes.append("skill_h{h} = 1 - test_mae_h{h} / the last-value baseline's test MAE at horizon h "
                     "(above 0: better than repeating the last reading).")  # fmt: skip
    if capped:
        notes.append("capped: run with --max-batches, every epoch and evaluation cut to that many "
                     "batches; its numbers are for a smoke run, not comparable with full runs.")  # fmt: skip
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


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
