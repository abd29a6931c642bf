"""Peak memory of each batching mode on each dataset, and of the peer PGT loader's index path.

For every dataset (real files when present at the real size, synthetic ones otherwise) and mode
(base, index, lazy-index, gpu-index when a GPU is visible, and the peer: PyTorch Geometric
Temporal 0.56.2's index path), a fresh process preprocesses the data and trains K batches
(forward/backward of ``dcrnn-cell``; ``--assembly-only`` assembles them only). Its memory is the
peak RSS of the process tree above its RSS after imports (and the GPU allocator's peak).
``base-gpu`` and ``lazy-index-gpu`` (not run by default) train on the GPU with each batch copied
over, the standard workflow to compare GPU-index-batching with. Each run also records the time
of its last pass over the K batches and the part of it spent producing batches (data share).
Before a mode runs, its exact size is checked against the memory available: what would not fit
is reported as "does not fit: needs X GiB" and not run.
"""

from __future__ import annotations

import argparse

import torch

from pgti.bench import cli, report
from pgti.bench.inputs import locate, sized
from pgti.bench.runner import GIB
from pgti.bench.tasks import GPU_MODES, MEMORY_MODES
from pgti.cli_util import run_cli
from pgti.datasets.registry import DATASETS, get_spec

MIB = 1 << 20
PAPER_REDUCTION = 0.89  # "up to 89% lower peak memory"
# Full PeMS targets (issue "Benchmarks").
PEMS_INDEX_FACTOR, PEMS_INDEX_EXTRA_GIB = 1.3, 2.0
PEMS_LAZY_GIB = 4.0
LARGE_SERIES_BYTES = 1 << 30  # datasets whose float32 series is larger run --large-repeats times
DEFAULT_MODES = ("base", "index", "lazy-index", "gpu-index", "peer")

RUN_COLUMNS = ("dataset", "source", "nodes", "timesteps", "features", "mode", "repeat", "status",
               "peak_gib", "gpu_peak_gib", "idle_gib", "series_gib", "storage_gib", "estimate_gib",
               "prep_s", "batches", "batches_s", "threads", "rss_exact", "wall_s",
               "model", "batch_size", "last_pass_s", "data_s", "data_share", "gpu_alloc_gib")
