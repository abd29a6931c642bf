"""Every zoo model at one dataset's shape through the real trainer: training step time and peak
memory with the batching modes side by side, and PGT's own workflow for the models its example
scripts train.

Default: PeMS-Bay (B=64, N=325, L=12, F=2: speed and time of day), the real files when present
at the real size, otherwise synthetic PeMS-Bay in the real format (generated once into the
benchmark cache).

1. **Zoo.** Each (model, mode) runs in a fresh process (the ``memory`` task of
   :mod:`pgti.bench.tasks`): the data is read and the session built as a training run builds it,
   then ``--passes`` passes over K = ``--batches`` training batches go through
   ``Trainer.train_epoch`` (more batches, up to ``--max-batches``, for a model whose pass takes
   under ``--min-pass-seconds``: the first mode is then measured again, and all modes use that K). Step time: the median, over the last pass, of the time from asking
   for a batch to asking for the next (producing the batch and its training step). Peak: the
   process tree's RSS above the process's RSS after the imports and a warm-up step on a 3-node
   ring, over preparation and the passes. Models without parameters (the baselines) run their
   forward pass only.
2. **PGT's workflow.** For A3TGCN2 and TGCN2, which PGT's example scripts train
   (``examples/recurrent/a3tgcn2_example.py`` and ``tgcn2_example.py`` in PyTorch Geometric
   Temporal), one fresh process takes turns between our index path (the session's index storage
   and ``Trainer.train_epoch`` with the registered wrapper, masked MAE and the metric sums) and
   PGT's materialising workflow on the same normalised series: every training window
   materialised as (S, N, F, L) inputs and (S, N, L) targets, a ``TensorDataset``, a
   ``DataLoader(batch_size, shuffle=True, drop_last=True)``, the example's network called on
   (B, N, F, L), MSE and Adam. Each side trains ``--pgt-steps`` batches per round, the two back
   to back, in alternating order; after one warm-up round, the ratio of the two sides' step times
   in each of ``--pgt-rounds`` rounds is taken, and its median compared. Target: ours no slower
   per step (ratio <= 1).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np
import torch
from torch import nn

from pgti.bench import cli, report
from pgti.bench.runner import GIB, run_task
from pgti.bench.sizes import human
from pgti.bench.tasks import GPU_MODES, MEMORY_MODES, PEER
from pgti.cli_util import run_cli
from pgti.compat import ensure_torch_sparse
from pgti.errors import InputError
from pgti.nn import model_list

DEFAULT_MODES = ("base", "index")
TARGET_VS_PGT = 1.0  # our index path's step / PGT's materialising workflow's step, at most

RUN_COLUMNS = ("model", "mode", "status", "params", "step_s", "data_share", "peak_gib", "storage_gib",
               "prep_s", "batches", "last_pass_s", "dataset", "source", "nodes", "timesteps", "features",
               "lags", "batch_size", "threads", "wall_s")
PGT_COLUMNS = ("model", "status", "ours_step_s", "pgt_step_s", "ratio", "ratio_min", "ratio_max", "ours_all", "pgt_all",
               "materialised_gib", "series_gib", "materialise_s", "steps", "rounds", "threads")


# --- PGT's example networks: what its example scripts train, called as they call them ---------

class PGTExampleA3TGCN2(nn.Module):
    """The network of PGT's A3TGCN2 example: ``A3TGCN2(F, 32, periods=L)`` on (B, N, F, L), ReLU,
    ``Linear(32 -> L)``: (B, N, L), trained against the (B, N, L) targets."""

    def __init__(self, num_features: int, lags: int, hidden: int = 32):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.recurrent import A3TGCN2

        self.tgnn = A3TGCN2(in_channels=num_features, out_channels=hidden, periods=lags, batch_size=1)
        self.linear = nn.Linear(hidden, lags)

    def forward(self, x, edge_index, edge_weight):
        return self.linear(torch.relu(self.tgnn(x, edge_index, edge_weight)))

    @staticmethod
    def target(y):
        return y


class PGTExampleTGCN2(nn.Module):
    """The network of PGT's TGCN2 example: ``TGCN2(F, 32)`` stepped over the L inputs of
    (B, N, F, L) carrying its state, ReLU and ``Linear(32 -> 1)`` after each step: (B, L, N),
    trained against the targets as (B, L, N)."""

    def __init__(self, num_features: int, lags: int, hidden: int = 32):
        super().__init__()
        ensure_torch_sparse()
        from torch_geometric_temporal.nn.recurrent import TGCN2

        self.tgnn = TGCN2(num_features, hidden, 1)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, x, edge_index, edge_weight):
        state, outputs = None, []
        for step in range(x.size(-1)):
            state = self.tgnn(x[..., step], edge_index, edge_weight, state)
            outputs.append(self.linear(torch.relu(state)).squeeze(-1))
        return torch.stack(outputs, dim=1)

    @staticmethod
    def target(y):
        return y.permute(0, 2, 1)


PGT_EXAMPLES = {"a3tgcn2": PGTExampleA3TGCN2, "tgcn2": PGTExampleTGCN2}


def materialise_like_pgt(series: np.ndarray, starts: np.ndarray, lags: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PGT's dataset arrays for the windows at ``starts``: inputs (S, N, F, L) and channel-0
    targets (S, N, L), contiguous float32 (what ``np.array(dataset.features)`` gives its examples)."""
    view = np.lib.stride_tricks.sliding_window_view(series, lags, axis=0)  # (T - L + 1, N, F, L)
    x = torch.from_numpy(np.ascontiguousarray(view[starts], dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(view[starts + lags, :, 0, :], dtype=np.float32))
    return x, y


def task_pgt_workflow(model: str, dataset: str, data_dir: str, batch_size: int = 64, steps: int = 8,
                      rounds: int = 3, seed: int = 0, threads: int | None = None) -> dict:
    """Seconds per training step of our index path and of PGT's materialising workflow, taking
    turns in this process (the runner's ``zoo_pgt_workflow`` task: JSON in, JSON out)."""
    from torch.utils.data import DataLoader, TensorDataset

    from pgti.config import BatchingConfig, ModelConfig, RunConfig, TrainingConfig
    from pgti.data.loader import read_dataset
    from pgti.engine.session import build_session

    if model not in PGT_EXAMPLES:
        raise InputError(f"no PGT example script trains {model!r}; choose from {', '.join(PGT_EXAMPLES)}")
    if threads:
        torch.set_num_threads(threads)
    config = RunConfig(batching=BatchingConfig(mode="index", batch_size=batch_size, max_batches=steps),
                       model=ModelConfig(name=model), training=TrainingConfig(seed=seed))
    data = read_dataset(dataset, data_dir)
    session = build_session(config, data, storage="index")
    series = session.plan.storages["train"].series.numpy()
    lags, starts = data.lags, data.split.starts("train")
    if len(starts) < batch_size * steps:
        raise InputError(f"--pgt-steps: {steps} batches of {batch_size} need {batch_size * steps} training "
                         f"windows; {dataset} has {len(starts)}")

    t0 = time.perf_counter()
    x_all, y_all = materialise_like_pgt(series, np.asarray(starts), lags)
    materialise_s = time.perf_counter() - t0
    loader = DataLoader(TensorDataset(x_all, y_all), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    net = PGT_EXAMPLES[model](data.num_features, lags)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    edge_index, edge_weight = data.edge_index.long(), data.edge_weight.float()

    def pgt_round(_: int) -> float:
        net.train()
        t = time.perf_counter()
        for x, y in itertools.islice(loader, steps):
            loss = loss_fn(net(x, edge_index, edge_weight), net.target(y))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            loss.item()  # the example logs every step's loss
        return (time.perf_counter() - t) / steps

    def ours_round(epoch: int) -> float:
        t = time.perf_counter()
        session.trainer.train_epoch(session.plan.batches("train", epoch), total=steps)
        return (time.perf_counter() - t) / steps

    sides = {"ours": ours_round, "pgt": pgt_round}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(rounds + 1):  # round 0 warms up both
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            seconds = sides[name](round_)
            if round_:
                times[name].append(seconds)
    session.close()
    data.raw.close()
    return {"ours_all": times["ours"], "pgt_all": times["pgt"], "materialise_s": materialise_s,
            "materialised_bytes": int(x_all.nbytes + y_all.nbytes), "series_bytes": int(series.nbytes),
            "threads": torch.get_num_threads()}


# --- the script ---------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_dataset_args(parser)
    parser.add_argument("--models", default="all", help="comma-separated (built-in names or "
                        "package.module:ClassName), or all")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES),
                        help=f"comma-separated, from {', '.join(m for m in MEMORY_MODES if m != PEER)}")
    parser.add_argument("--batches", type=cli.positive_int, default=3, help="K: training batches per pass")
    parser.add_argument("--min-pass-seconds", type=float, default=3.0,
                        help="more batches (up to --max-batches) for models whose --batches take less")
    parser.add_argument("--max-batches", type=cli.positive_int, default=50)
    parser.add_argument("--passes", type=cli.positive_int, default=2,
                        help="passes over the K batches; the step time is the last pass's")
    parser.add_argument("--pgt-steps", type=cli.positive_int, default=8,
                        help="batches per round of the comparison with PGT's workflow")
    parser.add_argument("--pgt-rounds", type=cli.positive_int, default=5,
                        help="timed rounds of that comparison (after one warm-up round)")
    parser.add_argument("--no-pgt", action="store_true", help="skip the comparison with PGT's workflow")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measured process")
    cli.add_common_args(parser, repeats=1)
    args = parser.parse_args(argv)
    cli.apply_quick(args, argv)
    if args.quick:  # and fewer steps unless given: the slowest models take seconds per step here
        for flag, cap in (("--batches", 2), ("--pgt-steps", 4), ("--pgt-rounds", 2)):
            dest = flag[2:].replace("-", "_")
            if flag not in argv:
                setattr(args, dest, min(getattr(args, dest), cap))
    try:
        args.model_list = model_list(args.models)
    except InputError as exc:
        raise InputError(f"--models: {exc}") from None
    args.mode_list = cli.name_list(args.modes, [m for m in MEMORY_MODES if m != PEER], "--modes", "mode")
    return args


