"""The files a run leaves behind: their names, their columns, and how they are written.

Every CSV is appended to and flushed row by row, so the rows of finished epochs (and memory
samples) survive a crash later in the run. Column lists live here and nowhere else; see
README.md ("Outputs") for each column's unit.

Memory columns are in "MB" as the PGT-I artifact wrote them: bytes / 2**20 (that is, MiB).
"""

from __future__ import annotations

import csv
import datetime as _dt
import importlib.metadata
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pgti.errors import InputError

MB = 2**20
"""Bytes per "MB" in every output file (the artifact's psutil bytes / 1024**2, i.e. MiB)."""

STATS_FILE = "stats.csv"
EPOCHS_FILE = "per_epoch_stats.csv"
SYSTEM_STATS_FILE = "system_stats.csv"
CONFIG_FILE = "config.json"

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # written to milliseconds; pandas parses it as-is

HORIZONS = (3, 6, 12)
"""Reported horizons in steps (15/30/60 minutes at 5-minute steps); a run reports those <= L."""
BASELINES = ("last_value", "historical_average")
"""Naive forecasts every run is evaluated with (pgti.nn.baselines), as named in column suffixes."""

ARTIFACT_STATS_COLUMNS = (
    "preprocessing", "training", "total",
    "t_mae", "v_mae",
    "system_memory_total", "max_system_mem", "gpu_memory_total", "max_gpu_mem",
)  # fmt: skip
STATS_COLUMNS = ARTIFACT_STATS_COLUMNS + (
    "dataset", "mode", "gpu", "model", "epochs", "batch_size", "seed",
    "max_process_mem",
    "test_mae", "test_rmse", "test_mape",
    "test_mae_h3", "test_rmse_h3", "test_mape_h3",
    "test_mae_h6", "test_rmse_h6", "test_mape_h6",
    "test_mae_h12", "test_rmse_h12", "test_mape_h12",
    "t_mae_all_channels", "v_mae_all_channels",
    "world_size",
    "best_epoch",
    "test_mae_last_value", "test_mae_historical_average",
    *(f"test_{metric}_h{h}_{baseline}" for baseline in BASELINES for h in HORIZONS
      for metric in ("mae", "rmse", "mape")),
    *(f"test_skill_h{h}" for h in HORIZONS),
)  # fmt: skip
"""Columns of the one-row ``stats.csv``: the artifact's nine first, in its order, then ours.
The test metrics are those of the weights of ``best_epoch`` (lowest validation MAE); the
baselines' columns are named ``..._last_value`` and ``..._historical_average``, and
``test_skill_h{h}`` = 1 - model MAE / last-value MAE at horizon h."""

EPOCH_COLUMNS = (
    "epoch", "runtime", "t_mae", "v_mae", "t_mae_all_channels", "v_mae_all_channels",
    "train_batches", "val_batches", "samples_per_s", "max_process_mem", "lr", "data_wait_s",
)  # fmt: skip
"""Columns of ``per_epoch_stats.csv`` (EPOCHS_FILE), one row per finished epoch. ``data_wait_s``:
seconds the training pass waited for its batches (asking the storage, waiting for a read or a
fetch still under way, copying to the device)."""


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _check_keys(row: Mapping[str, Any], columns: Sequence[str], what: str) -> None:
    unknown = [k for k in row if k not in columns]
    if unknown:
        raise ValueError(f"unknown {what} column(s) {unknown}; known columns: {list(columns)}")


class CsvAppender:
    """Append dict rows to a CSV, one flushed line at a time.

    The header is written when the file is new or empty; appending to a file whose header differs
    raises InputError (two different tables must not share a file). Keys not in ``columns`` raise
    ValueError (a typo would otherwise lose a number silently); missing keys are written empty.
    ``fsync_every`` > 0 also forces rows to disk every that many rows.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], fsync_every: int = 0):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.fsync_every = fsync_every
        self.rows_written = 0
        header = ",".join(self.columns)
        try:
            existing = self.path.stat().st_size if self.path.exists() else 0
            if existing:
                with open(self.path, newline="") as f:
                    first = f.readline().rstrip("\r\n")
                if first != header:
                    raise InputError(
                        f"{self.path} already exists with a different header "
                        f"({first[:80]!r}); use a new output directory"
                    )
            self._file = open(self.path, "a", newline="")
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc}") from exc
        self._writer = csv.writer(self._file)
        if not existing:
            self._writer.writerow(self.columns)
            self._file.flush()

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row and flush it to the OS before returning."""
        _check_keys(row, self.columns, self.path.name)
        try:
            self._writer.writerow([_cell(row.get(c)) for c in self.columns])
            self._file.flush()
            self.rows_written += 1
            if self.fsync_every > 0 and self.rows_written % self.fsync_every == 0:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            try:
                os.fsync(self._file.fileno())
            except OSError:
                pass
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> "CsvAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_stats(path: str | os.PathLike, row: Mapping[str, Any]) -> Path:
    """Write the one-row ``stats.csv`` (header + row), replacing any earlier one.

    Keys must be among STATS_COLUMNS (ValueError otherwise); missing ones are written empty.
    """
    _check_keys(row, STATS_COLUMNS, STATS_FILE)
    return rewrite_csv(path, STATS_COLUMNS, [row])  # a crash mid-write leaves the old file or the new


