"""The single-node experiment: config -> data -> session -> epochs -> test -> CSVs.

:func:`train_single` runs a :class:`~pgti.config.RunConfig` (the command line, in
:mod:`pgti.engine.cli`, builds one); the distributed driver reuses :func:`open_run`,
:func:`stats_row` and :func:`metric_columns`, so every output means the same everywhere.

A run's life: the config is checked (and a ``resume`` checkpoint read) before anything is
written; then the run directory is claimed (:class:`~pgti.observability.rundir.RunDir`: one run
per directory, locked); data and session are built; :meth:`Run.begin` checks the checkpoint
against them and only then writes ``config.json`` (or, resuming, adds to its ``resumes`` list).
A run refused before that point leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from pgti.config import RunConfig
from pgti.data.loader import check_device, read_dataset
from pgti.data.modes import AUTO, MODE_NAMES, pick_auto
from pgti.data.windows import validate_ratios
from pgti.engine.checkpoint import CHECKPOINT, Checkpoint, fingerprint, read_checkpoint
from pgti.engine.metrics import MetricSums
from pgti.engine.session import build_session, fit_model, seed_everything  # noqa: F401 (re-exported)
from pgti.engine.trainer import Trainer, fit
from pgti.errors import InputError
from pgti.nn.baselines import HistoricalAverage, LastValue, TrainingStatistics, training_statistics
from pgti.nn.registry import resolve_model
from pgti.observability.monitor import MemoryMonitor
from pgti.observability.outputs import (
    BASELINES,
    CONFIG_FILE,
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    STATS_FILE,
    SYSTEM_STATS_FILE,
    CsvAppender,
    append_resume,
    mode_dir_name,
    rewrite_csv,
    write_config,
    write_stats,
)
from pgti.observability.rundir import RunDir


def validate_config(config: RunConfig) -> None:
    """Checks that need no data, so a bad config fails before anything slow happens."""
    resolve_model(config.model.name)
    validate_ratios(config.data.split)
    check_device(config.batching.gpu)
    if config.output.overwrite and config.output.resume:
        raise InputError("overwrite and resume contradict each other: continue the run or replace it",
                         field="output.overwrite")


def baseline_models(data, stats: TrainingStatistics, device) -> dict[str, torch.nn.Module]:
    """The baselines every run is evaluated with, named as in stats.csv's column suffixes."""
    graph = dict(num_nodes=data.num_nodes, num_features=data.num_features, edge_index=data.edge_index,
                 edge_weight=data.edge_weight)
    return {"last_value": LastValue(**graph).to(device).fit(stats),
            "historical_average": HistoricalAverage(**graph).to(device).fit(stats)}


def metric_columns(sums: dict[str, MetricSums]) -> dict:
    """stats.csv's test columns: the model's, each baseline's (``..._last_value``, ...), and the
    skill per horizon (1 - model MAE / last-value MAE)."""
    model = sums["model"].report("test_")
    out = dict(model)
    for name in BASELINES:
        report = sums[name].report("test_")
        out[f"test_mae_{name}"] = report["test_mae"]
        for h in sums[name].horizons:
            for metric in ("mae", "rmse", "mape"):
                out[f"test_{metric}_h{h}_{name}"] = report[f"test_{metric}_h{h}"]
    for h in sums["model"].horizons:
        naive = out[f"test_mae_h{h}_last_value"]
        ok = naive == naive and naive > 0
        out[f"test_skill_h{h}"] = 1.0 - model[f"test_mae_h{h}"] / naive if ok else None
    return out


def summary_line(test: dict) -> str:
    """``test MAE 3.41 (last-value 3.52, historical-average 5.30)``."""
    return (f"test MAE {test['test_mae']:.4f} (last-value {test['test_mae_last_value']:.4f}, "
            f"historical-average {test['test_mae_historical_average']:.4f})")


def resolve_resume(config: RunConfig) -> Path | None:
    if not config.output.resume:
        return None
    path = Path(config.output.resume)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}", field="output.resume")
    return path


