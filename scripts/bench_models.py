#!/usr/bin/env python
"""Time one training step (forward + masked-MAE backward + Adam step) of each model.

Default shape: pems-bay (B=64, L=12, N=325, F=2) on a random weighted graph with 2,694 edges
including one self-loop per node, like DCRNN's adjacency. Prints the median over --repeats
steps (models taking turns) after --warmup steps, the ratio pgt-dcrnn / dcrnn-cell against the
target (>= 5x), and the machine, with its load average: other processes on the cores inflate
every time, and with more torch threads than free cores far more.

    python scripts/bench_models.py                      # all models, CPU
    python scripts/bench_models.py --models pgt-dcrnn,dcrnn-cell --threads 2
    python scripts/bench_models.py --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import torch

from pgti.bench.machine import cpu_model
from pgti.cli_util import run_cli
from pgti.errors import InputError
from pgti.nn import MODELS, build_model

TARGET_SPEEDUP = 5.0


def random_graph(num_nodes: int, num_edges: int, seed: int = 0):
    """A weighted directed graph: a self-loop (weight 1) per node plus random distinct edges."""
    if not num_nodes <= num_edges <= num_nodes * num_nodes:
        raise InputError(f"--edges must be between --nodes ({num_nodes}) and its square")
    g = torch.Generator().manual_seed(seed)
    off_diagonal = torch.randperm(num_nodes * (num_nodes - 1), generator=g)[: num_edges - num_nodes]
    row = off_diagonal // (num_nodes - 1)
    col = off_diagonal % (num_nodes - 1)
    col = col + (col >= row).long()  # skip the diagonal
    loops = torch.arange(num_nodes)
    edge_index = torch.stack([torch.cat([loops, row]), torch.cat([loops, col])])
    edge_weight = torch.cat([torch.ones(num_nodes), torch.rand(num_edges - num_nodes, generator=g)])
    return edge_index, edge_weight


def masked_mae(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MAE on channel 0 (speed) over the entries whose target is not 0 (missing)."""
    mask = (target[..., 0] != 0).float()
    mask = mask / mask.mean().clamp_min(1e-12)
    return ((prediction[..., 0] - target[..., 0]).abs() * mask).mean()


class TrainingStep:
    """One training step of ``model`` on a fixed batch: forward, masked MAE, backward, Adam."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model.train(), x, y
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def __call__(self) -> float:
        """Run one step; return its wall time in seconds."""
        cuda = self.x.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = masked_mae(self.model(self.x, self.y), self.y)
        loss.backward()
        self.optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start


def time_steps(steps: dict[str, TrainingStep], *, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step for each model, ``repeats`` timed steps after ``warmup`` untimed ones.

    The models take turns (one step each per round), so a change in the machine's load during
    the run affects them alike and their ratio stays meaningful.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(step())
    return times




def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lags", type=int, default=12, help="L: input = target window length")
    parser.add_argument("--nodes", type=int, default=325)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--edges", type=int, default=2694, help="including one self-loop per node")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-d", "--debug", action="store_true", help="tracebacks on errors")
    args = parser.parse_args(argv)

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        if name not in MODELS:
            raise InputError(f"--models: unknown model {name!r}; known models: {', '.join(MODELS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device available")
    if min(args.batch_size, args.lags, args.features, args.repeats) < 1 or args.warmup < 0:
        raise InputError("--batch-size, --lags, --features and --repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(args.seed)
    edge_index, edge_weight = random_graph(args.nodes, args.edges, args.seed)
    shape = (args.batch_size, args.lags, args.nodes, args.features)
    x = torch.randn(shape, device=device)
    y = torch.randn(shape, device=device)
    y[..., 0][torch.rand(shape[:-1], device=device) < 0.05] = 0.0  # some missing readings

    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"command: {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")
    machine = (f"{cpu_model()}, {torch.get_num_threads()} torch threads "
               f"({len(os.sched_getaffinity(0))} cores usable, "
               f"load average {os.getloadavg()[0]:.1f})")
    if device.type == "cuda":
        machine += f", GPU {torch.cuda.get_device_name(device)}"
    print(f"machine: {machine}; python {platform.python_version()}, torch {torch.__version__}")
    print(f"shape: B={args.batch_size} L={args.lags} N={args.nodes} F={args.features}, "
          f"{args.edges} edges; median of {args.repeats} steps after {args.warmup} warm-up")

    steps, params = {}, {}
    for name in names:
        torch.manual_seed(args.seed)
        model = build_model(name, num_nodes=args.nodes, num_features=args.features,
                            edge_index=edge_index, edge_weight=edge_weight).to(device)
        steps[name] = TrainingStep(model, x, y)
        params[name] = sum(p.numel() for p in model.parameters())
    times = time_steps(steps, warmup=args.warmup, repeats=args.repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:>11}: {medians[name] * 1e3:9.1f} ms/step  "
              f"(min {min(t) * 1e3:.1f}, max {max(t) * 1e3:.1f}; {params[name]} parameters)")

    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if "pgt-dcrnn" in medians and "dcrnn-cell" in medians:
        ratio = medians["pgt-dcrnn"] / medians["dcrnn-cell"]
        verdict = "PASS" if ratio >= TARGET_SPEEDUP else "MISS"
        print(f"speed-up pgt-dcrnn / dcrnn-cell: {ratio:.1f}x (target >= {TARGET_SPEEDUP:g}x) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