def main(argv=None) -> int:
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    machine, command = report.start("bench_zoo.py", argv)
    data = cli.locate_dataset(args)
    shape = data.shape
    report.log(f"{data.name} ({data.source}): {shape.num_nodes} nodes x {shape.num_timesteps} steps x "
               f"{shape.num_features} features, L={shape.lags}, batch {args.batch_size}; {args.passes} passes over "
               f"K = {args.batches} batches (more, up to {args.max_batches}, for a model whose pass takes under "
               f"{args.min_pass_seconds:g} s) per (model, mode), each in a fresh process; torch threads "
               f"{args.threads or 'default'}")
    runs = [row for name in args.model_list for row in _measure_model(data, name, args)]
    pgt = [] if args.no_pgt else _compare_with_pgt(data, args)

    table = report.markdown_table(_summary_rows(runs, args.mode_list), _summary_headers(args.mode_list))
    report.log("\n" + table + "\n")
    targets = [_pgt_line(row) for row in pgt]
    for line in targets:
        report.log(line)

    out = args.out
    report.write_csv(out / "zoo_runs.csv", runs, RUN_COLUMNS)
    report.write_csv(out / "zoo_pgt.csv", pgt, PGT_COLUMNS)
    _plot(out, runs, args.model_list, args.mode_list)
    sections = [
        f"{data.name} ({data.source}, {shape.num_nodes} nodes x {shape.num_timesteps} steps, F={shape.num_features}, "
        f"L={shape.lags}), batch {args.batch_size}. Each (model, mode) in a fresh process: preparation and "
        f"{args.passes} passes over K training batches through `Trainer.train_epoch` (K = {args.batches}, or up to "
        f"{args.max_batches} for a model whose pass took under {args.min_pass_seconds:g} s). Step: median "
        f"over the last pass of asking for a batch to asking for the next. Peak: RSS above the process's "
        f"RSS after imports and a warm-up step. torch threads: {args.threads or 'default'}.",
        "## Step time and peak memory\n\n" + table + "\n\n![step time](zoo_step.png)\n\n![peak memory](zoo_peak.png)",
        "## Against PGT's materialising workflow\n\n" + ("\n".join(f"- {line}" for line in targets) or "not run"),
    ]
    report.write_markdown(out / "zoo.md", "Model zoo benchmark", command, machine, sections)
    report.log(f"\nwrote {out / 'zoo.md'}, {out / 'zoo_runs.csv'}, {out / 'zoo_pgt.csv'}, "
               f"{out / 'zoo_step.png'}, {out / 'zoo_peak.png'}")
    return 0


