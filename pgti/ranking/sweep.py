"""The sweep: which runs (dataset x model x budget x seed), each run's config, running them as
Dask tasks, and reading each finished run back from its directory.

Every run is an ordinary run directory, ``<out>/runs/<dataset>/<model>/<budget>-seed<k>/``,
trained by :func:`pgti.engine.run.train_single`. A run whose directory holds ``stats.csv`` is
done: a rerun of the sweep reads it instead of training it again. A directory without one (an
interrupted or failed run) is trained again from scratch (``output.overwrite``).

The two budgets:

- ``full``: ``epochs`` epochs over the whole training split (early stopping with ``patience``).
- ``quick``: about ``quick_fraction`` of the full run's training steps, spread over
  ``quick_epochs`` short epochs of ``max_batches`` batches each, so that the run leaves several
  validation points, a curve to extrapolate. Quick runs set ``batching.full_evaluation``: their
  validation (and test) MAE is measured on the whole split, as the full runs' is.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pgti.config import RunConfig, read_config
from pgti.data.samplers import num_batches
from pgti.data.windows import num_windows, split_windows
from pgti.datasets.registry import get_spec
from pgti.errors import InputError
from pgti.observability.outputs import EPOCHS_FILE, STATS_FILE

BUDGETS = ("quick", "full")
RUNS_DIR = "runs"
LOCK_FILE = ".sweep.lock"


@dataclass(frozen=True)
class SweepSettings:
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    seeds: int = 3
    budgets: tuple[str, ...] = BUDGETS
    epochs: int = 20
    patience: int | None = None
    quick_fraction: float = 0.03
    quick_epochs: int = 4
    batch_size: int | None = None  # None: each dataset's default
    lr: float = 1e-3
    data_dir: str = "data"
    output_dir: str = "results/ranking"
    runs_dir: str | None = None  # None: output_dir/runs. Sweeps that share one reuse each other's runs

    @property
    def runs_root(self) -> Path:
        return Path(self.runs_dir) if self.runs_dir is not None else Path(self.output_dir) / RUNS_DIR


@dataclass(frozen=True)
class DatasetPlan:
    """What a dataset's runs look like: its batch size, the full run's steps, the quick run's."""

    dataset: str
    batch_size: int
    train_batches: int  # per full epoch
    full_steps: int  # epochs x train_batches (fewer if early stopping ends the run sooner)
    quick_epochs: int
    quick_max_batches: int | None  # None: quick epochs are whole epochs

    @property
    def quick_steps(self) -> int:
        per_epoch = self.train_batches if self.quick_max_batches is None else self.quick_max_batches
        return self.quick_epochs * per_epoch


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: str
    budget: str
    seed: int
    run_dir: Path
    config: dict = field(hash=False, compare=False)  # RunConfig.to_dict()


