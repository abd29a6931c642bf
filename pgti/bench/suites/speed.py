"""Speed: batch-assembly rate and epoch time per mode, against the peer and this machine's copy
bandwidth, and the training-step time of our DCRNN models against PGT's BatchedDCRNN.

1. One pass over the training batches (batch assembly, no model) per mode (base, index,
   lazy-index, peer = PGT 0.56.2's IndexDataset + default DataLoader on its loader's array),
   each in a fresh process, repeats interleaved; preprocessing timed separately.
2. Batch assembly side by side in one process: index, the peer on the same float32 series and on
   its own array, and plain tensor copies of the same bytes; plus a large-copy bandwidth.
3. One training step (forward, masked-MAE backward, Adam) of pgt-dcrnn, dcrnn-cell and dcrnn at
   the dataset's shape, timed as ``scripts/bench_models.py`` times it: the models suite's
   ``run_alone``, one model per fresh process, its step times coming back as JSON.
"""

from __future__ import annotations

import argparse

from pgti.bench import cli, report
from pgti.bench.runner import GIB
from pgti.bench.suites.models import StepShape, run_alone
from pgti.cli_util import run_cli

MODES = ("base", "index", "lazy-index", "peer")
MODELS = ("pgt-dcrnn", "dcrnn-cell", "dcrnn")
EDGES_PER_NODE = 2694 / 325  # PeMS-Bay's DCRNN graph, self loops included

EPOCH_COLUMNS = ("mode", "runs", "status", "prep_s", "first_pass_s", "pass_s", "pass_min_s", "pass_max_s",
                 "batches", "batches_per_s", "vs_peer", "data_share_of_cell_epoch")
RATE_COLUMNS = ("method", "batches_per_s", "gbytes_per_s", "vs_index", "fraction_of_copy_rate", "trials")
STEP_COLUMNS = ("model", "status", "ms_per_step", "min_ms", "max_ms", "steps", "vs_pgt_dcrnn", "nodes",
                "batch_size", "edges")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_dataset_args(parser)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated; empty: skip")
    parser.add_argument("--model-nodes", type=cli.positive_int, default=None,
                        help="nodes of the step-time shape (default: the dataset's)")
    parser.add_argument("--model-repeats", type=cli.positive_int, default=3,
                        help="timed steps per model (dcrnn, ~1 min a step here, gets 1)")
    parser.add_argument("--model-warmup", type=int, default=1)
    parser.add_argument("--model-timeout", type=float, default=900.0)
    cli.add_common_args(parser, repeats=3)
    args = parser.parse_args(argv)
    cli.apply_quick(args, argv)
    if args.quick:
        args.model_repeats = min(args.model_repeats, 2)
    args.mode_list = cli.name_list(args.modes, MODES, "--modes", "mode")
    args.model_list = cli.name_list(args.models, MODELS, "--models", "model")
    return args


def main(argv=None) -> int:
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    machine, command = report.start("bench_speed.py", argv)
    data = cli.locate_dataset(args)
    shape = data.shape
    report.log(f"data: {data.name} ({data.source}) {shape.num_nodes} x {shape.num_timesteps} x "
               f"{shape.num_features}, batch {args.batch_size}; torch threads {args.threads or 'default'}")

    # 1. one pass over the training batches per mode, fresh processes
    runs = cli.measure_passes(data, args.mode_list, args, _pass_line, passes=2)

    # 2. side-by-side rates
    rate = cli.measure_rates(data, args)

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
    rate_rows = report.rate_rows(rate, "index batching (ours)")
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


def _pass_line(row: dict) -> str:
    return f"  pass {row['mode']:>10} run {row['repeat']}: " + (
        f"prep {row['prep_s']:.2f} s, {row['batches']} batches in {row['batches_s']:.2f} s "
        f"(first pass), {row['last_pass_s']:.2f} s (second)" if row["status"] == "ok" else row["status"])


def time_model(model: str, nodes: int, shape, args) -> dict:
    """The step times of ``model`` at (B, L, nodes, F), measured alone in a fresh process."""
    repeats = 1 if model == "dcrnn" else args.model_repeats
    edges = min(nodes * nodes, max(nodes, round(EDGES_PER_NODE * nodes)))
    row = {"model": model, "nodes": nodes, "batch_size": args.batch_size, "edges": edges, "steps": repeats}
    step_shape = StepShape(args.batch_size, shape.lags, nodes, shape.num_features, edges)
    outcome = run_alone(model, {}, step_shape, warmup=args.model_warmup, repeats=repeats, seed=args.seed,
                        threads=args.threads or None, timeout=args.model_timeout,
                        guard_bytes=int(args.guard_gib * GIB))
    if not outcome.ok:
        return {**row, "status": f"{outcome.status}: {outcome.message}"[:300]}
    ms = [1e3 * t for t in outcome.result["times"]]
    return {**row, "status": "ok", "ms_per_step": report.median(ms), "min_ms": min(ms), "max_ms": max(ms)}


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
    ok = [e for e in epochs if e.get("pass_s")]
    okm = [s for s in steps if s.get("ms_per_step")]
    report.bar_panels(path, [
        report.Panel("one pass over training batches (s)", [e["mode"] for e in ok], [e["pass_s"] for e in ok],
                     "tab:blue"),
        report.Panel("batch assembly (batches/s)", [r["method"].replace(", ", ",\n") for r in rate_rows],
                     [r["batches_per_s"] for r in rate_rows], "tab:green", horizontal=True),
        report.Panel("training step (ms, log)", [s["model"] for s in okm], [s["ms_per_step"] for s in okm],
                     "tab:orange", log=True),
    ], figsize=(13, 4))
