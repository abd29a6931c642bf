"""``scripts/rank_models.py``: the flags, then plan -> run -> tables -> figures -> summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from pgti.bench.report import write_csv
from pgti.cli_util import ArgumentParser, add_bool_flag, positive_float, positive_int, ratio, run_cli
from pgti.datasets.registry import DATASETS
from pgti.errors import InputError
from pgti.ranking.plots import plot_quick_vs_full, plot_ranks
from pgti.ranking.sweep import (BUDGETS, RUN_COLUMNS, SweepSettings, failed_row, holding_runs, is_done,
                                plan_dataset, plan_runs, read_run, run_sweep, write_sweep_file)
from pgti.ranking.tables import AGREEMENT_COLUMNS, RANKING_COLUMNS, agreement_rows, ranking_rows, summary_lines

DEFAULT_REFERENCE = "metr-la"

FIELD_FLAGS = {"batching.batch_size": "--batch-size", "output.output_dir": "--output-dir", "model.name": "--models",
               "data.dataset": "--datasets", "distributed.cluster_file": "--dask-cluster-file"}


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="rank_models.py",
        description="Train every model on every dataset (several seeds, a quick and a full budget), "
                    "rank the models per dataset and measure how the rankings agree.",
    )
    p.add_argument("--datasets", default=None, metavar="A,B",
                   help=f"comma-separated datasets: {', '.join(DATASETS)}")
    p.add_argument("--models", default="all", metavar="A,B",
                   help="comma-separated models (built-in names or package.module:ClassName), or all")
    p.add_argument("--list-models", action="store_true", help="print the built-in models, one a line, and exit")
    p.add_argument("--seeds", type=positive_int, default=3, help="runs per model, dataset and budget (seeds 0..N-1)")
    p.add_argument("--budgets", default="quick,full", metavar="B", help="quick, full, or quick,full")
    p.add_argument("-e", "--epochs", type=positive_int, default=20, help="epochs of a full run")
    p.add_argument("--patience", type=positive_int, default=None, metavar="N",
                   help="full runs stop early when the validation MAE has not improved for N epochs")
    p.add_argument("--quick-fraction", type=ratio, default=0.03,
                   help="a quick run's training steps as a fraction of the full run's (at least one batch "
                        "per quick epoch)")
    p.add_argument("--quick-epochs", type=positive_int, default=4,
                   help="validation points of a quick run: its steps are spread over this many short epochs")
    p.add_argument("--data-dir", default="data", help="directory holding the dataset files")
    p.add_argument("--output-dir", default="results/ranking",
                   help="the sweep directory; rerunning with the same arguments skips the finished runs")
    p.add_argument("--runs-dir", default=None, metavar="DIR",
                   help="where the run directories go (default OUTPUT_DIR/runs); sweeps given the same "
                        "--runs-dir reuse each other's finished runs (same dataset, model, seed and settings)")
    p.add_argument("--reference", default=None,
                   help=f"dataset whose full ranking the others are compared with "
                        f"(default {DEFAULT_REFERENCE} if swept, else the first of --datasets)")
    p.add_argument("-np", "--npar", type=positive_int, default=2, help="workers of the local Dask cluster")
    p.add_argument("--dask-cluster-file", default=None, metavar="PATH",
                   help="scheduler file of a running Dask cluster to run on instead of a local one")
    p.add_argument("-bs", "--batch-size", type=positive_int, default=None,
                   help="windows per batch (default: each dataset's)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    p.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N",
                   help="bootstrap resamples of the seeds for the agreement intervals")
    add_bool_flag(p, "-q", "--quiet", help="no progress bar")
    add_bool_flag(p, "-d", "--debug", help="show tracebacks and Dask's warnings")
    return p


def _names(text: str, flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(f"{flag}: no names given")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"{flag}: {', '.join(duplicated)} given twice")
    return names


def settings_from_args(args) -> tuple[SweepSettings, str]:
    from pgti.nn import model_list

    if args.datasets is None:
        raise InputError("--datasets is required (comma-separated names, e.g. chickenpox,pedalme)")
    datasets = _names(args.datasets, "--datasets")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise InputError(f"--datasets: unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    try:
        models = model_list(args.models)
    except InputError as exc:
        raise InputError(f"--models: {exc}") from None
    budgets = _names(args.budgets, "--budgets")
    if any(b not in BUDGETS for b in budgets):
        raise InputError(f"--budgets: expected quick, full or quick,full, got {args.budgets!r}")
    reference = args.reference or (DEFAULT_REFERENCE if DEFAULT_REFERENCE in datasets else datasets[0])
    if reference not in datasets:
        raise InputError(f"--reference: {reference} is not one of --datasets ({', '.join(datasets)})")
    settings = SweepSettings(
        datasets=tuple(datasets), models=tuple(models), seeds=args.seeds,
        budgets=tuple(b for b in BUDGETS if b in budgets), epochs=args.epochs, patience=args.patience,
        quick_fraction=args.quick_fraction, quick_epochs=args.quick_epochs, batch_size=args.batch_size,
        lr=args.lr, data_dir=str(Path(args.data_dir).resolve()), output_dir=str(Path(args.output_dir).resolve()),
        runs_dir=None if args.runs_dir is None else str(Path(args.runs_dir).resolve()),
    )
    return settings, reference


def sweep(args, argv: list[str]) -> int:
    from pgti.distributed.cluster import open_cluster

    settings, reference = settings_from_args(args)
    plans = {d: plan_dataset(settings, d) for d in settings.datasets}
    runs = plan_runs(settings, plans)
    with holding_runs(settings.runs_root):
        done = {spec for spec in runs if is_done(spec)}
        todo = [spec for spec in runs if spec not in done]
        out = Path(settings.output_dir)
        write_sweep_file(out / "sweep.json", settings, plans, argv)
        for plan in plans.values():
            quick = (f"quick {plan.quick_epochs} epochs x {plan.quick_max_batches or plan.train_batches} batches "
                     f"= {plan.quick_steps} steps") if "quick" in settings.budgets else ""
            print(f"{plan.dataset}: batch size {plan.batch_size}, full {settings.epochs} epochs x "
                  f"{plan.train_batches} batches = {plan.full_steps} steps; {quick}", file=sys.stderr)
        print(f"{len(runs)} runs: {len(done)} already done, {len(todo)} to run", file=sys.stderr)

        outcomes = {}
        if todo:
            with open_cluster(args.npar, gpu=False, scheduler_file=args.dask_cluster_file,
                              debug=args.debug) as client:
                outcomes = run_sweep(todo, client, progress=not args.quiet)

    rows = []
    for spec in runs:
        outcome = outcomes.get(spec, {"status": "ok"})
        if outcome["status"] == "ok":
            rows.append(read_run(spec, plans[spec.dataset].full_steps))
        else:
            rows.append(failed_row(spec, outcome["reason"]))
    horizons = sorted({k for r in rows for k in r if k.startswith("test_mae_h")}, key=lambda k: int(k[len("test_mae_h"):]))
    write_csv(out / "runs.csv", rows, [*RUN_COLUMNS, *horizons, "run_dir"])
    datasets, models = list(settings.datasets), list(settings.models)
    ranking = ranking_rows(rows, datasets, settings.budgets, models)
    write_csv(out / "ranking.csv", ranking, RANKING_COLUMNS)
    agreement = agreement_rows(rows, datasets, reference, resamples=args.bootstrap) if "full" in settings.budgets else []
    write_csv(out / "agreement.csv", agreement, AGREEMENT_COLUMNS)
    plot_ranks(ranking, datasets, models, out / "ranks.png")
    plot_quick_vs_full(rows, datasets, out / "quick_vs_full.png")

    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows) - len(failed)} runs ok, {len(failed)} failed; ran {len(todo)}, skipped {len(done)} -> {out}")
    for row in failed:
        print(f"  failed: {row['dataset']} {row['model']} {row['budget']} seed {row['seed']}: {row['reason']}")
    for line in summary_lines(agreement, reference):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def _main(arguments):
        args = parser.parse_args(arguments)
        if args.list_models:
            from pgti.nn import MODELS

            print("\n".join(MODELS))
            return 0
        try:
            return sweep(args, list(arguments))
        except InputError as exc:
            flag = FIELD_FLAGS.get(exc.field or "")
            message = str(exc)
            for field, name in FIELD_FLAGS.items():
                message = message.replace(field, name)
            if flag and not message.startswith(flag):
                message = f"{flag}: {message}"
            raise InputError(message, field=exc.field) from exc

    return run_cli(_main, argv)