def model_dir_name(model: str) -> str:
    """A directory name for a model name (``pkg.mod:Class`` -> ``pkg.mod_Class``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def plan_dataset(settings: SweepSettings, dataset: str) -> DatasetPlan:
    """Read the dataset's length (not its values) to count the full run's training batches, and
    size the quick run from it."""
    from pgti.datasets.formats import load_raw

    spec = get_spec(dataset)
    raw = load_raw(dataset, settings.data_dir)
    try:
        split = split_windows(num_windows(raw.num_timesteps, spec.lags, raw.rows.source),
                              source=raw.rows.source)
    finally:
        raw.close()
    batch_size = settings.batch_size or spec.default_batch_size
    for name in ("train", "val", "test"):
        if batch_size > split.size(name):
            raise InputError(f"{batch_size} is larger than the {name} split of {dataset} "
                             f"({split.size(name)} windows)", field="batching.batch_size")
    train_batches = num_batches(split.size("train"), batch_size)
    full_steps = settings.epochs * train_batches
    return DatasetPlan(dataset, batch_size, train_batches, full_steps,
                       *quick_schedule(full_steps, train_batches, settings.quick_fraction, settings.quick_epochs))


def quick_schedule(full_steps: int, train_batches: int, fraction: float, epochs: int) -> tuple[int, int | None]:
    """(epochs, max_batches) of a quick run of about ``fraction * full_steps`` training steps
    over at least ``epochs`` epochs, each of at least one batch. When even whole epochs are
    needed, max_batches is None and the epochs grow instead."""
    target = fraction * full_steps
    per_epoch = max(1, round(target / epochs))
    if per_epoch < train_batches:
        return epochs, per_epoch
    return max(epochs, round(target / train_batches)), None


def run_config(settings: SweepSettings, plan: DatasetPlan, model: str, budget: str, seed: int,
               run_dir: Path) -> RunConfig:
    config = RunConfig()
    config.data.dataset = plan.dataset
    config.data.data_dir = settings.data_dir
    config.batching.batch_size = plan.batch_size
    config.model.name = model
    config.optim.lr = settings.lr
    config.training.seed = seed
    if budget == "full":
        config.training.epochs = settings.epochs
        config.training.patience = settings.patience
    else:
        config.training.epochs = plan.quick_epochs
        config.batching.max_batches = plan.quick_max_batches
        config.batching.full_evaluation = True  # the quick predictor reads the whole validation split
    config.output.output_dir = str(run_dir)
    config.output.quiet = True
    return config


def plan_runs(settings: SweepSettings, plans: dict[str, DatasetPlan]) -> list[RunSpec]:
    root = settings.runs_root
    runs = []
    for dataset in settings.datasets:
        for model in settings.models:
            for budget in settings.budgets:
                for seed in range(settings.seeds):
                    run_dir = root / dataset / model_dir_name(model) / f"{budget}-seed{seed}"
                    config = run_config(settings, plans[dataset], model, budget, seed, run_dir)
                    runs.append(RunSpec(dataset, model, budget, seed, run_dir, config.to_dict()))
    return runs


# Fields a finished run must share with the sweep's plan to count as this sweep's run.
MATCHED_FIELDS = ("data.dataset", "model.name", "training.seed", "training.epochs", "training.patience",
                  "batching.batch_size", "batching.max_batches", "batching.full_evaluation", "optim.lr")


@contextlib.contextmanager
def holding_runs(root: Path):
    """Hold the runs directory while this sweep uses it: a second sweep on it at the same time
    would take a run in progress for an interrupted one and redo it over its files. The lock
    (``flock`` on ``root/.sweep.lock``) ends with the sweep, or with its process."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{root} is in use by another sweep running now (it holds {root / LOCK_FILE}); "
                             "wait for it to end, or give this one another --runs-dir or --output-dir") from None
        except OSError:  # a file system without locks (some network mounts): go on unguarded
            pass
        yield


def is_done(spec: RunSpec) -> bool:
    """The run finished (its stats.csv is written last). A finished run made with other settings
    is refused: the sweep would mix two experiments."""
    if not (spec.run_dir / STATS_FILE).is_file():
        return False
    have, want = read_config(spec.run_dir), RunConfig.from_dict(spec.config)
    differ = [f for f in MATCHED_FIELDS if have.get(f) != want.get(f)]
    if differ:
        shown = ", ".join(f"{f} {have.get(f)!r} (now {want.get(f)!r})" for f in differ)
        raise InputError(f"{spec.run_dir} holds a finished run with other settings: {shown}; "
                         "rerun with its settings or choose another output.output_dir", field="output.output_dir")
    return True


def execute_run(config: dict) -> dict:
    """One run, as a Dask task: train it and say how it went (``status``, one-line ``reason``).

    A run that fails (a diverged loss, bad input, any error of the model) is reported, not
    raised, so that the sweep goes on. The run's printed lines are kept out of the worker's
    output."""
    import torch

    from pgti.engine.run import train_single

    torch.set_num_threads(1)
    run_config_ = RunConfig.from_dict(config)
    path = Path(run_config_.output.output_dir)
    if path.is_dir() and any(path.iterdir()):  # left by an interrupted or failed attempt
        run_config_.output.overwrite = True
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            train_single(run_config_)
    except Exception as exc:  # noqa: BLE001 - every failure of a run is a result of the sweep
        return {"status": "failed", "reason": one_line(exc)}
    return {"status": "ok", "reason": ""}


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return f"{type(exc).__name__}: {message}"[:300]


