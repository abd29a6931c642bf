"""The single-node experiment: flags, then data -> model -> epochs -> test -> CSVs.

``single_gpu_testing/<dataset>_main.py`` calls :func:`main` with its dataset; the distributed
drivers reuse :func:`build_parser`, :func:`open_run` and :func:`stats_row`, so every flag and
every output means the same everywhere.

A run's life: flags are checked (and a ``--resume`` checkpoint read) before anything is written;
then the run directory is claimed (:class:`~pgti.observability.rundir.RunDir`: one run per
directory, locked); data and model are built; :meth:`Run.begin` checks the checkpoint against
them and only then writes ``config.json`` (or, resuming, adds to its ``resumes`` list). A run
refused before that point leaves nothing behind.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pgti.cli_util import ArgumentParser, add_bool_flag, positive_float, positive_int, ratio, run_cli, seed
from pgti.data.loader import check_device, prepare
from pgti.data.storage import MODES
from pgti.data.windows import DEFAULT_RATIOS, validate_ratios
from pgti.datasets.registry import DATASETS, get_spec
from pgti.engine.checkpoint import CHECKPOINT, Checkpoint, fingerprint, read_checkpoint
from pgti.engine.metrics import MetricSums, TargetUnits
from pgti.engine.trainer import SplitBatches, Trainer, fit
from pgti.errors import InputError
from pgti.nn import DEFAULT_MODEL, MODELS, build_model
from pgti.nn.baselines import HistoricalAverage, LastValue, TrainingStatistics, training_statistics
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


def build_parser(dataset: str | None, *, prog: str | None = None, modes: Sequence[str] = MODES,
                 description: str | None = None, mode_help: str | None = None) -> argparse.ArgumentParser:
    """Flags shared by every driver. ``dataset`` fixes the dataset (single-node drivers) and
    its defaults; with None a ``--dataset`` flag is added."""
    spec = get_spec(dataset) if dataset else None
    p = ArgumentParser(
        prog=prog,
        description=description or (f"Train DCRNN on {dataset}" if dataset else "Train DCRNN"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    if spec is None:
        p.add_argument("--dataset", default="pems-bay", choices=list(DATASETS), help="dataset to train on")
    p.add_argument("-m", "--mode", default=modes[0], choices=list(modes),
                   help=mode_help or ("batching: base materialises every window; index gathers windows "
                                      "from one copy of the series; lazy-index reads them from disk per batch"))
    add_bool_flag(p, "-g", "--gpu", help="train on the GPU (index mode then keeps the series on the GPU)")
    add_bool_flag(p, "-d", "--debug", help="show tracebacks on errors")
    p.add_argument("-e", "--epochs", type=positive_int, default=spec.default_epochs if spec else 100,
                   help="number of epochs (with --resume: the total, counting the epochs already done)")
    p.add_argument("-bs", "--batch-size", type=positive_int, default=spec.default_batch_size if spec else 64,
                   help="windows per batch")
    p.add_argument("--data-dir", default="data", help="directory holding the dataset files")
    p.add_argument("--output-dir", default=None,
                   help="where the run's CSVs go (default results/<dataset>/<mode>[-gpu]/<timestamp>/); "
                        "a directory that already holds a run is refused unless --resume or --overwrite")
    add_bool_flag(p, "--overwrite", help="replace the run already in --output-dir (its files are deleted "
                                         "once this run has started)")
    p.add_argument("--seed", type=seed, default=0, help="seed for weights and shuffling")
    p.add_argument("--model", default=(spec.default_model if spec else None) or DEFAULT_MODEL,
                   help=f"model: {', '.join(MODELS)}")
    p.add_argument("--max-batches", type=positive_int, default=None,
                   help="cap on batches per epoch and per evaluation (smoke runs, benchmarks)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    p.add_argument("--lr-decay-epochs", type=positive_int, nargs="+", default=None, metavar="EPOCH",
                   help="multiply the learning rate by --lr-decay-factor from each of these epochs on, "
                        "counted from 0 as in per_epoch_stats.csv (MultiStepLR; DCRNN: 20 30 40 50)")
    p.add_argument("--lr-decay-factor", type=ratio, default=0.1,
                   help="factor of each learning-rate decay, in (0, 1] (DCRNN: 0.1)")
    p.add_argument("--clip-grad-norm", type=positive_float, default=None, metavar="NORM",
                   help="clip the gradients' global norm to NORM before each step (DCRNN: 5)")
    p.add_argument("--patience", type=positive_int, default=None, metavar="N",
                   help="stop early when the validation MAE has not improved for N epochs")
    p.add_argument("--hidden", type=positive_int, default=None, metavar="N",
                   help="hidden units per layer, for models that take it (passed only when given)")
    p.add_argument("--layers", type=positive_int, default=None, metavar="N",
                   help="recurrent layers, for models that take it (passed only when given)")
    p.add_argument("--split", type=positive_float, nargs=3, default=list(DEFAULT_RATIOS),
                   metavar=("TRAIN", "VAL", "TEST"), help="train/val/test ratios of the window starts")
    add_bool_flag(p, "--day-of-week", help="add a day-of-week channel (traffic datasets)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue the run whose checkpoint file (or run directory holding checkpoint.pt) "
                        "is PATH, up to --epochs in total")
    add_bool_flag(p, "-q", "--quiet", help="no progress bars")
    return p


def validate_args(args: argparse.Namespace) -> None:
    """Checks that need no data, so bad flags fail before anything slow happens."""
    if args.model not in MODELS:
        raise InputError(f"unknown model {args.model!r} for --model; choose one of {', '.join(MODELS)}")
    validate_ratios(args.split)
    check_device(args.gpu)
    if args.overwrite and args.resume:
        raise InputError("--overwrite and --resume contradict each other: continue the run or replace it")


def model_size_options(args: argparse.Namespace) -> dict:
    """The model's size options given on the command line (``--hidden``, ``--layers``); a model
    that does not take one refuses it in one line (``build_model``)."""
    return {name: getattr(args, name) for name in ("hidden", "layers") if getattr(args, name, None) is not None}


def trainer_options(args: argparse.Namespace) -> dict:
    """The training recipe's options for :class:`Trainer`."""
    return {"lr": args.lr, "lr_decay_epochs": args.lr_decay_epochs, "lr_decay_factor": args.lr_decay_factor,
            "clip_grad_norm": args.clip_grad_norm}


