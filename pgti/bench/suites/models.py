"""Time one training step of each model, through the real ``Trainer.train_epoch``.

A step is what training does per batch: forward, masked-MAE loss, backward, Adam step and the
metric sums (``pgti.engine.trainer.Trainer.train_epoch`` on a one-batch epoch). Default shape:
pems-bay (B=64, L=12, N=325, F=2) on a random weighted graph with 2,694 edges including one
self-loop per node, like DCRNN's adjacency. Prints the median over --repeats steps after
--warmup steps, the ratios pgt-dcrnn / dcrnn-cell (target >= 5x) and dcrnn-cell-s2s /
dcrnn-cell (target <= 2x), and the machine, with its load average: other processes on the
cores inflate every time, and with more torch threads than free cores far more.

Without --memory the models take turns in one process (one step each per round), so a change in
the machine's load affects them alike. With --memory each model runs alone in a fresh process
(:func:`measure_steps` as the runner's ``model_steps`` task), which also reports its peak RSS
above its own RSS before the first measured step (after the imports, a warm-up step on a 3-node
graph, the model and the batch); --before adds ``dcrnn`` as it was before its memory reduction
(``recompute_diffusion=False``, the unchanged code path). ``bench_speed`` times its models with
:func:`run_alone` too, and reads the numbers from the task's JSON result.
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
import traceback

import torch

from pgti.bench.machine import cpu_model
from pgti.bench.report import verdict
from pgti.bench.rss import PeakRss
from pgti.bench.runner import GIB, Outcome, child_env, run_task
from pgti.cli_util import run_cli
from pgti.engine.metrics import TargetUnits
from pgti.engine.session import fit_model
from pgti.engine.trainer import Trainer
from pgti.errors import InputError
from pgti.nn import build_model, model_list, model_options
from pgti.nn.baselines import TrainingStatistics

TARGET_SPEEDUP = 5.0  # pgt-dcrnn / dcrnn-cell, at least
TARGET_S2S_COST = 2.0  # dcrnn-cell-s2s / dcrnn-cell, at most
TRAINABLE = ("pgt-dcrnn", "dcrnn-cell", "dcrnn-cell-s2s", "dcrnn")
BEFORE = "dcrnn-before"  # dcrnn without the memory reduction: the code path as it was
UNITS = TargetUnits(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0))  # 0.0: missing


@dataclasses.dataclass(frozen=True)
class StepShape:
    """The batch (B, L, N, F) of a measured step and the edges of its random graph."""

    batch_size: int = 64
    lags: int = 12
    nodes: int = 325
    features: int = 2
    edges: int = 2694  # including one self-loop per node


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


class TrainingStep:
    """One training step of ``model`` on a fixed batch, by ``Trainer.train_epoch``."""

    def __init__(self, model, x, y):
        if not any(p.requires_grad for p in model.parameters()):
            raise InputError(f"--models: {type(model).__name__} has no parameters to train")
        self.trainer = Trainer(model, UNITS.to(x.device), x.size(1), device=x.device)
        self.batch = [(x, y)]
        self.cuda = x.device.type == "cuda"

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.trainer.model.parameters())

    def __call__(self) -> float:
        """Run one step; return its wall time in seconds."""
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        self.trainer.train_epoch(self.batch, total=1)
        if self.cuda:
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


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["hidden=32", "scheduled_sampling=True"]`` -> ``{"hidden": 32, ...}`` (Python literals)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    return options


def configurations(names: list[str], options: dict, before: bool) -> list[tuple[str, str, dict]]:
    """``(label, model, options)`` per measured configuration; each model gets the options it
    accepts, and --before adds ``dcrnn-before`` ahead of ``dcrnn``."""
    for key in options:
        if not any(key in model_options(name) for name in names):
            raise InputError(f"--option {key}: accepted by none of {', '.join(names)}")
    configs = []
    for name in names:
        own = {k: v for k, v in options.items() if k in model_options(name)}
        if before and name == "dcrnn":
            configs.append((BEFORE, name, {**own, "recompute_diffusion": False}))
        configs.append((name, name, own))
    return configs


def make_inputs(shape: StepShape, seed: int, device):
    """The random graph and one batch (x, y) of ``shape``, with some readings missing in y."""
    torch.manual_seed(seed)
    edge_index, edge_weight = random_graph(shape.nodes, shape.edges, seed)
    size = (shape.batch_size, shape.lags, shape.nodes, shape.features)
    x = torch.randn(size, device=device)
    y = torch.randn(size, device=device)
    y[..., 0][torch.rand(size[:-1], device=device) < 0.05] = 0.0  # some missing readings
    return edge_index, edge_weight, x, y


def build(name: str, options: dict, shape: StepShape, edge_index, edge_weight, device, seed: int = 0):
    """The model on ``device``; one that learns from training statistics gets flat ones (the
    batches are random: there is no dataset to take them from)."""
    torch.manual_seed(seed)
    model = build_model(name, num_nodes=shape.nodes, num_features=shape.features, lags=shape.lags,
                        edge_index=edge_index, edge_weight=edge_weight, **options).to(device)
    return fit_model(model, TrainingStatistics.flat(shape.nodes))


def _warm_up(name: str, options: dict, shape: StepShape, device) -> None:
    """The first training step imports ~800 modules lazily (~90 MiB): take it on a tiny graph,
    so that the peak RSS of the measured steps counts the model and the batch only."""
    tiny = StepShape(batch_size=2, lags=shape.lags, nodes=3, features=shape.features, edges=3)
    small = {**options, **({"hidden": 2} if "hidden" in model_options(name) else {})}
    ring = torch.tensor([[0, 1, 2], [1, 2, 0]])
    x = torch.randn(2, shape.lags, 3, shape.features, device=device)
    TrainingStep(build(name, small, tiny, ring, torch.ones(3), device), x, x)()


def measure_steps(name: str, options: dict, shape: dict, *, warmup: int, repeats: int, seed: int = 0,
                  device: str = "cpu", threads: int | None = None, rss: bool = False) -> dict:
    """Seconds of ``repeats`` training steps of one model after ``warmup`` untimed ones, and its
    parameter count; with ``rss``, after a warm-up step on a tiny graph, also the peak RSS of
    the warm-up and timed steps (the runner's ``model_steps`` task: JSON in, JSON out)."""
    if threads:
        torch.set_num_threads(threads)
    on = torch.device(device)
    step_shape = StepShape(**shape)
    if rss:
        _warm_up(name, options, step_shape, on)
    edge_index, edge_weight, x, y = make_inputs(step_shape, seed, on)
    step = TrainingStep(build(name, options, step_shape, edge_index, edge_weight, on, seed), x, y)
    with PeakRss(gpu=on.type == "cuda") if rss else contextlib.nullcontext() as peak:
        times = time_steps({name: step}, warmup=warmup, repeats=repeats)[name]
    result = {"times": times, "params": step.params}
    if rss:
        result.update(peak_above_start=peak.peak_above_baseline, peak_total=peak.peak,
                      gpu_peak_allocated=peak.gpu_peak_allocated)
    return result


def run_alone(name: str, options: dict, shape: StepShape, *, warmup: int, repeats: int, seed: int = 0,
              device: str = "cpu", threads: int | None = None, rss: bool = False,
              timeout: float | None = None, guard_bytes: int = GIB) -> Outcome:
    """:func:`measure_steps` in a fresh, watched interpreter; ``result`` is its dict."""
    return run_task("model_steps",
                    {"name": name, "options": options, "shape": dataclasses.asdict(shape), "warmup": warmup,
                     "repeats": repeats, "seed": seed, "device": device, "threads": threads, "rss": rss},
                    timeout=timeout, guard_bytes=guard_bytes, env=child_env(threads))


def saved_for_backward(model, x, y, top: int = 6) -> tuple[int, list[tuple[str, int]]]:
    """Bytes that one training forward keeps for the backward pass, total and by the line of
    ``pgti/nn`` that saved them (each storage counted once), largest first."""
    seen, by_line = set(), collections.Counter()

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            frame = next((f for f in reversed(traceback.extract_stack())
                          if f"pgti{os.sep}nn" in f.filename), None)
            site = "elsewhere" if frame is None else \
                f"{os.path.basename(frame.filename)}:{frame.lineno} {frame.name}: {frame.line}"
            by_line[site] += storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x, y)
    return sum(by_line.values()), by_line.most_common(top)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lags", type=int, default=12, help="L: input = target window length")
    parser.add_argument("--nodes", type=int, default=325)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--edges", type=int, default=2694, help="including one self-loop per node")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", default=",".join(TRAINABLE), help="comma-separated")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="model option (e.g. hidden=32), given to each model that accepts it")
    parser.add_argument("--memory", action="store_true",
                        help="each model alone in a fresh process, with its peak RSS")
    parser.add_argument("--before", action="store_true",
                        help="with dcrnn: also dcrnn as before its memory reduction")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process (--memory)")
    parser.add_argument("--saved-tensors", action="store_true",
                        help="instead of timing: what one forward saves for the backward pass")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-d", "--debug", action="store_true", help="tracebacks on errors")
    args = parser.parse_args(argv)
    try:  # built-in names or package.module:ClassName
        args.names = model_list(args.models)
    except InputError as exc:
        raise InputError(f"--models: {exc}") from None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device available")
    if min(args.batch_size, args.lags, args.features, args.repeats) < 1 or args.warmup < 0:
        raise InputError("--batch-size, --lags, --features and --repeats must be >= 1")
    args.shape = StepShape(args.batch_size, args.lags, args.nodes, args.features, args.edges)
    return args


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = configurations(args.names, parse_options(args.option), args.before)
    device = torch.device(args.device)
    _print_header(args, argv, device)
    if args.saved_tensors:
        _print_saved_tensors(configs, args, device)
        return 0
    results = _measure(configs, args, device)
    _print_results(configs, results, args)
    return 0