SUMMARY_COLUMNS = ("dataset", "source", "nodes", "timesteps", "mode", "status", "runs", "peak_gib",
                   "peak_min_gib", "peak_max_gib", "total_gib", "gpu_peak_gib", "series_gib", "estimate_gib",
                   "vs_base", "vs_peer", "prep_s")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES),
                        help=f"comma-separated, from {', '.join(MEMORY_MODES)}")
    parser.add_argument("--batches", type=cli.positive_int, default=3, help="K: training batches measured")
    parser.add_argument("--assembly-only", action="store_true",
                        help="assemble the K batches without running the model")
    parser.add_argument("--model", default="dcrnn-cell")
    parser.add_argument("--batch-size", type=cli.positive_int, default=None,
                        help="default: each dataset's (chickenpox 4, the others 64)")
    parser.add_argument("--nodes", type=cli.positive_int, default=None, help="size of every dataset (tests)")
    parser.add_argument("--timesteps", type=cli.positive_int, default=None)
    parser.add_argument("--max-nodes", type=cli.positive_int, default=None, help="cap on every dataset's size")
    parser.add_argument("--max-timesteps", type=cli.positive_int, default=None)
    parser.add_argument("--large-repeats", type=cli.positive_int, default=1,
                        help="runs per mode for datasets whose float32 series exceeds 1 GiB")
    parser.add_argument("--passes", type=cli.positive_int, default=1,
                        help="passes over the K batches per run; times and data share are the last "
                             "pass's (2: the first warms up CUDA kernels and the allocator)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measured run")
    parser.add_argument("--tag", default="", help="suffix of the output files (memory<_tag>.csv ...)")
    cli.add_common_args(parser, repeats=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_nodes = args.max_nodes or 512
        args.max_timesteps = args.max_timesteps or 8064
        args.batches = min(args.batches, 2)
        if "--repeats" not in argv:
            args.repeats = 1
    args.dataset_list = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for name in args.dataset_list:
        get_spec(name)
    args.mode_list = cli.name_list(args.modes, MEMORY_MODES, "--modes", "mode")
    return args


def main(argv=None) -> int:
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    machine, command = report.start("bench_memory.py", argv)
    what = "batch assembly only" if args.assembly_only else f"forward/backward of {args.model}"
    report.log(f"measuring: preprocessing + {args.batches} training batches ({what}); torch threads "
               f"{args.threads or 'default'}")
    has_gpu = torch.cuda.is_available()

    runs = []
    for name in args.dataset_list:
        nodes, steps = args.nodes, args.timesteps
        if nodes is None and steps is None:
            nodes, steps = sized(name, args.max_nodes, args.max_timesteps)
        data = locate(name, data_dir=args.data_dir, cache_dir=args.cache_dir, nodes=nodes, timesteps=steps,
                      seed=args.seed, log=report.log)
        shape = data.shape
        batch_size = args.batch_size or get_spec(name).default_batch_size
        batch_size = min(batch_size, max(1, int(0.7 * shape.num_windows)))
        repeats = args.large_repeats if shape.series_bytes > LARGE_SERIES_BYTES else args.repeats
        report.log(f"{name} ({data.source}): {shape.num_nodes} nodes x {shape.num_timesteps} steps x "
                   f"{shape.num_features} features; float32 series {shape.series_bytes / GIB:.3f} GiB; "
                   f"batch {batch_size}; {repeats} run(s) per mode")
        for repeat in range(repeats):
            for mode in cli.rotate(args.mode_list, repeat):
                if mode in GPU_MODES and not has_gpu:
                    if repeat == 0:
                        runs.append({"dataset": name, "source": data.source, "nodes": shape.num_nodes,
                                     "timesteps": shape.num_timesteps, "mode": mode, "repeat": 0,
                                     "series_gib": shape.series_bytes / GIB, "status": "no GPU on this machine"})
                    continue
                row = cli.measure_memory(data, mode, args, batch_size=batch_size, max_batches=args.batches,
                                         train=not args.assembly_only, model=args.model, repeat=repeat,
                                         timeout=args.timeout, passes=args.passes)
                row["batch_size"] = batch_size
                row["model"] = None if args.assembly_only else args.model
                runs.append(row)
                report.log(_run_line(row))

    summary = summarise(runs, args.dataset_list, args.mode_list)
    targets = target_lines(summary, args)
    table = report.markdown_table(summary_md(summary), SUMMARY_HEADERS)
    report.log("\n" + table + "\n")
    for line in targets:
        report.log(line)

    out, tag = args.out, (f"_{args.tag}" if args.tag else "")
    report.write_csv(out / f"memory{tag}_runs.csv", runs, RUN_COLUMNS)
    report.write_csv(out / f"memory{tag}.csv", summary, SUMMARY_COLUMNS)
    plot(out / f"memory{tag}.png", summary, args)
    sections = [
        f"Each mode in a fresh process; median of {args.repeats} run(s) ({args.large_repeats} for series "
        f"over 1 GiB). Peak = process-tree RSS above the process's RSS after imports, over preprocessing + "
        f"{args.batches} training batches ({what}). `peer` = PyTorch Geometric Temporal 0.56.2's "
        f"index path (its loader's array, `IndexDataset`, default `DataLoader`). torch threads: "
        f"{args.threads or 'default'}.",
        "## Peak memory\n\n" + table + f"\n\n![peak memory](memory{tag}.png)",
        "## Targets and claims\n\n" + "\n".join(f"- {line}" for line in targets),
    ]
    report.write_markdown(out / f"memory{tag}.md", "Memory benchmark", command, machine, sections)
    report.log(f"\nwrote {out / f'memory{tag}.md'}, {out / f'memory{tag}.csv'}, "
               f"{out / f'memory{tag}_runs.csv'}, {out / f'memory{tag}.png'}")
    return 0


def _run_line(row: dict) -> str:
    head = f"  {row['dataset']:>14} {row['mode']:>10} run {row['repeat']}:"
    if row["status"] != "ok":
        return f"{head} {row['status']}"
    gpu = (f", GPU {row['gpu_alloc_gib']:.3f} GiB allocated ({row['gpu_peak_gib']:.3f} reserved)"
           if row.get("gpu_peak_gib") else "")
    share = f", data {row['data_share']:.1%}" if row.get("data_share") is not None else ""
    return (f"{head} peak {row['peak_gib']:.3f} GiB above idle{gpu}; prep {row['prep_s']:.1f} s, "
            f"{row['batches']} batches in {row['batches_s']:.1f} s (last pass {row['last_pass_s']:.2f} s{share})")


def summarise(runs: list[dict], datasets: list[str], modes: list[str]) -> list[dict]:
    rows = []
    for name in datasets:
        by_mode = {}
        for mode in modes:
            mine = [r for r in runs if r["dataset"] == name and r["mode"] == mode]
            if not mine:
                continue
            ok = [r for r in mine if r["status"] == "ok"]
            first = mine[0]
            row = {k: first.get(k) for k in ("dataset", "source", "nodes", "timesteps", "mode",
                                             "series_gib", "estimate_gib")}
            if ok:
                row.update(status="ok", runs=len(ok),
                           peak_gib=report.median(r["peak_gib"] for r in ok),
                           peak_min_gib=min(r["peak_gib"] for r in ok),
                           peak_max_gib=max(r["peak_gib"] for r in ok),
                           total_gib=report.median(r["peak_gib"] + r["idle_gib"] for r in ok),
                           gpu_peak_gib=report.median(r.get("gpu_peak_gib") for r in ok),
                           prep_s=report.median(r["prep_s"] for r in ok))
            else:
                row.update(status=first["status"], runs=0)
            by_mode[mode] = row
        base = by_mode.get("base", {}).get("peak_gib")
        peer = by_mode.get("peer", {}).get("peak_gib")
        for row in by_mode.values():
            if row.get("peak_gib") is not None:
                row["vs_base"] = row["peak_gib"] / base if base else None
                row["vs_peer"] = row["peak_gib"] / peer if peer else None
            rows.append(row)
    return rows


SUMMARY_HEADERS = [("dataset", "dataset"), ("size", "N x T (source)"), ("mode", "mode"),
                   ("peak", "peak above idle, GiB (median [min-max], runs)"), ("vs_base", "vs base"),
                   ("vs_peer", "vs peer"), ("total", "total peak RSS GiB"), ("series", "float32 series GiB"),
                   ("prep", "prep s")]


def summary_md(summary: list[dict]) -> list[dict]:
    rows = []
    for r in summary:
        row = {"dataset": r["dataset"], "mode": r["mode"],
               "size": f"{r['nodes']} x {r['timesteps']} ({r['source']})",
               "series": report.fmt(r.get("series_gib"), ".3f")}
        if r["status"] == "ok":
            row["peak"] = (f"{r['peak_gib']:.3f} [{r['peak_min_gib']:.3f}-{r['peak_max_gib']:.3f}], {r['runs']}"
                           + (f"; GPU {r['gpu_peak_gib']:.3f}" if r.get("gpu_peak_gib") else ""))
            row["vs_base"] = report.fmt(r.get("vs_base"), ".1%")
            row["vs_peer"] = report.fmt(r.get("vs_peer"), ".1%")
            row["prep"] = report.fmt(r.get("prep_s"), ".1f")
            row["total"] = report.fmt(r.get("total_gib"), ".3f")
        else:
            row["peak"] = r["status"]
        rows.append(row)
    return rows


def target_lines(summary: list[dict], args) -> list[str]:
    lines = []
    reductions = [(1 - r["vs_base"], r["dataset"]) for r in summary
                  if r["mode"] == "index" and r.get("vs_base") is not None]
    if reductions:
        best, where = max(reductions)
        lines.append(report.target_line(
            "paper claim, peak memory index vs base", f"up to {best:.1%} lower ({where})",
            f"paper: up to {PAPER_REDUCTION:.0%} lower", best >= PAPER_REDUCTION))
    else:
        lines.append(report.target_line("paper claim, peak memory index vs base",
                                        "base not measured on any dataset", f"up to {PAPER_REDUCTION:.0%}", None))
    vs_peer = [(1 - r["vs_peer"], r["dataset"]) for r in summary
               if r["mode"] == "index" and r.get("vs_peer") is not None]
    if vs_peer:
        best, where = max(vs_peer)
        lines.append(f"info: index vs the peer PGT index path: up to {best:.1%} lower peak ({where})")
    pems = {r["mode"]: r for r in summary if r["dataset"] == "pems"}
    if pems:
        series = pems[next(iter(pems))]["series_gib"]
        full = pems[next(iter(pems))]["nodes"] == 11160
        scale = "" if full else " (NOT full size: targets are for 11,160 x 105,120)"
        limit = PEMS_INDEX_FACTOR * series + PEMS_INDEX_EXTRA_GIB
        for mode, target, bound in (("index", f"<= 1.3 x series + 2 GiB = {limit:.2f} GiB", limit),
                                    ("lazy-index", f"< {PEMS_LAZY_GIB:g} GiB", PEMS_LAZY_GIB)):
            r = pems.get(mode)
            if r is None or r.get("peak_gib") is None:
                status = "not run" if r is None else r["status"]
                lines.append(report.target_line(f"PeMS {mode} peak{scale}", status, target, None))
            else:
                ok = r["peak_gib"] <= bound if mode == "index" else r["peak_gib"] < bound
                lines.append(report.target_line(f"PeMS {mode} peak{scale}", f"{r['peak_gib']:.2f} GiB", target, ok))
        base = pems.get("base")
        if base is not None:
            refused = base["status"].startswith("does not fit")
            shown = base["status"] if not refused else base["status"].split(" (keeping")[0]
            lines.append(report.target_line(f"PeMS base refused with its estimate{scale}", shown,
                                            "does not fit (needs ~2L x the series)", refused if full else None))
    gpu = [r for r in summary if r["mode"] in GPU_MODES]
    if gpu and all(r["status"] != "ok" for r in gpu):
        lines.append("GPU targets: not measured, no GPU on this machine")
    return lines


def plot(path, summary: list[dict], args) -> None:
    datasets = list(dict.fromkeys(r["dataset"] for r in summary))
    modes = [m for m in args.mode_list if any(r["mode"] == m for r in summary)]
    series, notes = {}, {}
    for mode in modes:
        vals = []
        for name in datasets:
            r = next((r for r in summary if r["dataset"] == name and r["mode"] == mode), None)
            vals.append(None if r is None else r.get("peak_gib"))
            if r is not None and r.get("peak_gib") is None:
                status = r["status"]
                notes[(name, mode)] = ("does not fit" if status.startswith("does not fit")
                                       else "no GPU" if status.startswith("no GPU") else status.split(":")[0][:14])
        series[mode] = vals
    what = "assembly only" if args.assembly_only else f"{args.batches} training batches of {args.model}"
    report.bar_chart(path, datasets, series, ylabel="peak RSS above idle (GiB)", log=True, notes=notes,
                     title=f"Peak memory: preprocessing + {what}")