def fit_model(model: torch.nn.Module, stats: TrainingStatistics) -> torch.nn.Module:
    """Give a model that learns from the training statistics (a baseline) its ``fit`` call."""
    fit_hook = getattr(model, "fit", None)
    if callable(fit_hook):
        fit_hook(stats)
    return model


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def resolve_resume(args) -> Path | None:
    if not args.resume:
        return None
    path = Path(args.resume)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise InputError(f"--resume: no checkpoint at {path}")
    return path


@dataclass
class Run:
    """A claimed run directory, the checkpoint it continues (if any), and its clock."""

    args: argparse.Namespace
    dataset: str
    dir: RunDir
    t_start: float
    checkpoint: Checkpoint | None = None
    extra: dict = field(default_factory=dict)

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
                                   "to_epochs": self.args.epochs})
        else:
            extra = {"dataset": self.dataset, "fingerprint": data_fingerprint, **self.extra}
            if self.checkpoint is not None:
                extra["resumed_from"] = str(self.checkpoint.path)
            write_config(config, vars(self.args), extra)
        if self.checkpoint is not None:
            rewrite_csv(self.path(EPOCHS_FILE), EPOCH_COLUMNS, self.history)
        self.dir.mark_started()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.dir.close(failed=exc_type is not None)


def open_run(args: argparse.Namespace, dataset: str, *, label: str | None = None,
             extra: dict | None = None) -> Run:
    """Check the flags and the checkpoint to resume, then claim the run directory. Nothing is
    written before the checks pass. ``label`` names the default directory's mode part."""
    validate_args(args)
    checkpoint = None
    resume = resolve_resume(args)
    if resume is not None:
        checkpoint = read_checkpoint(resume)
        if args.epochs <= checkpoint.epochs_done:
            raise InputError(
                f"{resume} has already finished {checkpoint.epochs_done} epoch(s); --epochs {args.epochs} "
                f"leaves nothing to do (give the total number of epochs wanted, above {checkpoint.epochs_done})")
    if args.output_dir:
        out = Path(args.output_dir)
        continuing = resume is not None and out.resolve() == resume.parent.resolve()
        run_dir = RunDir.claim(out, continuing=continuing, overwrite=args.overwrite)
    elif resume is not None:
        run_dir = RunDir.claim(resume.parent, continuing=True)
    else:
        run_dir = RunDir.claim_new(Path("results"), dataset, mode_dir_name(label or args.mode, args.gpu))
    return Run(args, dataset, run_dir, time.perf_counter(), checkpoint, dict(extra or {}))