def _print_header(args, argv: list[str], device) -> None:
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"command: {' '.join([sys.argv[0], *argv])}")
    machine = (f"{cpu_model()}, {torch.get_num_threads()} torch threads "
               f"({len(os.sched_getaffinity(0))} cores usable, "
               f"load average {os.getloadavg()[0]:.1f})")
    if device.type == "cuda":
        machine += f", GPU {torch.cuda.get_device_name(device)}"
    print(f"machine: {machine}; python {platform.python_version()}, torch {torch.__version__}")
    how = "each model alone in a fresh process" if args.memory else "models taking turns"
    what = ("one training forward" if args.saved_tensors else
            f"median of {args.repeats} steps after {args.warmup} warm-up (Trainer.train_epoch; {how})")
    print(f"shape: B={args.batch_size} L={args.lags} N={args.nodes} F={args.features}, "
          f"{args.edges} edges; {what}")


def _print_saved_tensors(configs, args, device) -> None:
    edge_index, edge_weight, x, y = make_inputs(args.shape, args.seed, device)
    for label, name, options in configs:
        model = build(name, options, args.shape, edge_index, edge_weight, device, args.seed)
        total, sites = saved_for_backward(model, x, y)
        print(f"{label}: {total / GIB:.3f} GiB saved for the backward pass; largest by line:")
        for site, nbytes in sites:
            print(f"  {nbytes / GIB:7.3f} GiB  {site}")