# --- config.json -------------------------------------------------------------------------------

VERSIONED_DISTRIBUTIONS = (
    "torch", "torch-geometric", "torch-geometric-temporal", "numpy", "pandas", "h5py",
    "dask", "distributed", "psutil", "nvidia-ml-py", "matplotlib", "pgti",
)  # fmt: skip


def package_versions(names: Iterable[str] = VERSIONED_DISTRIBUTIONS) -> dict[str, str | None]:
    """Installed version of each distribution (None if absent), read from metadata, no imports."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(repo_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the checkout holding the pgti package.

    Both None when the package is not inside a git checkout (an installed wheel, or no git):
    the package directory must be directly under the repository's top level, so a venv that
    happens to sit inside some other checkout does not report that checkout's commit.
    """
    pkg_dir = Path(__file__).resolve().parents[1]  # .../pgti
    root = Path(repo_dir) if repo_dir is not None else pkg_dir.parent
    none = {"commit": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or (repo_dir is None and Path(top).resolve() != pkg_dir.parent):
        return none
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return none
    status = git("status", "--porcelain")  # untracked files count: new code changes a run too
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine_info() -> dict[str, Any]:
    """Host, platform, CPU, RAM and device names: what a result needs to be comparable."""
    import psutil

    from pgti.observability.gpu import GpuProbe

    with GpuProbe() as probe:
        gpus = probe.devices()
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    info = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_usable": usable_cores,
        "ram_total_mb": round(psutil.virtual_memory().total / MB, 1),
        "devices": gpus or ["cpu"],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_cuda"] = getattr(torch.version, "cuda", None)
    return info


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def write_config(
    path: str | os.PathLike,
    args: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    *,
    run_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json``: the run's arguments, software versions, machine, git commit, command.

    ``args`` is the parsed command line (``vars(namespace)``); ``run_config`` the typed run config
    in full (``RunConfig.to_dict()``, under ``"config"``: what ``--config`` reruns); ``extra``
    holds anything else the run wants recorded (dataset shape, split sizes, ...) under ``"extra"``.
    Values that are not JSON types are written as strings.
    """
    config = {
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "args": dict(args),
        **({"config": dict(run_config)} if run_config is not None else {}),
        "extra": dict(extra or {}),
        "python": sys.version.split()[0],
        "versions": package_versions(),
        "git": git_state(),
        **machine_info(),
    }
    return write_json(path, config)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Replace ``path`` by ``data`` atomically and durably (temp file, fsync, rename): a crash or
    a full disk leaves the old file or the new one, never half of one. A failed write raises
    InputError naming the file and leaves no temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def append_resume(path: str | os.PathLike, entry: Mapping[str, Any]) -> Path:
    """Keep the run's original ``config.json`` and add ``entry`` to its ``resumes`` list."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise InputError(f"{path} is missing or is not a pgti config.json; cannot record the resume")
    config.setdefault("resumes", [])
    if not isinstance(config["resumes"], list):
        raise InputError(f"{path}: 'resumes' is not a list")
    config["resumes"].append({
        "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        **dict(entry),
    })
    return write_json(path, config)


def rewrite_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Replace ``path`` atomically by a CSV of exactly ``rows`` (a resumed run's epochs: each
    epoch once, as its checkpoint recorded it, whatever the old file held)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # "\r\n" lines, as CsvAppender writes them
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return write_atomic(path, buffer.getvalue())


# --- run directories ---------------------------------------------------------------------------


def run_label(dataset: Any, mode: Any, gpu: Any) -> str:
    """``<dataset>/<mode>[-gpu]``: how plots and directory names call a run."""
    return f"{dataset}/{mode_dir_name(mode, gpu)}"


def mode_dir_name(mode: Any, gpu: Any) -> str:
    return f"{mode}-gpu" if _truthy(gpu) else str(mode)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "t", "yes", "y", "1", "on"}
    try:
        return bool(value) and value == value  # NaN (an empty CSV cell) is not "gpu"
    except (TypeError, ValueError):
        return False
