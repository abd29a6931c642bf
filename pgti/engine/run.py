"""The single-node experiment: flags, then data -> model -> epochs -> test -> CSVs.

``single_gpu_testing/<dataset>_main.py`` calls :func:`main` with its dataset; the distributed
drivers reuse :func:`build_parser`, :func:`open_run` and :func:`finish_run`, so every flag and
every output means the same everywhere.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pgti.cli_util import ArgumentParser, add_bool_flag, run_cli
from pgti.data.loader import check_device, prepare
from pgti.data.storage import MODES
from pgti.data.windows import DEFAULT_RATIOS, validate_ratios
from pgti.datasets.registry import DATASETS, get_spec
from pgti.engine.metrics import TargetUnits
from pgti.engine.trainer import CHECKPOINT, SplitBatches, Trainer, fit, load_checkpoint
from pgti.errors import InputError
from pgti.nn import DEFAULT_MODEL, MODELS, build_model
from pgti.observability.monitor import MemoryMonitor
from pgti.observability.outputs import (
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    STATS_FILE,
    SYSTEM_STATS_FILE,
    CsvAppender,
    default_run_dir,
    prepare_output_dir,
    write_config,
    write_stats,
)



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
    p.add_argument("-e", "--epochs", type=int, default=spec.default_epochs if spec else 100,
                   help="number of epochs")
    p.add_argument("-bs", "--batch-size", type=int, default=spec.default_batch_size if spec else 64,
                   help="windows per batch")
    p.add_argument("--data-dir", default="data", help="directory holding the dataset files")
    p.add_argument("--output-dir", default=None,
                   help="where the run's CSVs go (default results/<dataset>/<mode>[-gpu]/<timestamp>/)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and shuffling")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model: {', '.join(MODELS)}")
    p.add_argument("--max-batches", type=int, default=None,
                   help="cap on batches per epoch and per evaluation (smoke runs, benchmarks)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--split", type=float, nargs=3, default=list(DEFAULT_RATIOS), metavar=("TRAIN", "VAL", "TEST"),
                   help="train/val/test ratios of the window starts")
    add_bool_flag(p, "--day-of-week", help="add a day-of-week channel (traffic datasets)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="resume from a checkpoint file or a run directory holding checkpoint.pt")
    add_bool_flag(p, "-q", "--quiet", help="no progress bars")
    return p


def validate_args(args: argparse.Namespace) -> None:
    """Checks that need no data, so bad flags fail before anything slow happens."""
    if args.model not in MODELS:
        raise InputError(f"unknown model {args.model!r} for --model; choose one of {', '.join(MODELS)}")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise InputError(f"{flag} must be positive, got {value}")
    if args.max_batches is not None and args.max_batches < 1:
        raise InputError(f"--max-batches must be positive, got {args.max_batches}")
    validate_ratios(args.split)
    check_device(args.gpu)


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
    """A run directory and what is measured about it."""

    args: argparse.Namespace
    dataset: str
    run_dir: Path
    t_start: float

    def path(self, name: str) -> Path:
        return self.run_dir / name


def open_run(args: argparse.Namespace, dataset: str, *, extra: dict | None = None) -> Run:
    """Validate flags, create the run directory and write config.json."""
    validate_args(args)
    resume = resolve_resume(args)
    if args.output_dir:
        run_dir = Path(args.output_dir)
    elif resume is not None:
        run_dir = resume.parent
    else:
        run_dir = default_run_dir(Path("results"), dataset, args.mode, args.gpu)
    prepare_output_dir(run_dir)
    write_config(run_dir / "config.json", vars(args), {"dataset": dataset, **(extra or {})})
    return Run(args, dataset, run_dir, time.perf_counter())


def stats_row(run: Run, history: list[dict], test: dict, monitor: MemoryMonitor, *,
              preprocessing: float, training: float, world_size: int = 1) -> dict:
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
        "mode": args.mode,
        "gpu": bool(args.gpu),
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "world_size": world_size,
        **test,
    }


def train_single(args: argparse.Namespace, dataset: str) -> Path:
    run = open_run(args, dataset)
    progress = not args.quiet and sys.stderr.isatty()
    with MemoryMonitor(run.path(SYSTEM_STATS_FILE)) as monitor:
        monitor.set_phase("preprocessing")
        t0 = time.perf_counter()
        seed_everything(args.seed)
        data = prepare(dataset, args.data_dir, args.mode, gpu=args.gpu, ratios=args.split,
                       day_of_week=args.day_of_week)
        data.check_batch_size(args.batch_size)
        preprocessing = time.perf_counter() - t0
        model = build_model(args.model, num_nodes=data.num_nodes, num_features=data.num_features,
                            edge_index=data.edge_index, edge_weight=data.edge_weight).to(data.device)
        trainer = Trainer(model, TargetUnits.of(data), data.lags, lr=args.lr, device=data.device,
                          progress=progress)
        plan = SplitBatches(data, args.batch_size, args.seed, args.max_batches)
        start_epoch, history = 0, []
        resume = resolve_resume(args)
        if resume is not None:
            start_epoch, history = load_checkpoint(resume, trainer)

        monitor.set_phase("training")
        epochs_csv = CsvAppender(run.path(EPOCHS_FILE), EPOCH_COLUMNS)
        t1 = time.perf_counter()
        history = fit(
            trainer, plan, epochs=args.epochs, start_epoch=start_epoch, history=history,
            on_epoch=lambda row: epochs_csv.append({**row, "max_process_mem": monitor.peak_process_mb}),
            checkpoint=run.path(CHECKPOINT),
        )
        training = time.perf_counter() - t1

        monitor.set_phase("evaluation")
        test = trainer.evaluate(plan.batches("test", 0), plan.num_batches("test"), "test").report("test_")
        data.close()
    write_stats(run.path(STATS_FILE), stats_row(run, history, test, monitor,
                                                 preprocessing=preprocessing, training=training))
    print(
        f"{dataset} {args.mode}{'-gpu' if args.gpu else ''}: test MAE {test['test_mae']:.4f}, "
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
