#!/usr/bin/env python
"""Speed: batch-assembly rate and epoch time per mode, against the peer and this machine's copy
bandwidth, and the training-step time of our DCRNN models against PGT's BatchedDCRNN.

1. One pass over the training batches (batch assembly, no model) per mode (base, index,
   lazy-index, peer = PGT 0.56.2's IndexDataset + default DataLoader on its loader's array),
   each in a fresh process, repeats interleaved; preprocessing timed separately.
2. Batch assembly side by side in one process: index, the peer on the same float32 series and on
   its own array, and plain tensor copies of the same bytes; plus a large-copy bandwidth.
3. One training step (forward, masked-MAE backward, Adam) of pgt-dcrnn, dcrnn-cell and dcrnn at
   the dataset's shape, timed by ``scripts/bench_models.py`` (run as it is, one model per run).

    python scripts/bench_speed.py                      # PeMS-Bay size
    python scripts/bench_speed.py --quick              # 325 x 8,064 steps, models at 64 nodes
    python scripts/bench_speed.py --nodes 8 --timesteps 300 --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pgti.bench import cli, report
from pgti.bench.inputs import locate
from pgti.bench.runner import GIB, child_env, run_command, run_task
from pgti.cli_util import run_cli
from pgti.errors import InputError

MODES = ("base", "index", "lazy-index", "peer")
MODELS = ("pgt-dcrnn", "dcrnn-cell", "dcrnn")
EDGES_PER_NODE = 2694 / 325  # PeMS-Bay's DCRNN graph, self loops included
BENCH_MODELS = Path(__file__).resolve().parent / "bench_models.py"
STEP_LINE = re.compile(r"^\s*([\w-]+):\s+([\d.]+) ms/step\s+\(min ([\d.]+), max ([\d.]+)", re.M)

EPOCH_COLUMNS = ("mode", "runs", "status", "prep_s", "first_pass_s", "pass_s", "pass_min_s", "pass_max_s",
                 "batches", "batches_per_s", "vs_peer", "data_share_of_cell_epoch")
RATE_COLUMNS = ("method", "batches_per_s", "gbytes_per_s", "vs_index", "fraction_of_copy_rate", "trials")
STEP_COLUMNS = ("model", "status", "ms_per_step", "min_ms", "max_ms", "steps", "vs_pgt_dcrnn", "nodes",
                "batch_size", "edges")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="pems-bay")
    parser.add_argument("--nodes", type=cli.positive_int, default=None)
    parser.add_argument("--timesteps", type=cli.positive_int, default=None)
    parser.add_argument("--batch-size", type=cli.positive_int, default=64)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rate-batches", type=cli.positive_int, default=500)
    parser.add_argument("--rate-trials", type=cli.positive_int, default=7)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated; empty: skip")
    parser.add_argument("--model-nodes", type=cli.positive_int, default=None,
                        help="nodes of the step-time shape (default: the dataset's)")
    parser.add_argument("--model-repeats", type=cli.positive_int, default=3,
                        help="timed steps per model (dcrnn, ~1 min a step here, gets 1)")
    parser.add_argument("--model-warmup", type=int, default=1)
    parser.add_argument("--model-timeout", type=float, default=900.0)
    cli.add_common_args(parser, repeats=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.timesteps = args.timesteps or 8064
        args.rate_batches = min(args.rate_batches, 50)
        args.rate_trials = min(args.rate_trials, 3)
        args.model_repeats = min(args.model_repeats, 2)
        if "--repeats" not in argv:
            args.repeats = 1
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in args.mode_list:
        if mode not in MODES:
            raise InputError(f"--modes: unknown mode {mode!r}; choose from {', '.join(MODES)}")
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in args.model_list:
        if model not in MODELS:
            raise InputError(f"--models: unknown model {model!r}; choose from {', '.join(MODELS)}")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    machine, command = report.start(__file__, argv)
    data = locate(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, nodes=args.nodes,
                  timesteps=args.timesteps, seed=args.seed, log=report.log)
    shape = data.shape
    report.log(f"data: {data.name} ({data.source}) {shape.num_nodes} x {shape.num_timesteps} x "
               f"{shape.num_features}, batch {args.batch_size}; torch threads {args.threads or 'default'}")

    # 1. one pass over the training batches per mode, fresh processes
    runs = []
    for repeat in range(args.repeats):
        for mode in cli.rotate(args.mode_list, repeat):
            row = cli.measure_memory(data, mode, args, batch_size=args.batch_size, max_batches=None,
                                     train=False, repeat=repeat, passes=2)
            runs.append(row)
            report.log(f"  pass {mode:>10} run {repeat}: " + (
                f"prep {row['prep_s']:.2f} s, {row['batches']} batches in {row['batches_s']:.2f} s "
                f"(first pass), {row['last_pass_s']:.2f} s (second)" if row["status"] == "ok" else row["status"]))

    # 2. side-by-side rates
    rates = run_task("rates", {"dataset": data.name, "data_dir": str(data.data_dir),
                               "batch_size": args.batch_size, "batches": args.rate_batches,
                               "trials": args.rate_trials, "seed": args.seed, "threads": args.threads or None},
                     guard_bytes=int(args.guard_gib * GIB))
    if not rates.ok and rates.status == "input error":
        raise InputError(rates.message)
    if not rates.ok:
        report.warn(f"batch-assembly rates failed: {rates.status}: {rates.message}")
    rate = rates.result if rates.ok else None

    # 3. training-step times
    model_nodes = args.model_nodes or (min(64, shape.num_nodes) if args.quick else shape.num_nodes)
    steps = [time_model(model, model_nodes, shape, args) for model in args.model_list]
    for s in steps:
        shown = f"{s['ms_per_step']:.1f} ms" if s["status"] == "ok" else s["status"]
        report.log(f"  step {s['model']:>10}: {shown}")
    pgt = next((s["ms_per_step"] for s in steps if s["model"] == "pgt-dcrnn" and s["status"] == "ok"), None)
    for s in steps:
        if s.get("ms_per_step") and pgt:
            s["vs_pgt_dcrnn"] = pgt / s["ms_per_step"]

    cell_ms = next((s["ms_per_step"] for s in steps if s["model"] == "dcrnn-cell" and s["status"] == "ok"), None)
    epochs = epoch_rows(runs, args.mode_list, cell_ms)
    rate_rows = rate_table(rate)
    lines = claim_lines(epochs, rate, steps, machine)

    report.log("")
    for title, rows, headers in (("epoch", epochs, EPOCH_HEADERS), ("rates", rate_rows, RATE_HEADERS),
                                 ("steps", steps, STEP_HEADERS)):
        if rows:
            report.log(report.markdown_table(md_rows(rows), headers) + "\n")
    for line in lines:
        report.log(line)

    out = args.out
    report.write_csv(out / "speed_epoch.csv", epochs, EPOCH_COLUMNS)
    report.write_csv(out / "speed_rates.csv", rate_rows, RATE_COLUMNS)
    report.write_csv(out / "speed_steps.csv", steps, STEP_COLUMNS)
    plot(out / "speed.png", epochs, rate_rows, steps)
    sections = [
        f"Data: {data.name} ({data.source}), {shape.num_nodes} nodes x {shape.num_timesteps} steps x "
        f"{shape.num_features} features, L = {shape.lags}, batch {args.batch_size}. torch threads: "
        f"{args.threads or 'default'}.",
        f"## Passes over the training batches (assembly only), fresh process per mode, median of "
        f"{args.repeats}\n\n" + report.markdown_table(md_rows(epochs), EPOCH_HEADERS)
        + "\n\nTwo passes (epochs) per process; rates and ratios use the second. The first pass of a "
          "process can be several times slower for reasons outside batching: glibc's malloc gives freed "
          "batch-sized buffers back to the kernel (and page-faults them in again) until a large enough "
          "free raises its thresholds, which preprocessing does in some modes and not in others. "
          "`data share` = pass time / (pass time + batches x the dcrnn-cell step time below): the "
          "fraction of a CPU training epoch spent assembling batches (derived, not measured as one run).",
    ]
    if rate_rows:
        sections.append(
            f"## Batch assembly side by side ({rate['trials']} trials of {rate['batches_per_trial']} batches, "
            f"median)\n\n" + report.markdown_table(md_rows(rate_rows), RATE_HEADERS)
            + f"\n\nA 256 MiB copy into a preallocated tensor (DRAM bandwidth) runs at "
              f"{rate['large_copy_bytes_per_s'] / 1e9:.2f} GB/s. One batch (X and Y): "
              f"{rate['batch_bytes'] / (1 << 20):.2f} MiB.")
    if steps:
        sections.append(
            f"## Training step (forward + backward + Adam), B = {args.batch_size}, L = {shape.lags}, "
            f"N = {model_nodes}, F = {shape.num_features}, by `scripts/bench_models.py`\n\n"
            + report.markdown_table(md_rows(steps), STEP_HEADERS))
    sections.append("## Claims and targets\n\n" + "\n".join(f"- {line}" for line in lines)
                    + "\n\n![speed](speed.png)")
    report.write_markdown(out / "speed.md", "Speed benchmark", command, machine, sections)
    report.log(f"\nwrote {out / 'speed.md'}, {out / 'speed_epoch.csv'}, {out / 'speed_rates.csv'}, "
               f"{out / 'speed_steps.csv'}, {out / 'speed.png'}")
    return 0


def time_model(model: str, nodes: int, shape, args) -> dict:
    """One bench_models.py run for ``model`` at (B, L, nodes, F)."""
    repeats = 1 if model == "dcrnn" else args.model_repeats
    edges = min(nodes * nodes, max(nodes, round(EDGES_PER_NODE * nodes)))
    row = {"model": model, "nodes": nodes, "batch_size": args.batch_size, "edges": edges, "steps": repeats}
    cmd = [sys.executable, str(BENCH_MODELS), "--models", model, "--nodes", str(nodes), "--edges", str(edges),
           "--batch-size", str(args.batch_size), "--lags", str(shape.lags), "--features", str(shape.num_features),
           "--repeats", str(repeats), "--warmup", str(args.model_warmup), "--seed", str(args.seed)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    outcome = run_command(cmd, timeout=args.model_timeout, guard_bytes=int(args.guard_gib * GIB),
                          env=child_env(args.threads))
    if not outcome.ok:
        return {**row, "status": f"{outcome.status}: {outcome.message}"[:300]}
    match = next((m for m in STEP_LINE.finditer(outcome.result["output"]) if m.group(1) == model), None)
    if match is None:
        return {**row, "status": "error: no 'ms/step' line in bench_models.py's output"}
    return {**row, "status": "ok", "ms_per_step": float(match.group(2)), "min_ms": float(match.group(3)),
            "max_ms": float(match.group(4))}


def epoch_rows(runs: list[dict], modes: list[str], cell_ms: float | None) -> list[dict]:
    rows = []
    for mode in modes:
        ok = [r for r in runs if r["mode"] == mode and r["status"] == "ok"]
        if not ok:
            status = next((r["status"] for r in runs if r["mode"] == mode), "not run")
            rows.append({"mode": mode, "runs": 0, "status": status})
            continue
        pass_s = report.median(r["last_pass_s"] for r in ok)
        n = ok[0]["batches"]
        row = {"mode": mode, "runs": len(ok), "status": "ok", "prep_s": report.median(r["prep_s"] for r in ok),
               "first_pass_s": report.median(r["batches_s"] for r in ok),
               "pass_s": pass_s, "pass_min_s": min(r["last_pass_s"] for r in ok),
               "pass_max_s": max(r["last_pass_s"] for r in ok), "batches": n,
               "batches_per_s": n / pass_s if pass_s > 0 else None}
        if cell_ms:
            row["data_share_of_cell_epoch"] = pass_s / (pass_s + n * cell_ms / 1e3)
        rows.append(row)
    peer = next((r["pass_s"] for r in rows if r["mode"] == "peer" and r.get("pass_s")), None)
    for r in rows:
        if r.get("pass_s") and peer:
            r["vs_peer"] = peer / r["pass_s"]
    return rows


RATE_METHODS = (
    ("index", "index batching (ours)"),
    ("peer_same_data", "peer IndexDataset + DataLoader, same float32 series"),
    ("peer_own_layout", "peer IndexDataset + DataLoader, its loader's array"),
    ("memcpy", "plain tensor copies of the same bytes"),
)


def rate_table(rate: dict | None) -> list[dict]:
    if rate is None:
        return []
    rows = []
    for key, label in RATE_METHODS:
        value = rate.get(f"{key}_batches_per_s")
        if value is None:
            continue
        bytes_per_s = value * rate["batch_bytes"]
        rows.append({"method": label, "batches_per_s": value, "gbytes_per_s": bytes_per_s / 1e9,
                     "vs_index": rate["index_batches_per_s"] / value,
                     "fraction_of_copy_rate": value / rate["memcpy_batches_per_s"],
                     "trials": " ".join(f"{v:.0f}" for v in rate[f"{key}_all"])})
    return rows


EPOCH_HEADERS = [("mode", "mode"), ("prep_s", "preprocessing s"), ("first_pass_s", "first pass s"),
                 ("pass_s", "second pass s (median)"), ("pass_range", "[min-max]"), ("batches", "batches"),
                 ("batches_per_s", "batches/s"),
                 ("vs_peer", "speed-up vs peer"), ("data_share_of_cell_epoch", "data share of a dcrnn-cell epoch"),
                 ("status", "status")]
RATE_HEADERS = [("method", "method"), ("batches_per_s", "batches/s"), ("gbytes_per_s", "GB/s"),
                ("vs_index", "index / method"), ("fraction_of_copy_rate", "of same-size copy rate"),
                ("trials", "trials")]
STEP_HEADERS = [("model", "model"), ("ms_per_step", "ms/step (median)"), ("range", "[min-max]"),
                ("steps", "timed steps"), ("vs_pgt_dcrnn", "speed-up vs pgt-dcrnn"), ("status", "status")]


def md_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        m = dict(r)
        for key in ("prep_s", "first_pass_s", "pass_s"):
            m[key] = report.fmt(r.get(key), ".2f")
        if r.get("pass_min_s") is not None:
            m["pass_range"] = f"{r['pass_min_s']:.2f}-{r['pass_max_s']:.2f}"
        if r.get("min_ms") is not None:
            m["range"] = f"{r['min_ms']:.0f}-{r['max_ms']:.0f}"
        for key, spec in (("batches_per_s", ".0f"), ("gbytes_per_s", ".2f"), ("vs_index", ".2f"),
                          ("vs_peer", ".2f"), ("vs_pgt_dcrnn", ".1f"), ("ms_per_step", ".1f")):
            if key in r:
                m[key] = report.fmt(r.get(key), spec)
        for key in ("fraction_of_copy_rate", "data_share_of_cell_epoch"):
            if key in r:
                m[key] = report.fmt(r.get(key), ".1%")
        out.append(m)
    return out


def claim_lines(epochs: list[dict], rate: dict | None, steps: list[dict], machine: dict) -> list[str]:
    lines = []
    if rate is not None:
        idx, peer = rate["index_batches_per_s"], rate["peer_same_data_batches_per_s"]
        copy = rate["memcpy_batches_per_s"]
        lines.append(report.target_line("index / peer batch assembly (same data)", f"{idx / peer:.2f}x",
                                        ">= 5x", idx / peer >= 5))
        lines.append(report.target_line("index / plain copies of the same bytes", f"{idx / copy:.0%}",
                                        ">= 50%", idx / copy >= 0.5))
        lines.append(f"info: index batching moves {idx * rate['batch_bytes'] / 1e9:.2f} GB/s; plain copies of "
                     f"the same size {copy * rate['batch_bytes'] / 1e9:.2f} GB/s; one 256 MiB copy (DRAM to DRAM) "
                     f"{rate['large_copy_bytes_per_s'] / 1e9:.2f} GB/s (batch-sized buffers are reused and "
                     f"partly stay in cache, so they can beat it)")
    cell = next((s for s in steps if s["model"] == "dcrnn-cell" and s.get("vs_pgt_dcrnn")), None)
    if cell is not None:
        lines.append(report.target_line("pgt-dcrnn / dcrnn-cell step time", f"{cell['vs_pgt_dcrnn']:.1f}x",
                                        ">= 5x", cell["vs_pgt_dcrnn"] >= 5))
    if machine["gpu"] == "none":
        lines.append("GPU targets (GPU-index epoch <= 0.5 x base epoch at PeMS-Bay size, batch 64; no per-batch "
                     "host-to-device copy): not measured, no GPU on this machine")
    return lines


def plot(path, epochs: list[dict], rate_rows: list[dict], steps: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    ok = [e for e in epochs if e.get("pass_s")]
    axes[0].bar([e["mode"] for e in ok], [e["pass_s"] for e in ok], color="tab:blue")
    axes[0].set_title("one pass over training batches (s)", fontsize=9)
    axes[1].barh([r["method"].replace(", ", ",\n") for r in rate_rows], [r["batches_per_s"] for r in rate_rows],
                 color="tab:green")
    axes[1].set_title("batch assembly (batches/s)", fontsize=9)
    axes[1].tick_params(axis="y", labelsize=6)
    okm = [s for s in steps if s.get("ms_per_step")]
    axes[2].bar([s["model"] for s in okm], [s["ms_per_step"] for s in okm], color="tab:orange")
    if okm:
        axes[2].set_yscale("log")
    axes[2].set_title("training step (ms, log)", fontsize=9)
    for ax in axes:
        ax.grid(axis="both", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(run_cli(main))
