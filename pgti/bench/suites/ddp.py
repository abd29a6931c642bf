"""Distributed modes compared: Dask bytes moved between workers, peak memory per worker, time per
epoch, for

    dask                        pems_ddp.py -m dask        (every window pair in the cluster)
    index                       pems_ddp.py -m index       (the whole series on every rank)
    dask-index                  pems_ddp.py -m dask-index  (the series once in the cluster)
    batch-shuffled dask-index   opt_pems_ddp.py -m dask-index  (a slab + halo per rank)

each on its own local cluster of --npar CPU workers, on PeMS-Bay-size synthetic data (325 nodes
x 52,116 steps; --nodes/--timesteps shrink it). Bytes are Dask's own counters
(``Worker.transfer_outgoing_bytes_total``, summed over workers). With --max-batches, epochs are
cut short; the full-epoch bytes are then projected from the measured bytes per batch. The target
line compares one full epoch, one-time setup transfers included, dask against batch-shuffled
dask-index (>= 10x).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from pgti.bench.inputs import locate
from pgti.bench.machine import describe_machine, machine_line
from pgti.bench.report import command_line, fmt, markdown_table, script, target_line, write_csv, write_markdown
from pgti.cli_util import run_cli
from pgti.data.loader import num_batches
from pgti.distributed.driver import DRIVERS, run_distributed
from pgti.engine.cli import build_ddp_parser, config_from_args
from pgti.errors import InputError

DATASET = "pems-bay"
TARGET_RATIO = 10.0
ONE = ".1f"  # MiB, KiB and ratios are shown with one decimal
CONFIGS = (  # (name, driver, mode)
    ("dask", "pems_ddp.py", "dask"),
    ("index", "pems_ddp.py", "index"),
    ("dask-index", "pems_ddp.py", "dask-index"),
    ("batch-shuffled dask-index", "opt_pems_ddp.py", "dask-index"),
)
COLUMNS = ("config", "label", "setup_mib", "epoch_mib", "kib_per_batch", "full_epoch_mib", "full_epoch_with_setup_mib",
           "peak_worker_mib", "peak_worker_mib_by_rank", "epoch_s", "batches_per_epoch", "full_batches_per_epoch")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--nodes", type=int, default=None, help="sensors (default: PeMS-Bay's 325)")
    p.add_argument("--timesteps", type=int, default=None, help="time steps (default: PeMS-Bay's 52,116)")
    p.add_argument("--data-dir", default="data", help="real pems-bay files, used at full size if present")
    p.add_argument("--cache-dir", default=None, help="where synthetic data is generated (pgti.bench.inputs)")
    p.add_argument("-np", "--npar", type=int, default=2, help="workers = DDP ranks")
    p.add_argument("-e", "--epochs", type=int, default=2)
    p.add_argument("-bs", "--batch-size", type=int, default=64, help="per rank")
    p.add_argument("--max-batches", type=int, default=20, help="per epoch and evaluation; 0 = full epochs")
    p.add_argument("--model", default="dcrnn-cell")
    p.add_argument("--configs", default=",".join(c[0] for c in CONFIGS),
                   help="comma-separated subset of: " + ", ".join(c[0] for c in CONFIGS))
    p.add_argument("--out", default="results/bench_ddp", help="CSV and markdown go here")
    p.add_argument("-d", "--debug", action="store_true", help="tracebacks and Dask logs")
    return p.parse_args(argv)


def mib(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else n_bytes / 2**20


def measure(name: str, driver: str, mode: str, a, data_dir: Path, work: Path) -> dict:
    argv = ["--dataset", DATASET, "-m", mode, "--data-dir", str(data_dir), "--output-dir", str(work / mode),
            "-e", str(a.epochs), "-bs", str(a.batch_size), "--model", a.model, "-np", str(a.npar), "--quiet",
            "--debug" if a.debug else "--debug=false"]
    if a.max_batches:
        argv += ["--max-batches", str(a.max_batches)]
    config = config_from_args(build_ddp_parser(DRIVERS[driver]).parse_args(argv), set())
    print(f"\n== {name}: {driver} -m {mode}", file=sys.stderr, flush=True)
    run = run_distributed(config, DRIVERS[driver])

    setup = sum(t["bytes"] for t in run.transfers if t["phase"] in ("setup", "preprocessing"))
    epochs = [t for t in run.transfers if t["phase"] == "epoch"]
    epoch_bytes = sum(t["bytes"] for t in epochs) / len(epochs)
    batches = epochs[0]["train_batches"] + epochs[0]["val_batches"]  # per rank
    per_batch = epoch_bytes / (batches * a.npar)
    split = full_batches(run, a)
    full_epoch = per_batch * split * a.npar
    history = run.ranks[0]["history"]
    peaks = [r["memory"]["max_process_mem"] for r in run.ranks]
    return {
        "config": name, "label": run.label, "setup_mib": mib(setup), "epoch_mib": mib(epoch_bytes),
        "kib_per_batch": per_batch / 1024, "full_epoch_mib": mib(full_epoch),
        "full_epoch_with_setup_mib": mib(setup + full_epoch),
        "peak_worker_mib": max(p for p in peaks if p is not None),
        "peak_worker_mib_by_rank": " / ".join(f"{p:.0f}" for p in peaks),
        "epoch_s": sum(r["runtime"] for r in history) / len(history),
        "batches_per_epoch": batches, "full_batches_per_epoch": split,
    }


def full_batches(run, a) -> int:
    """Training + validation batches per rank in an uncapped epoch (rank 0's share)."""
    sizes = run.split_sizes
    per_rank = lambda n: -(-n // a.npar)  # noqa: E731 - both policies give each rank ceil(n / world)
    return num_batches(per_rank(sizes["train"]), a.batch_size) + num_batches(per_rank(sizes["val"]), a.batch_size)


def main(argv=None) -> int:
    return run_cli(_main, argv)


def _main(arguments: list[str]) -> int:
    a = parse(arguments)
    names = [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = sorted(set(names) - {c[0] for c in CONFIGS})
    if unknown:
        raise InputError(f"--configs: unknown {unknown}; choose from {[c[0] for c in CONFIGS]}")
    machine = describe_machine()
    bench = locate(DATASET, data_dir=a.data_dir, cache_dir=a.cache_dir, nodes=a.nodes,
                   timesteps=a.timesteps, log=lambda m: print(m, file=sys.stderr))
    shape = f"{bench.shape.num_nodes} nodes x {bench.shape.num_timesteps} steps ({bench.source})"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        for name, driver, mode in CONFIGS:
            if name in names:
                rows.append(measure(name, driver, mode, a, bench.data_dir, Path(tmp) / name.replace(" ", "-")))

    command = command_line(script("bench_ddp.py"), arguments)
    print(f"\nbench_ddp: {DATASET} {shape}, {a.npar} workers, batch {a.batch_size} per rank, "
          f"{a.epochs} epochs, max {a.max_batches or 'all'} batches, model {a.model}")
    header = ["config", "setup MiB", "MiB/epoch", "KiB/batch", "full epoch MiB", "+setup MiB",
              "peak MiB/worker", "s/epoch"]
    print(" | ".join(header))
    for r in rows:
        print(" | ".join([r["config"], fmt(r["setup_mib"], ONE), fmt(r["epoch_mib"], ONE),
                          fmt(r["kib_per_batch"], ONE),
                          fmt(r["full_epoch_mib"], ONE), fmt(r["full_epoch_with_setup_mib"], ONE),
                          r["peak_worker_mib_by_rank"], fmt(r["epoch_s"], ".2f")]))
    by = {r["config"]: r for r in rows}
    lines = []
    if "dask" in by and "batch-shuffled dask-index" in by:
        num = by["dask"]["full_epoch_with_setup_mib"]
        den = by["batch-shuffled dask-index"]["full_epoch_with_setup_mib"]
        ratio = num / den if den else math.inf
        lines.append(target_line("dask / batch-shuffled dask-index bytes moved (one full epoch incl. setup)",
                                 f"{fmt(ratio, ONE)}x", f">= {TARGET_RATIO:g}x", ratio >= TARGET_RATIO))
        steady = by["batch-shuffled dask-index"]["epoch_mib"]
        lines.append(f"steady-state epochs: dask {fmt(by['dask']['epoch_mib'], ONE)} MiB vs batch-shuffled "
                     f"dask-index {fmt(steady, ONE)} MiB per epoch")
    for line in lines:
        print(line)
    print(f"machine: {machine_line(machine)}")
    print(f"date: {machine['date']}; command: {command}")

    out = Path(a.out)
    write_csv(out / "bench_ddp.csv", rows, COLUMNS)
    table = markdown_table([{k: fmt(v, ONE) for k, v in r.items()} for r in rows],
                           [(c, c) for c in COLUMNS if c != "label"])
    write_markdown(out / "bench_ddp.md", "Distributed modes: Dask transfers, memory, time", command, machine,
                   [f"{DATASET} {shape}, {a.npar} workers, batch {a.batch_size} per rank", table, *lines])
    print(f"-> {out / 'bench_ddp.csv'}, {out / 'bench_ddp.md'}")
    return 0