def _measure_model(data, name: str, args) -> list[dict]:
    """One fresh-process row per mode, each over the same K batches a pass. K is --batches, or
    more where the first mode's pass was shorter than --min-pass-seconds (that mode is then
    measured again): a median of 3 steps of a few milliseconds is mostly noise."""
    has_gpu = torch.cuda.is_available()
    batches, rows = args.batches, []
    for mode in args.mode_list:
        if mode in GPU_MODES and not has_gpu:
            rows.append({"model": name, "mode": mode, "status": "no GPU on this machine"})
            continue
        row = _measure(data, mode, name, batches, args)
        if not any(r.get("status") == "ok" for r in rows) and _batches_for(row, batches, args) > batches:
            batches = _batches_for(row, batches, args)
            row = _measure(data, mode, name, batches, args)
        row.update(model=name, batch_size=args.batch_size)
        rows.append(row)
        report.log(_run_line(row))
    return rows


def _measure(data, mode: str, name: str, batches: int, args) -> dict:
    return cli.measure_memory(data, mode, args, batch_size=args.batch_size, max_batches=batches, train=True,
                              model=name, timeout=args.timeout, passes=args.passes)


def _batches_for(row: dict, batches: int, args) -> int:
    """K for a pass of at least --min-pass-seconds, at most --max-batches and the training split."""
    if row.get("status") != "ok" or not row.get("step_s") or row["step_s"] * batches >= args.min_pass_seconds:
        return batches
    available = max(1, int(row["batches"]) if int(row["batches"]) < batches else args.max_batches)
    return max(batches, min(args.max_batches, available, math.ceil(args.min_pass_seconds / row["step_s"])))