def _measure(configs, args, device) -> dict[str, dict]:
    """label -> {"times", "params"[, peak RSS]}: in one process taking turns, or (--memory)
    each alone in a fresh process."""
    if args.memory:
        results = {}
        for label, name, options in configs:
            outcome = run_alone(name, options, args.shape, warmup=args.warmup, repeats=args.repeats,
                                seed=args.seed, device=args.device, threads=args.threads, rss=True,
                                timeout=args.timeout)
            if not outcome.ok:
                raise InputError(f"{label}: {outcome.status}: {outcome.message}")
            results[label] = outcome.result
        return results
    edge_index, edge_weight, x, y = make_inputs(args.shape, args.seed, device)
    steps = {label: TrainingStep(build(name, options, args.shape, edge_index, edge_weight, device, args.seed),
                                 x, y)
             for label, name, options in configs}
    times = time_steps(steps, warmup=args.warmup, repeats=args.repeats)
    return {label: {"times": times[label], "params": step.params} for label, step in steps.items()}


def _print_results(configs, results: dict[str, dict], args) -> None:
    medians = {label: statistics.median(r["times"]) for label, r in results.items()}
    for label, _, options in configs:
        t, r = results[label]["times"], results[label]
        memory = ""
        if args.memory:
            memory = (f"; peak RSS {r['peak_above_start'] / GIB:.3f} GiB above start, "
                      f"{r['peak_total'] / GIB:.2f} GiB total")
            if r.get("gpu_peak_allocated") is not None:
                memory += f", GPU peak allocated {r['gpu_peak_allocated'] / GIB:.2f} GiB"
        shown = "".join(f" {k}={v}" for k, v in options.items())
        print(f"{label:>14}: {medians[label] * 1e3:9.1f} ms/step  "
              f"(min {min(t) * 1e3:.1f}, max {max(t) * 1e3:.1f}; {r['params']} parameters"
              f"{memory}){shown}")

    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if "pgt-dcrnn" in medians and "dcrnn-cell" in medians:
        ratio = medians["pgt-dcrnn"] / medians["dcrnn-cell"]
        print(f"speed-up pgt-dcrnn / dcrnn-cell: {ratio:.1f}x (target >= {TARGET_SPEEDUP:g}x) "
              f"{verdict(ratio >= TARGET_SPEEDUP)}")
    if "dcrnn-cell-s2s" in medians and "dcrnn-cell" in medians:
        ratio = medians["dcrnn-cell-s2s"] / medians["dcrnn-cell"]
        print(f"cost dcrnn-cell-s2s / dcrnn-cell: {ratio:.2f}x (target <= {TARGET_S2S_COST:g}x) "
              f"{verdict(ratio <= TARGET_S2S_COST)}")
    if BEFORE in medians and "dcrnn" in medians:
        print(f"dcrnn step time after / before: {medians['dcrnn'] / medians[BEFORE]:.2f}x")
        if args.memory:
            old, new = results[BEFORE]["peak_above_start"], results["dcrnn"]["peak_above_start"]
            print(f"dcrnn peak RSS above start: before {old / GIB:.2f} GiB, after {new / GIB:.2f} GiB "
                  f"({100 * (1 - new / old):.0f}% lower)")


def main(argv=None) -> int:
    return run_cli(_main, argv)
