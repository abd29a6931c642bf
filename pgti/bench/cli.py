"""Flags and steps the benchmark scripts share, so that every flag means the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from pgti.bench import report
from pgti.bench.inputs import BenchData, default_cache_dir, locate
from pgti.bench.runner import GIB, Outcome, available_bytes, run_task
from pgti.bench.sizes import fits, gib, human
from pgti.errors import InputError

DEFAULT_OUT = Path("results/bench")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_common_args(parser: argparse.ArgumentParser, *, repeats: int) -> None:
    parser.add_argument("--data-dir", default="data", help="where real dataset files are looked for")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"synthetic data cache (default: $PGTI_BENCH_CACHE or {default_cache_dir()})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for CSV/markdown/PNG")
    parser.add_argument("--repeats", type=positive_int, default=repeats,
                        help="fresh-process runs per mode (the median is reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads in each measured process (0: torch's default). "
                             "1 by default: on a shared 2-core machine 2-thread copies were 2-5x slower")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--assume-available-gib", type=float, default=None,
                        help="pretend the system has this much memory available (tests the refusal path)")
    parser.add_argument("--reserve-gib", type=float, default=2.0,
                        help="memory left for everything else when deciding whether a mode fits")
    parser.add_argument("--guard-gib", type=float, default=1.0,
                        help="stop a measured process if the system's available memory falls below this")
    parser.add_argument("--quick", action="store_true", help="reduced sizes and repeats (minutes)")
    parser.add_argument("-d", "--debug", action="store_true", help="tracebacks on errors")


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """One dataset, its size, the batch size, and the trials of the batch-assembly rates."""
    parser.add_argument("--dataset", default="pems-bay")
    parser.add_argument("--nodes", type=positive_int, default=None)
    parser.add_argument("--timesteps", type=positive_int, default=None)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--rate-batches", type=positive_int, default=500,
                        help="batches per timed trial of each assembly method")
    parser.add_argument("--rate-trials", type=positive_int, default=7)


def apply_quick(args, argv: Sequence[str]) -> None:
    """--quick on one dataset: 8,064 steps (unless --timesteps), rates of at most 50 batches x 3
    trials, one run per mode (unless --repeats)."""
    if args.quick:
        args.timesteps = args.timesteps or 8064
        args.rate_batches = min(args.rate_batches, 50)
        args.rate_trials = min(args.rate_trials, 3)
        if "--repeats" not in argv:
            args.repeats = 1


def locate_dataset(args) -> BenchData:
    """The dataset of --dataset at --nodes x --timesteps: real files, or cached synthetic ones."""
    return locate(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, nodes=args.nodes,
                  timesteps=args.timesteps, seed=args.seed, log=report.log)


def name_list(text: str, known: Sequence[str], flag: str, what: str) -> list[str]:
    """The comma-separated names of ``flag``, each checked to be one of ``known``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise InputError(f"{flag}: unknown {what} {name!r}; choose from {', '.join(known)}")
    return names


def rotate(items: Sequence[str], k: int) -> list[str]:
    """``items`` starting at position k: each repeat runs the modes in a different order."""
    k %= max(1, len(items))
    return list(items[k:]) + list(items[:k])


def check_fit(need: int, args, extra: int = 0, extra_what: str = "training") -> str | None:
    """None if ``need`` + ``extra`` bytes fit now, else the "does not fit" message."""
    available = available_bytes(args.assume_available_gib)
    if fits(need + extra, available, int(args.reserve_gib * GIB)):
        return None
    plus = f" (+ ~{human(extra)} for {extra_what})" if extra else ""
    return (f"does not fit: needs {human(need)}{plus}, {human(available)} available "
            f"(keeping {args.reserve_gib:g} GiB in reserve)")


def measure_memory(data: BenchData, mode: str, args, *, batch_size: int, max_batches: int | None,
                   train: bool, model: str = "dcrnn-cell", repeat: int = 0, timeout: float | None = None,
                   passes: int = 1) -> dict:
    """One fresh-process memory run of ``mode`` (or its refusal), as a result row."""
    shape = data.shape
    need = shape.estimate(mode)
    extra = shape.train_bytes(batch_size) if train else 0
    row = {
        "dataset": data.name, "source": data.source, "nodes": shape.num_nodes,
        "timesteps": shape.num_timesteps, "features": shape.num_features, "lags": shape.lags,
        "mode": mode, "repeat": repeat, "estimate_gib": gib(need),
        "series_gib": gib(shape.series_bytes),
    }
    refusal = check_fit(need, args, extra)
    if refusal is not None:
        return {**row, "status": refusal}
    outcome: Outcome = run_task(
        "memory",
        {"dataset": data.name, "data_dir": str(data.data_dir), "mode": mode, "batch_size": batch_size,
         "max_batches": max_batches, "train": train, "model": model, "seed": args.seed,
         "threads": args.threads or None, "passes": passes},
        timeout=timeout, guard_bytes=int(args.guard_gib * GIB),
    )
    if not outcome.ok:
        if outcome.status == "input error":
            raise InputError(outcome.message)
        message = outcome.message.splitlines()[0] if outcome.message else outcome.status
        if args.debug:
            print(outcome.log_tail)
        return {**row, "status": f"{outcome.status}: {message}"[:300]}
    r = outcome.result
    last_pass, data_s = r["pass_s"][-1], r["data_s"][-1]
    return {
        **row,
        "status": "ok",
        "peak_gib": gib(r["peak_above_baseline_bytes"]),
        "idle_gib": gib(r["baseline_bytes"]),
        "gpu_peak_gib": gib(r["gpu_peak_reserved_bytes"]),
        "gpu_alloc_gib": gib(r["gpu_peak_allocated_bytes"]),
        "storage_gib": gib(r["storage_bytes"]),
        "prep_s": r["prep_s"],
        "batches": r["batches"],
        "batches_s": r["batches_s"],
        "last_pass_s": last_pass,
        "data_s": data_s,
        "data_share": data_s / last_pass if last_pass > 0 else None,
        "params": r.get("params"),
        "step_s": report.median(r["step_s"][-1]),  # last pass: producing a batch and its step
        "batches_per_s": r["batches"] / r["batches_s"] if r["batches_s"] > 0 else None,
        "rss_exact": r["rss_exact"],
        "threads": r["threads"],
        "wall_s": outcome.wall_s,
    }


def measure_passes(data: BenchData, modes: Sequence[str], args, describe: Callable[[dict], str],
                   passes: int = 1) -> list[dict]:
    """``args.repeats`` rounds of one fresh-process pass over the training batches (assembly
    only) per mode, the order rotating each round; each row is logged as ``describe`` puts it."""
    runs = []
    for repeat in range(args.repeats):
        for mode in rotate(modes, repeat):
            row = measure_memory(data, mode, args, batch_size=args.batch_size, max_batches=None,
                                 train=False, repeat=repeat, passes=passes)
            runs.append(row)
            report.log(describe(row))
    return runs


def measure_rates(data: BenchData, args) -> dict | None:
    """The ``rates`` task's result (batch assembly side by side, in a fresh process), or None
    with a warning when it failed for a reason other than bad input."""
    rates = run_task("rates", {"dataset": data.name, "data_dir": str(data.data_dir),
                               "batch_size": args.batch_size, "batches": args.rate_batches,
                               "trials": args.rate_trials, "seed": args.seed, "threads": args.threads or None},
                     guard_bytes=int(args.guard_gib * GIB))
    if rates.ok:
        return rates.result
    if rates.status == "input error":
        raise InputError(rates.message)
    report.warn(f"batch-assembly rates failed: {rates.status}: {rates.message}")
    return None