def run_sweep(runs: list[RunSpec], client, *, progress: bool) -> dict[RunSpec, dict]:
    """Submit every run not done yet and wait for all; {run: {status, reason}} of those run."""
    from distributed import as_completed
    from tqdm import tqdm

    futures = {client.submit(execute_run, spec.config, pure=False): spec for spec in runs}
    outcomes = {}
    with tqdm(total=len(futures), desc="runs", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for future in as_completed(futures):
            spec = futures[future]
            try:
                outcomes[spec] = future.result()
            except Exception as exc:  # noqa: BLE001 - the worker died (out of memory, killed)
                outcomes[spec] = {"status": "failed", "reason": one_line(exc)}
            bar.update(1)
    return outcomes


# --- reading a run back --------------------------------------------------------------------------

RUN_COLUMNS = (
    "dataset", "model", "budget", "seed", "status", "reason", "epochs", "steps", "training_s",
    "max_process_mem_mb", "val_mae", "final_val_mae", "powerlaw_val_mae", "test_mae", "test_rmse", "test_mape",
)  # fmt: skip
"""runs.csv's first columns; the per-horizon test MAEs (``test_mae_h3``, ...) follow, then
``run_dir``. ``val_mae``: the best epoch's; ``final_val_mae``: the last epoch's;
``powerlaw_val_mae``: the power law of the validation curve at the full run's steps."""


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_run(spec: RunSpec, full_steps: int) -> dict:
    """runs.csv's row of a finished run, from its stats.csv and per_epoch_stats.csv."""
    from pgti.ranking.agreement import extrapolate

    (stats,) = read_csv_rows(spec.run_dir / STATS_FILE)
    epochs = read_csv_rows(spec.run_dir / EPOCHS_FILE) if (spec.run_dir / EPOCHS_FILE).is_file() else []
    steps, curve = [], []
    total = 0
    for row in epochs:
        total += int(_number(row.get("train_batches")) or 0)
        steps.append(total)
        curve.append(_number(row.get("v_mae")))
    finite = [(s, v) for s, v in zip(steps, curve) if v is not None and math.isfinite(v)]
    row = {
        "dataset": spec.dataset, "model": spec.model, "budget": spec.budget, "seed": spec.seed,
        "status": "ok", "reason": "",
        "epochs": len(epochs), "steps": total,
        "training_s": _number(stats.get("training")),
        "max_process_mem_mb": _number(stats.get("max_process_mem")),
        "val_mae": _number(stats.get("v_mae")),
        "final_val_mae": finite[-1][1] if finite else None,
        "powerlaw_val_mae": (extrapolate([s for s, _ in finite], [v for _, v in finite], full_steps)
                             if spec.budget == "quick" and finite else None),
        "test_mae": _number(stats.get("test_mae")),
        "test_rmse": _number(stats.get("test_rmse")),
        "test_mape": _number(stats.get("test_mape")),
    }
    for key, value in stats.items():
        if re.fullmatch(r"test_mae_h\d+", key) and value != "":
            row[key] = _number(value)
    row["run_dir"] = str(spec.run_dir)
    return row


def failed_row(spec: RunSpec, reason: str) -> dict:
    return {"dataset": spec.dataset, "model": spec.model, "budget": spec.budget, "seed": spec.seed,
            "status": "failed", "reason": reason, "run_dir": str(spec.run_dir)}


def write_sweep_file(path: Path, settings: SweepSettings, plans: dict[str, DatasetPlan], argv: list[str]) -> None:
    """sweep.json: the command, the settings and each dataset's plan (batches, steps)."""
    document = {"argv": argv, "settings": asdict(settings),
                "datasets": {name: {**asdict(p), "quick_steps": p.quick_steps} for name, p in plans.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