def stats_row(run: Run, history: list[dict], test: dict, monitor, *,
              preprocessing: float, training: float, world_size: int = 1, mode: str | None = None,
              best_epoch: int | None = None) -> dict:
    args = run.args
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
        "mode": mode or args.mode,
        "gpu": bool(args.gpu),
        "model": args.model,
        "epochs": len(history),
        "batch_size": args.batch_size,
        "seed": args.seed,
        "world_size": world_size,
        "best_epoch": best_epoch,
        **test,
    }


def train_single(args: argparse.Namespace, dataset: str) -> Path:
    progress = not args.quiet and sys.stderr.isatty()
    with open_run(args, dataset) as run:
        with MemoryMonitor(run.path(SYSTEM_STATS_FILE)) as monitor:
            monitor.set_phase("preprocessing")
            t0 = time.perf_counter()
            seed_everything(args.seed)
            data = prepare(dataset, args.data_dir, args.mode, gpu=args.gpu, ratios=args.split,
                           day_of_week=args.day_of_week)
            data.check_batch_size(args.batch_size)
            stats = training_statistics(data)
            preprocessing = time.perf_counter() - t0
            model = build_model(args.model, num_nodes=data.num_nodes, num_features=data.num_features,
                                edge_index=data.edge_index, edge_weight=data.edge_weight,
                                **model_size_options(args)).to(data.device)
            fit_model(model, stats)
            trainer = Trainer(model, TargetUnits.of(data), data.lags, device=data.device, progress=progress,
                              **trainer_options(args))
            plan = SplitBatches(data, args.batch_size, args.seed, args.max_batches)
            data_fingerprint = fingerprint(data, args.model)
            run.begin(data_fingerprint, trainer)

            monitor.set_phase("training")
            t1 = time.perf_counter()
            with CsvAppender(run.path(EPOCHS_FILE), EPOCH_COLUMNS) as epochs_csv:
                history = fit(
                    trainer, plan, epochs=args.epochs, start_epoch=run.start_epoch, history=run.history,
                    annotate=lambda row: {"max_process_mem": monitor.peak_process_mb},
                    on_epoch=epochs_csv.append, checkpoint=run.path(CHECKPOINT), fingerprint=data_fingerprint,
                    patience=args.patience,
                )
            training = time.perf_counter() - t1

            monitor.set_phase("evaluation")
            trainer.use_best()
            test = metric_columns(trainer.evaluate_with(baseline_models(data, stats, data.device),
                                                        plan.batches("test", 0), plan.num_batches("test"), "test"))
            data.close()
        write_stats(run.path(STATS_FILE), stats_row(run, history, test, monitor, preprocessing=preprocessing,
                                                     training=training, best_epoch=trainer.best_epoch))
        print(
            f"{dataset} {args.mode}{'-gpu' if args.gpu else ''}: {summary_line(test)} "
            f"(best epoch {'-' if trainer.best_epoch is None else trainer.best_epoch + 1} of {len(history)}), "
            f"peak process memory {monitor.peak_process_mb:.0f} MB, total "
            f"{time.perf_counter() - run.t_start:.1f} s -> {run.run_dir}"
        )
    return run.run_dir


def main(dataset: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Entry point of ``single_gpu_testing/<dataset>_main.py``."""

    def _main(arguments):
        args = build_parser(dataset, prog=prog).parse_args(arguments)
        train_single(args, dataset)
        return 0

    return run_cli(_main, argv)