@dataclass
class Run:
    """A claimed run directory, the checkpoint it continues (if any), and its clock."""

    config: RunConfig
    dataset: str
    dir: RunDir
    t_start: float
    checkpoint: Checkpoint | None = None
    extra: dict = field(default_factory=dict)
    args: dict | None = None  # the command line as parsed (config.json's "args"), if there was one

    @property
    def run_dir(self) -> Path:
        return self.dir.path

    def path(self, name: str) -> Path:
        return self.run_dir / name

    @property
    def start_epoch(self) -> int:
        return self.checkpoint.epochs_done if self.checkpoint else 0

    @property
    def history(self) -> list[dict]:
        return self.checkpoint.history if self.checkpoint else []

    def begin(self, data_fingerprint: dict, trainer: Trainer | None = None) -> None:
        """Check the checkpoint against this run's data and model (and load it into
        ``trainer``); then record the run (config.json, or a resume entry in it) and lay
        per_epoch_stats.csv out as the checkpoint's history. Nothing is kept of a run refused
        before this."""
        if self.checkpoint is not None:
            self.checkpoint.check_matches(data_fingerprint)
            if trainer is not None:
                self.checkpoint.restore(trainer)
        config = self.path(CONFIG_FILE)
        continuing = self.checkpoint is not None and self.checkpoint.path.parent.resolve() == self.run_dir.resolve()
        if continuing and config.is_file():
            append_resume(config, {"argv": list(sys.argv), "from_epoch": self.start_epoch,
                                   "to_epochs": self.config.training.epochs})
        else:
            extra = {"dataset": self.dataset, "fingerprint": data_fingerprint, **self.extra}
            if self.checkpoint is not None:
                extra["resumed_from"] = str(self.checkpoint.path)
            write_config(config, self.args if self.args is not None else flat_args(self.config), extra,
                         run_config=self.config.to_dict())
        if self.checkpoint is not None:
            rewrite_csv(self.path(EPOCHS_FILE), EPOCH_COLUMNS, self.history)
        self.dir.mark_started()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.dir.close(failed=exc_type is not None)


def flat_args(config: RunConfig) -> dict:
    """config.json's ``"args"`` for a run that had no command line: the config's fields by their
    last name (``mode``, ``gpu``, ``model``, ``max_batches``, ...), as plots read them."""
    flat = {}
    for section, values in config.to_dict().items():
        for key, value in (values or {}).items():
            flat["model" if (section, key) == ("model", "name") else key] = value
    return flat


def open_run(config: RunConfig, dataset: str, *, label: str | None = None, extra: dict | None = None,
             args: dict | None = None) -> Run:
    """Check the config and the checkpoint to resume, then claim the run directory. Nothing is
    written before the checks pass. ``label`` names the default directory's mode part."""
    validate_config(config)
    checkpoint = None
    resume = resolve_resume(config)
    epochs = config.training.epochs
    if resume is not None:
        checkpoint = read_checkpoint(resume)
        if epochs <= checkpoint.epochs_done:
            raise InputError(
                f"{resume} has already finished {checkpoint.epochs_done} epoch(s); {epochs} epochs in total "
                f"leaves nothing to do (give the total number of epochs wanted, above {checkpoint.epochs_done})",
                field="training.epochs")
    out = config.output
    if out.output_dir:
        path = Path(out.output_dir)
        continuing = resume is not None and path.resolve() == resume.parent.resolve()
        run_dir = RunDir.claim(path, continuing=continuing, overwrite=out.overwrite)
    elif resume is not None:
        run_dir = RunDir.claim(resume.parent, continuing=True)
    else:
        run_dir = RunDir.claim_new(Path("results"), dataset,
                                   mode_dir_name(label or config.batching.mode, config.batching.gpu))
    return Run(config, dataset, run_dir, time.perf_counter(), checkpoint, dict(extra or {}), args)


def stats_row(run: Run, history: list[dict], test: dict, monitor, *,
              preprocessing: float, training: float, world_size: int = 1, mode: str | None = None,
              best_epoch: int | None = None) -> dict:
    config = run.config
    return {
        "preprocessing": preprocessing,
        "training": training,
        "total": time.perf_counter() - run.t_start,
        "t_mae": min(r["t_mae"] for r in history) if history else None,
        "v_mae": min(r["v_mae"] for r in history) if history else None,
        "t_mae_all_channels": min(r["t_mae_all_channels"] for r in history) if history else None,
        "v_mae_all_channels": min(r["v_mae_all_channels"] for r in history) if history else None,
        **monitor.stats_fields(),
        "dataset": run.dataset,
        "mode": mode or config.batching.mode,
        "gpu": bool(config.batching.gpu),
        "model": config.model.name,
        "epochs": len(history),
        "batch_size": config.batching.batch_size,
        "seed": config.training.seed,
        "world_size": world_size,
        "best_epoch": best_epoch,
        **test,
    }


