"""Does lazy-index keep up with index? Epoch time of the two storages side by side, in one
process, through the real session (storage, plan, model, ``Trainer.train_epoch``).

lazy-index reads batch i + 1 in a background thread while batch i trains. The target: with a
model step at least as long as a batch read, a lazy-index pass takes at most 10% longer than an
index pass. The suite measures, on a METR-LA-shaped synthetic set written to ``--data-dir``
(207 sensors by default), per round: an index pass and a lazy-index pass of ``--batches``
training batches each (order alternating by round), the data wait of each (``data_wait_s``, as
per_epoch_stats.csv records it), a lazy-index pass with its reads in the training thread (what
the reader thread saves), and a lazy-index pass of reads alone (no model: the read time). It prints the medians, the read time against the step time (the target's premise) and
the ratio against its target.

    python scripts/bench_prefetch.py                          # dcrnn-cell-s2s --hidden 16, B = 64
    python scripts/bench_prefetch.py --model dcrnn-cell --nodes 2716 --threads 1   # step near the read
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

from pgti.bench.cli import positive_int
from pgti.bench.report import log, median, start, target_line
from pgti.cli_util import ArgumentParser, run_cli
from pgti.config import BatchingConfig, ModelConfig, RunConfig, TrainingConfig
from pgti.data.loader import read_dataset
from pgti.engine.cli import key_value
from pgti.engine.session import build_session

TARGET = 1.10  # lazy-index pass / index pass, at most, when the step is at least the read
SERIAL = "lazy-index, no reader thread"


def parse_args(argv):
    p = ArgumentParser(prog="bench_prefetch.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=None, help="where the synthetic set is (written if missing; "
                                                    "default: a temporary directory)")
    p.add_argument("--nodes", type=positive_int, default=207)
    p.add_argument("--timesteps", type=positive_int, default=8064, help="4 weeks of 5-minute steps")
    p.add_argument("--model", default="dcrnn-cell-s2s")
    p.add_argument("--option", type=key_value, action="append", default=None, metavar="KEY=VALUE",
                   help="model option (default for dcrnn-cell-s2s: hidden=16)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--batches", type=positive_int, default=12, help="training batches per pass")
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    return p.parse_args(argv)


def _pass(session, epoch: int, batches: int, train: bool) -> tuple[float, float]:
    """(seconds, data wait) of one pass of ``batches`` training batches."""
    plan = session.plan
    plan.take_data_wait()
    t0 = time.perf_counter()
    if train:
        session.trainer.train_epoch(plan.batches("train", epoch), batches)
    else:
        for _ in plan.batches("train", epoch):
            pass
    return time.perf_counter() - t0, plan.take_data_wait()


def main(argv: Sequence[str] | None = None) -> int:
    def _main(arguments):
        args = parse_args(arguments)
        if args.threads:
            torch.set_num_threads(args.threads)
        start("bench_prefetch.py", arguments)
        options = dict(args.option or []) or ({"hidden": 16} if args.model == "dcrnn-cell-s2s" else {})
        with tempfile.TemporaryDirectory(prefix="pgti-prefetch-") as tmp:
            data_dir = Path(args.data_dir or tmp)
            if not (data_dir / "metr-la.h5").is_file():
                from pgti.datasets.synthetic import generate

                generate("metr-la", data_dir, nodes=args.nodes, timesteps=args.timesteps, seed=0, progress=False)
            config = RunConfig(batching=BatchingConfig(batch_size=args.batch_size, max_batches=args.batches),
                               model=ModelConfig(name=args.model, options=options), training=TrainingConfig(seed=0))
            sessions = {}
            for name, storage in (("index", "index"), ("lazy-index", "lazy-index"), (SERIAL, "lazy-index")):
                sessions[name] = build_session(config, read_dataset("metr-la", data_dir), storage=storage)
            for lazy in sessions[SERIAL].plan.storages.values():
                lazy.prefetch = False  # the same storage, read in the training thread: what the thread saves
            shape = sessions["index"].data.shape
            log(f"data: synthetic metr-la {shape.num_timesteps} x {shape.num_nodes} x {shape.num_features}, "
                f"B = {args.batch_size}, {args.batches} batches per pass; model {args.model} {options}; "
                f"{torch.get_num_threads()} torch thread(s)")
            for storage, session in sessions.items():  # warm-up: allocator, first reads, lazy imports
                _pass(session, 0, args.batches, train=True)
            runs = {"index": [], "lazy-index": [], SERIAL: [], "reads": []}
            for r in range(args.rounds):
                order = ("index", "lazy-index", SERIAL)[r % 3:] + ("index", "lazy-index", SERIAL)[: r % 3]
                for storage in order:
                    runs[storage].append(_pass(sessions[storage], r + 1, args.batches, train=True))
                runs["reads"].append(_pass(sessions["lazy-index"], r + 1, args.batches, train=False))
            for session in sessions.values():
                session.close()
                session.data.close()
        seconds = {k: median(s for s, _ in v) for k, v in runs.items()}
        waits = {k: median(w for _, w in v) for k, v in runs.items()}
        step = (seconds["index"] - waits["index"]) / args.batches
        read = seconds["reads"] / args.batches
        for storage in ("index", "lazy-index", SERIAL):
            log(f"{storage}: {seconds[storage]:.3f} s per pass (median of {args.rounds}; "
                f"{', '.join(f'{s:.3f}' for s, _ in runs[storage])}), data wait {waits[storage]:.3f} s")
        log(f"read of one batch (lazy-index, no model): {1000 * read:.1f} ms; model step (index pass less its "
            f"data wait, per batch): {1000 * step:.1f} ms; step / read = {step / read:.2f} "
            f"({'the target applies' if step >= read else 'below 1: the read cannot hide behind the step'})")
        ratio = seconds["lazy-index"] / seconds["index"]
        log(target_line("lazy-index pass / index pass", f"{ratio:.3f}", f"<= {TARGET:.2f}",
                        ratio <= TARGET if step >= read else None))
        return 0

    return run_cli(_main, argv)
