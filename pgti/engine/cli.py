"""The command line of every driver: flags -> :class:`~pgti.config.RunConfig`. Flag names live
here and nowhere else; the library speaks of config fields, and an ``InputError`` naming a field
is shown with its flag in front (``error: --batch-size: 500 is larger than ...``).

``--config PATH`` (a run's ``config.json`` or its directory) starts from that run's config;
flags given on the command line override it. The output settings (``--output-dir``,
``--overwrite``, ``--resume``, ``-q``, ``-d``) are never taken from the file: a rerun goes to a
directory of its own.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from typing import Sequence

from pgti.cli_util import ArgumentParser, add_bool_flag, positive_float, positive_int, ratio, run_cli, seed
from pgti.config import DEFAULT_RATIOS, DistributedConfig, OutputConfig, RunConfig, read_config
from pgti.data.modes import AUTO, MODE_NAMES, parse_size
from pgti.datasets.registry import DATASETS, get_spec
from pgti.errors import InputError
from pgti.nn import DEFAULT_MODEL, MODELS

DEST_FIELDS = {
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "split": "data.split",
    "day_of_week": "data.day_of_week",
    "mode": "batching.mode",
    "gpu": "batching.gpu",
    "batch_size": "batching.batch_size",
    "max_batches": "batching.max_batches",
    "full_evaluation": "batching.full_evaluation",
    "memory_budget": "batching.memory_budget",
    "model": "model.name",
    "model_option": "model.options",
    "hidden": "model.options.hidden",
    "layers": "model.options.layers",
    "lr": "optim.lr",
    "lr_decay_epochs": "optim.lr_decay_epochs",
    "lr_decay_factor": "optim.lr_decay_factor",
    "clip_grad_norm": "optim.clip_grad_norm",
    "epochs": "training.epochs",
    "seed": "training.seed",
    "patience": "training.patience",
    "output_dir": "output.output_dir",
    "overwrite": "output.overwrite",
    "resume": "output.resume",
    "quiet": "output.quiet",
    "debug": "output.debug",
    "config": "config",
    "npar": "distributed.npar",
    "dist": "distributed.dist",
    "dask_cluster_file": "distributed.cluster_file",
    "worker_timeout": "distributed.worker_timeout",
    "dist_timeout": "distributed.dist_timeout",
}
"""argparse destination -> config field."""

_UNSET = object()


def memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE``; the value is read as a Python literal (``3``, ``0.5``, ``True``) or kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a Python name, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def build_parser(dataset: str | None, *, prog: str | None = None, modes: Sequence[str] | None = None,
                 description: str | None = None, mode_help: str | None = None) -> argparse.ArgumentParser:
    """Flags shared by every driver. ``dataset`` fixes the dataset (single-node drivers) and
    its defaults; with None a ``--dataset`` flag is added."""
    spec = get_spec(dataset) if dataset else None
    single = modes is None
    modes = (*MODE_NAMES["single"], AUTO) if single else tuple(modes)
    p = ArgumentParser(
        prog=prog,
        description=description or (f"Train a model on {dataset}" if dataset else "Train a model"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    if spec is None:
        p.add_argument("--dataset", default="pems-bay", choices=list(DATASETS), help="dataset to train on")
    p.add_argument("-m", "--mode", default=modes[0] if not single else "base", choices=list(modes),
                   help=mode_help or ("batching: base materialises every window; index gathers windows "
                                      "from one copy of the series; lazy-index reads them from disk per batch; "
                                      "auto picks the fastest that fits --memory-budget"))
    if single:
        p.add_argument("--memory-budget", type=memory_size, default=None, metavar="SIZE",
                       help="for --mode auto: the memory the data may take, e.g. 512MB or 4GB "
                            "(default: the memory available now; GPU memory with --gpu)")
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
    p.add_argument("--config", default=None, metavar="PATH",
                   help="rerun the run whose config.json (or run directory) is PATH; flags given here "
                        "override its settings; the output goes to a new directory")
    p.add_argument("--seed", type=seed, default=0, help="seed for weights and shuffling")
    p.add_argument("--model", default=(spec.default_model if spec else None) or DEFAULT_MODEL,
                   help=f"model: {', '.join(MODELS)}, or package.module:ClassName for your own "
                        "(see README, 'Bring your own model')")
    p.add_argument("--model-option", type=key_value, action="append", default=None, metavar="KEY=VALUE",
                   help="keyword argument for the model's constructor (repeatable)")
    p.add_argument("--max-batches", type=positive_int, default=None,
                   help="cap on batches per epoch and per evaluation (smoke runs, benchmarks)")
    add_bool_flag(p, "--full-evaluation", help="with --max-batches: cap the training batches only, and "
                                               "validate and test on every window")
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


def build_ddp_parser(driver) -> argparse.ArgumentParser:
    """The flags of distributed driver ``driver`` (a :class:`pgti.distributed.driver.Driver`)."""
    p = build_parser(None, prog=driver.name, modes=tuple(driver.modes), description=driver.description,
                     mode_help="; ".join(f"{name}: {m.summary}" for name, m in driver.modes.items()))
    defaults = DistributedConfig()
    add_bool_flag(p, "--dist", help="multi-node run: join the Dask cluster of --dask-cluster-file "
                                    "(started by submit.sh / submit_slurm.sh)")
    p.add_argument("-np", "--npar", type=positive_int, default=2,
                   help="number of DDP ranks, one per Dask worker (GPU workers with --gpu)")
    p.add_argument("--dask-cluster-file", default=None, metavar="PATH",
                   help="scheduler file of a running Dask cluster; without it a local cluster of "
                        "--npar workers is started")
    p.add_argument("--worker-timeout", type=positive_float, default=defaults.worker_timeout,
                   help="seconds to wait for --npar workers to register")
    p.add_argument("--dist-timeout", type=positive_float, default=defaults.dist_timeout,
                   help="seconds a rank waits in a collective (torch.distributed timeout)")
    return p


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.Namespace, set[str]]:
    """The parsed flags and the destinations given on the command line (not defaulted)."""
    args = parser.parse_args(argv)
    # Destinations still holding a marker were not given. An "append" flag starts from None
    # instead (argparse appends to what is there), so given means "not None" for it.
    appending = {a.dest for a in parser._actions if isinstance(a, argparse._AppendAction)}
    marked = parser.parse_args(argv, namespace=argparse.Namespace(**{
        a.dest: None if a.dest in appending else _UNSET for a in parser._actions if a.dest != argparse.SUPPRESS}))
    return args, {dest for dest, value in vars(marked).items()
                  if (value is not None if dest in appending else value is not _UNSET)}


def config_from_args(args: argparse.Namespace, explicit: set[str], *, dataset: str | None = None) -> RunConfig:
    """The run config of the parsed flags: all of them, or with ``--config`` that run's config
    overridden by the flags in ``explicit``. ``dataset`` is the driver's fixed dataset."""
    values = vars(args)
    distributed = "npar" in values
    if getattr(args, "config", None):
        config = read_config(args.config)
        config.output = OutputConfig()
        if distributed and config.distributed is None:
            config.distributed = DistributedConfig()
        if not distributed:
            config.distributed = None
        given = explicit | {d for d in values if DEST_FIELDS.get(d, "").startswith("output.")}
    else:
        config = RunConfig(distributed=DistributedConfig() if distributed else None)
        given = set(values)
    if dataset is not None:
        if getattr(args, "config", None) and config.data.dataset != dataset and "dataset" not in explicit:
            raise InputError(f"{args.config} is a run on {config.data.dataset}; this driver trains {dataset}",
                             field="config")
        config.data.dataset = dataset
    for dest in sorted(given):
        path, value = DEST_FIELDS.get(dest), values[dest]
        if path is None or path == "config":
            continue
        if dest == "model_option":
            config.model.options.update(dict(value or []))
        elif path.startswith("model.options."):
            if value is not None:
                config.model.options[path.rsplit(".", 1)[1]] = value
        elif dest == "model" and "model" in explicit and getattr(args, "config", None):
            if value != config.model.name:  # another model: the old one's options do not apply
                config.model.options = {}
            config.model.name = value
        else:
            config.set(path, tuple(value) if dest == "split" else value)
    return config