def single_node_storage(config: RunConfig, data, log=print) -> tuple[str, str | None]:
    """The storage a single-node run uses and, for ``auto``, why: the one its mode names, or the
    fastest that fits the memory budget (said in one line)."""
    mode = config.batching.mode
    if mode != AUTO:
        if mode not in MODE_NAMES["single"]:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODE_NAMES['single'])} or auto",
                             field="batching.mode")
        return MODE_NAMES["single"][mode].storage, None
    gpu = config.batching.gpu
    budget = config.batching.memory_budget
    host = budget if budget is not None else psutil.virtual_memory().available
    device = None
    if gpu:
        device = budget if budget is not None else torch.cuda.mem_get_info()[0]
    storage, why = pick_auto(data.shape, gpu, host, device)
    source = "the memory budget" if budget is not None else "the memory available now"
    line = (f"{storage}{' on the GPU' if gpu and storage == 'index' else ''} (budget {_gib(host)} host"
            f"{f', {_gib(device)} GPU' if device is not None else ''}, {source}): {why}")
    log(f"mode auto: {line}")
    return storage, line


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def train_single(config: RunConfig, *, args: dict | None = None) -> Path:
    """Run ``config`` on this process (rank 0 of a world of one) and return its run directory."""
    dataset = config.data.dataset
    progress = not config.output.quiet and sys.stderr.isatty()
    with open_run(config, dataset, args=args) as run:
        with MemoryMonitor(run.path(SYSTEM_STATS_FILE)) as monitor:
            monitor.set_phase("preprocessing")
            t0 = time.perf_counter()
            data = read_dataset(dataset, config.data.data_dir, gpu=config.batching.gpu,
                                ratios=config.data.split, day_of_week=config.data.day_of_week)
            with contextlib.closing(data):
                data.check_batch_size(config.batching.batch_size)
                storage, picked = single_node_storage(config, data, log=lambda m: print(m, file=sys.stderr))
                if picked is not None:  # config.json holds the storage used, so --config reruns it as it ran
                    run.extra["mode_auto"] = picked
                    config.batching.mode = storage
                data.mode = storage
                stats = training_statistics(data)
                session = build_session(config, data, storage=storage, device=data.device, stats=stats,
                                        progress=progress)
                data.storage = session.plan.storages["train"]
                preprocessing = time.perf_counter() - t0
                trainer, plan = session.trainer, session.plan
                data_fingerprint = fingerprint(data, config.model.name)
                run.begin(data_fingerprint, trainer)
                if not config.output.quiet:
                    print(config.describe(), file=sys.stderr)

                monitor.set_phase("training")
                t1 = time.perf_counter()
                with CsvAppender(run.path(EPOCHS_FILE), EPOCH_COLUMNS) as epochs_csv:
                    history = fit(
                        trainer, plan, epochs=config.training.epochs, start_epoch=run.start_epoch,
                        history=run.history, annotate=lambda row: {"max_process_mem": monitor.peak_process_mb},
                        on_epoch=epochs_csv.append, checkpoint=run.path(CHECKPOINT), fingerprint=data_fingerprint,
                        patience=config.training.patience,
                    )
                training = time.perf_counter() - t1

                monitor.set_phase("evaluation")
                trainer.use_best()
                test = metric_columns(trainer.evaluate_with(baseline_models(data, stats, data.device),
                                                            plan.batches("test", 0), plan.num_batches("test"), "test"))
        write_stats(run.path(STATS_FILE), stats_row(run, history, test, monitor, preprocessing=preprocessing,
                                                     training=training, best_epoch=trainer.best_epoch,
                                                     mode=storage))
        gpu = "-gpu" if config.batching.gpu else ""
        print(
            f"{dataset} {storage}{gpu}: {summary_line(test)} "
            f"(best epoch {'-' if trainer.best_epoch is None else trainer.best_epoch + 1} of {len(history)}), "
            f"peak process memory {monitor.peak_process_mb:.0f} MB, total "
            f"{time.perf_counter() - run.t_start:.1f} s -> {run.run_dir}"
        )
    return run.run_dir