def _run_line(row: dict) -> str:
    head = f"  {row['model']:>18} {row['mode']:>10}:"
    if row["status"] != "ok":
        return f"{head} {row['status']}"
    return (f"{head} {row['step_s'] * 1e3:9.1f} ms/step (data {row['data_share']:.1%}), peak "
            f"{row['peak_gib']:.3f} GiB above idle; prep {row['prep_s']:.1f} s")


def _summary_headers(modes: list[str]) -> list[tuple[str, str]]:
    headers = [("model", "model"), ("params", "parameters"), ("batches", "K")]
    headers += [(f"step_{m}", f"{m} ms/step") for m in modes]
    headers += [(f"peak_{m}", f"{m} peak GiB") for m in modes]
    if "base" in modes:
        headers += [(f"vs_base_{m}", f"{m} peak / base") for m in modes if m != "base"]
    return headers


def _summary_rows(runs: list[dict], modes: list[str]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = {r["mode"]: r for r in runs if r["model"] == name}
        params = next((r.get("params") for r in mine.values() if r.get("params") is not None), None)
        row = {"model": name + (" (no parameters: forward only)" if params == 0 else ""),
               "params": "-" if params is None else f"{params:,}",
               "batches": next((r["batches"] for r in mine.values() if r.get("status") == "ok"), "-")}
        for m in modes:
            r = mine.get(m, {})
            ok = r.get("status") == "ok"
            row[f"step_{m}"] = f"{r['step_s'] * 1e3:.1f}" if ok else r.get("status", "-")[:40]
            row[f"peak_{m}"] = f"{r['peak_gib']:.3f}" if ok else "-"
        base = mine.get("base", {})
        for m in modes:
            r = mine.get(m, {})
            if m != "base" and base.get("status") == "ok" and r.get("status") == "ok" and base["peak_gib"] > 0:
                row[f"vs_base_{m}"] = f"{r['peak_gib'] / base['peak_gib']:.1%}"
        rows.append(row)
    return rows


def _compare_with_pgt(data, args) -> list[dict]:
    rows = []
    for name in (m for m in args.model_list if m in PGT_EXAMPLES):
        outcome = run_task("zoo_pgt_workflow",
                           {"model": name, "dataset": data.name, "data_dir": str(data.data_dir),
                            "batch_size": args.batch_size, "steps": args.pgt_steps, "rounds": args.pgt_rounds,
                            "seed": args.seed, "threads": args.threads or None},
                           timeout=args.timeout, guard_bytes=int(args.guard_gib * GIB))
        if outcome.status == "input error":
            raise InputError(outcome.message)
        if not outcome.ok:
            if args.debug:
                print(outcome.log_tail)
            rows.append({"model": name, "status": f"{outcome.status}: {outcome.message}"[:300]})
            continue
        r = outcome.result
        ours, pgt = report.median(r["ours_all"]), report.median(r["pgt_all"])
        # each round's two sides ran back to back: their ratio cancels the machine's slower drifts
        ratios = [o / p for o, p in zip(r["ours_all"], r["pgt_all"])]
        rows.append({"model": name, "status": "ok", "ours_step_s": ours, "pgt_step_s": pgt,
                     "ratio": report.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "ours_all": " ".join(f"{v * 1e3:.1f}" for v in r["ours_all"]),
                     "pgt_all": " ".join(f"{v * 1e3:.1f}" for v in r["pgt_all"]),
                     "materialised_gib": r["materialised_bytes"] / GIB, "series_gib": r["series_bytes"] / GIB,
                     "materialise_s": r["materialise_s"], "steps": args.pgt_steps, "rounds": args.pgt_rounds,
                     "threads": r["threads"]})
    return rows


def _pgt_line(row: dict) -> str:
    label = f"{row['model']}: our index path / PGT's materialising workflow, per step"
    if row["status"] != "ok":
        return report.target_line(label, row["status"], f"<= {TARGET_VS_PGT:.2f}", None)
    measured = (f"{row['ratio']:.2f}, rounds {row['ratio_min']:.2f}-{row['ratio_max']:.2f} ("
                f"{row['ours_step_s'] * 1e3:.1f} vs {row['pgt_step_s'] * 1e3:.1f} ms, medians of {row['rounds']} "
                f"rounds of {row['steps']} steps; PGT materialised "
                f"{human(row['materialised_gib'] * GIB)} of training windows, our index path holds the "
                f"{human(row['series_gib'] * GIB)} series)")
    return report.target_line(label, measured, f"<= {TARGET_VS_PGT:.2f}", row["ratio"] <= TARGET_VS_PGT)


def _plot(out, runs: list[dict], models: list[str], modes: list[str]) -> None:
    def series(key: str, scale: float) -> dict[str, list[float | None]]:
        table = {}
        for m in modes:
            values = []
            for name in models:
                r = next((r for r in runs if r["model"] == name and r["mode"] == m), None)
                values.append(r[key] * scale if r is not None and r.get("status") == "ok" else None)
            table[m] = values
        return table

    report.bar_chart(out / "zoo_step.png", models, series("step_s", 1e3), ylabel="ms per training step",
                     title="Training step (batch + forward/backward/update) per model and mode", log=True)
    report.bar_chart(out / "zoo_peak.png", models, series("peak_gib", 1.0), ylabel="peak RSS above idle (GiB)",
                     title="Peak memory: preparation + training batches", log=True)