def flag_of(parser: argparse.ArgumentParser, field: str | None) -> str | None:
    """The flag that sets config field ``field`` (its long form), or else the flag of the
    nearest section above it (``model.options.depth`` -> ``--model-option``)."""
    while field:
        dests = [d for d, f in DEST_FIELDS.items() if f == field]
        for action in parser._actions:
            if action.dest in dests and action.option_strings:
                return max(action.option_strings, key=len)
        field = field.rpartition(".")[0]
    return None


def with_flag(exc: InputError, parser: argparse.ArgumentParser) -> InputError:
    """``exc`` with the flag of its field in front of its message, and each config field the
    message names (``output.resume``) written as its flag (``--resume``)."""
    message = str(exc)
    for field in sorted(set(DEST_FIELDS.values()), key=len, reverse=True):
        if field in message and field != "config":
            message = re.sub(rf"(?<![\w.]){re.escape(field)}(?![\w])", flag_of(parser, field) or field, message)
    flag = flag_of(parser, exc.field)
    if flag is not None and not message.startswith(flag):
        message = f"{flag}: {message}"
    return InputError(message, field=exc.field)


def run_with_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None, body) -> int:
    """Parse ``argv`` with ``parser`` and run ``body(args, explicit)`` under the error contract
    (:func:`pgti.cli_util.run_cli`), with field errors shown by their flags."""

    def _main(arguments):
        args, explicit = parse(parser, arguments)
        try:
            return body(args, explicit)
        except InputError as exc:
            raise with_flag(exc, parser) from exc

    return run_cli(_main, argv)


def main(dataset: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Entry point of ``single_gpu_testing/<dataset>_main.py``."""
    from pgti.engine.run import train_single

    parser = build_parser(dataset, prog=prog)

    def body(args, explicit):
        train_single(config_from_args(args, explicit, dataset=dataset), args=vars(args))
        return 0

    return run_with_flags(parser, argv, body)


def ddp_main(driver_name: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddp_testing/<driver>.py``: a failed rank or a lost worker ends with one
    line and status 1."""
    import traceback

    from pgti.distributed.driver import DRIVERS, TrainingFailed, run_distributed

    driver = DRIVERS[driver_name]
    parser = build_ddp_parser(driver)

    def body(args, explicit):
        run_distributed(config_from_args(args, explicit), driver, args=vars(args))
        return 0

    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_with_flags(parser, arguments, body)
    except TrainingFailed as exc:
        if any(a in ("-d", "--debug") or a.startswith("--debug=") for a in arguments):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
