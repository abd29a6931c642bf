"""Forecast accuracy against the naive baselines: every zoo model, each trained with its own
recipe (:mod:`pgti.nn.recipes`), on the shipped real sets and on generated METR-LA- and
PeMS-Bay-shaped traffic, several seeds, within a training-time budget.

Targets, per dataset, printed next to the measured values:

1. **The best model beats both baselines at every reported horizon, beyond seed noise.** The
   best model is the one with the lowest mean *validation* MAE (never chosen on test). At each
   reported horizon (3, 6, 12 steps, those up to L) its margin over the better baseline,
   (baseline - model) / baseline, must be positive beyond seed noise (:mod:`pgti.seeds`: the
   one-sided 95% lower bound of the mean over seeds is above 0). A tie within seed noise is a
   miss, and so is a single seed.
2. **Its errors grow with the horizon**: mean test MAE h3 < h6 < h12 (those reported).

Two stages keep the sweep within hours on 2 cores:

- ``screen``: every model, ``--screen-seeds`` seeds, at most ``--screen-seconds`` of training;
- ``final``: the ``--finalists`` models with the lowest screen validation MAE, ``--seeds`` seeds,
  at most ``--budget-seconds`` each. The verdict is about the final model with the lowest mean
  validation MAE.

With ``--finalists 0`` every model runs ``--seeds`` seeds at ``--budget-seconds`` (one stage).

Every run is an ordinary run directory ``OUT/runs/<case>/<model>/<stage>-seed<k>/``, trained by
the single-node runner in a Dask worker with one torch thread (``-np`` workers at once). A run
whose ``stats.csv`` exists and whose config equals the planned one is read back, not trained
again; one with another config is trained again, and the sweep says so.

A case is a dataset read from ``--data-dir`` (``chickenpox``), or ``generated:NAME``: NAME's
synthetic data in its real format, ``--gen-nodes`` x ``--gen-timesteps`` (generator seed
``--gen-seed``), written once into ``OUT/data/NAME-n<nodes>-t<steps>-s<seed>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pgti.bench import report
from pgti.cli_util import ArgumentParser, positive_float, positive_int, run_cli
from pgti.config import RunConfig, read_config
from pgti.datasets.registry import DATASETS
from pgti.errors import InputError
from pgti.observability.outputs import STATS_FILE
from pgti.ranking.sweep import holding_runs, model_dir_name, read_csv_rows
from pgti.seeds import SeedSummary, margin, summarize

DEFAULT_CASES = ("chickenpox", "pedalme", "england-covid", "montevideo-bus", "generated:metr-la",
                 "generated:pems-bay")
GENERATED = "generated:"
BASELINE_COLUMNS = {"last value": "last_value", "historical average": "historical_average"}
STAGES = ("screen", "final")
RUN_COLUMNS = ("case", "dataset", "model", "stage", "seed", "status", "reason", "recipe", "epochs", "best_epoch",
               "stop_reason", "training_s", "total_s", "val_mae")
VERDICT_COLUMNS = ("case", "horizon", "model", "seeds", "model_mae", "model_mae_sd", "baseline", "baseline_mae",
                   "margin", "margin_sd", "margin_lower95", "beats", "errors_grow")


@dataclass(frozen=True)
class Case:
    label: str  # as the tables name it: "chickenpox", "generated:metr-la"
    dataset: str
    data_dir: str
    generated: dict | None = None  # the generator's settings

    @property
    def dir_name(self) -> str:
        return self.label.replace(":", "-")


@dataclass(frozen=True)
class Run:
    case: Case
    model: str
    stage: str
    seed: int
    run_dir: Path
    config: dict = field(hash=False, compare=False)  # RunConfig.to_dict()


# --- planning ------------------------------------------------------------------------------------


def parse_cases(text: str, data_dir: str, out: Path, gen: dict) -> list[Case]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--datasets: no dataset named")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"--datasets: {', '.join(repeated)} given twice")
    cases = []
    for name in names:
        dataset = name[len(GENERATED):] if name.startswith(GENERATED) else name
        if dataset not in DATASETS:
            raise InputError(f"--datasets: unknown dataset {dataset!r}; choose from {', '.join(DATASETS)} "
                             f"(or generated:NAME for synthetic data)")
        if name.startswith(GENERATED):
            # The settings are in the directory's name, so runs on other generated data never match.
            where = out / "data" / f"{dataset}-n{gen['nodes']}-t{gen['timesteps']}-s{gen['seed']}"
            cases.append(Case(name, dataset, str(where.resolve()), dict(gen)))
        else:
            cases.append(Case(name, dataset, str(Path(data_dir).resolve())))
    return cases


def ensure_generated(case: Case) -> None:
    """Write the case's synthetic data unless the same settings wrote it already."""
    from pgti.datasets.synthetic import generate

    stamp = Path(case.data_dir) / "generated.json"
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == case.generated:
                return
        except ValueError:
            pass
    settings = case.generated
    report.log(f"{case.label}: generating {settings['nodes']} sensors x {settings['timesteps']} steps "
               f"(generator seed {settings['seed']}) into {case.data_dir}")
    generate(case.dataset, case.data_dir, nodes=settings["nodes"], timesteps=settings["timesteps"],
             seed=settings["seed"], progress=False, overwrite=True)
    stamp.write_text(json.dumps(settings) + "\n")


def forecasters(text: str) -> list[str]:
    """The models of ``--models`` without the naive baselines (every run reports them anyway)."""
    from pgti.nn import model_list
    from pgti.nn.baselines import BASELINE_MODELS

    try:
        models = [m for m in model_list(text) if m not in BASELINE_MODELS]
    except InputError as exc:
        raise InputError(f"--models: {exc}") from None
    if not models:
        raise InputError("--models: no forecaster named (the baselines are in every run's columns)")
    return models


def run_config(case: Case, model: str, seed: int, seconds: float, run_dir: Path) -> RunConfig:
    """The model's own recipe on the case's data (capped by the dataset's defaults), the seed and
    the training-time budget."""
    from pgti.nn.recipes import apply_recipe

    config = RunConfig()
    config.data.dataset = case.dataset
    config.data.data_dir = case.data_dir
    config.model.name = model
    apply_recipe(config)
    config.training.seed = seed
    config.training.max_train_seconds = seconds
    config.output.output_dir = str(run_dir)
    config.output.quiet = True
    return config


def plan(case: Case, models: Sequence[str], stage: str, seeds: int, seconds: float, root: Path) -> list[Run]:
    runs = []
    for model in models:
        for seed in range(seeds):
            run_dir = root / case.dir_name / model_dir_name(model) / f"{stage}-seed{seed}"
            config = run_config(case, model, seed, seconds, run_dir)
            runs.append(Run(case, model, stage, seed, run_dir, config.to_dict()))
    return runs


def _without_output(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "output"}


def is_done(run: Run) -> bool:
    """Its stats.csv exists and its config is the planned one (a different one is said and rerun)."""
    if not (run.run_dir / STATS_FILE).is_file():
        return False
    try:
        have = read_config(run.run_dir).to_dict()
    except InputError as exc:
        report.warn(f"{run.run_dir}: {exc}; training it again")
        return False
    if _without_output(have) != _without_output(run.config):
        differ = sorted(k for k in set(have) | set(run.config)
                        if k != "output" and have.get(k) != run.config.get(k))
        report.warn(f"{run.run_dir} holds a finished run with other settings ({', '.join(differ)}); "
                    "training it again")
        return False
    return True


def execute(runs: list[Run], workers: int, *, progress: bool, debug: bool) -> dict[Run, dict]:
    """Train ``runs`` on a local Dask cluster; {run: {status, reason}}."""
    if not runs:
        return {}
    from pgti.distributed.cluster import open_cluster
    from pgti.ranking.sweep import RunSpec, run_sweep

    specs = {RunSpec(r.case.label, r.model, r.stage, r.seed, r.run_dir, r.config): r for r in runs}
    with open_cluster(min(workers, len(runs)), gpu=False, scheduler_file=None, debug=debug) as client:
        outcomes = run_sweep(list(specs), client, progress=progress)
    return {specs[spec]: outcome for spec, outcome in outcomes.items()}


# --- reading runs back ---------------------------------------------------------------------------


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_run(run: Run, outcome: dict | None) -> dict:
    row = {"case": run.case.label, "dataset": run.case.dataset, "model": run.model, "stage": run.stage,
           "seed": run.seed, "run_dir": str(run.run_dir), "recipe": run.config["optim"].get("recipe")}
    if outcome is not None and outcome["status"] != "ok":
        return {**row, "status": "failed", "reason": outcome["reason"]}
    try:
        (stats,) = read_csv_rows(run.run_dir / STATS_FILE)
    except (OSError, ValueError) as exc:
        return {**row, "status": "failed", "reason": f"unreadable {STATS_FILE}: {exc}"}
    row.update(status="ok", reason="", epochs=_number(stats.get("epochs")), stop_reason=stats.get("stop_reason"),
               training_s=_number(stats.get("training")), total_s=_number(stats.get("total")),
               val_mae=_number(stats.get("v_mae")))
    best = _number(stats.get("best_epoch"))
    row["best_epoch"] = None if best is None else int(best) + 1
    for key, value in stats.items():
        if key.startswith("test_mae_h") and _number(value) is not None:
            row[key] = _number(value)
    return row


def horizons(rows: list[dict]) -> list[int]:
    found = set()
    for row in rows:
        for key in row:
            tail = key[len("test_mae_h"):]
            if key.startswith("test_mae_h") and tail.isdigit():
                found.add(int(tail))
    return sorted(found)


def baselines(rows: list[dict], hs: list[int]) -> dict[str, dict[int, float]]:
    """{baseline: {h: test MAE}}: the same in every run of a case (no seed, the same windows)."""
    out: dict[str, dict[int, float]] = {}
    for name, suffix in BASELINE_COLUMNS.items():
        for h in hs:
            values = [r[f"test_mae_h{h}_{suffix}"] for r in rows if r.get(f"test_mae_h{h}_{suffix}") is not None]
            if values:
                if max(values) - min(values) > 1e-6 * max(abs(v) for v in values):
                    raise InputError(f"the {name} baseline differs between runs of one dataset at h{h} "
                                     f"({min(values)} to {max(values)}): runs on different data were mixed")
                out.setdefault(name, {})[h] = values[0]
    return out


def model_summaries(rows: list[dict], stage: str, hs: list[int]) -> dict[str, dict]:
    """{model: {"val": SeedSummary, h: SeedSummary of test MAE, "runs": rows}} of a stage's ok runs."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows if r["stage"] == stage):
        ok = [r for r in rows if r["stage"] == stage and r["model"] == model and r["status"] == "ok"
              and r.get("val_mae") is not None]
        if not ok:
            continue
        summary = {"val": summarize([r["val_mae"] for r in ok]), "runs": ok}
        for h in hs:
            values = [r.get(f"test_mae_h{h}") for r in ok]
            if all(v is not None for v in values):
                summary[h] = summarize(values)
        out[model] = summary
    return out


def verdicts(case: str, rows: list[dict], stage: str, seeds: int) -> list[dict]:
    """The targets' rows of a case: one per horizon, for the final model with the lowest mean
    validation MAE (over its ``seeds`` runs; a model with fewer ok runs cannot be it)."""
    hs = horizons(rows)
    base = baselines(rows, hs)
    models = {m: s for m, s in model_summaries(rows, stage, hs).items() if len(s["runs"]) == seeds}
    if not models or not base:
        return [{"case": case, "horizon": None, "model": None, "beats": False, "errors_grow": False,
                 "baseline": "no model finished every seed" if base else "no baseline columns"}]
    best = min(models, key=lambda m: models[m]["val"].mean)
    summary = models[best]
    means = [summary[h].mean for h in hs]
    grow = all(a < b for a, b in zip(means, means[1:])) if len(hs) > 1 else None
    out = []
    for h in hs:
        name = min(base, key=lambda b: base[b][h])
        mae = base[name][h]
        margins: SeedSummary = summarize([margin(r[f"test_mae_h{h}"], mae) for r in summary["runs"]])
        out.append({"case": case, "horizon": h, "model": best, "seeds": summary[h].n, "model_mae": summary[h].mean,
                    "model_mae_sd": summary[h].sd, "baseline": name, "baseline_mae": mae, "margin": margins.mean,
                    "margin_sd": margins.sd, "margin_lower95": margins.lower95, "beats": margins.beyond_noise,
                    "errors_grow": grow})
    return out


def finalists(rows: list[dict], k: int) -> list[str]:
    """The ``k`` models with the lowest mean screen validation MAE."""
    summaries = model_summaries(rows, "screen", [])
    return sorted(summaries, key=lambda m: summaries[m]["val"].mean)[:k]


# --- the page --------------------------------------------------------------------------------------


def _mae(s: SeedSummary | None) -> str:
    if s is None:
        return "-"
    return f"{s.mean:.4f}" if s.sd is None else f"{s.mean:.4f} ± {s.sd:.4f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def case_table(rows: list[dict], stages: Sequence[str]) -> str:
    """Every model of the case (each stage it ran in) and both baselines: test MAE per horizon
    (mean ± sd over seeds), the margin over the better baseline, validation MAE, training time,
    epochs, and how the runs stopped."""
    hs = horizons(rows)
    base = baselines(rows, hs)
    columns = [("model", "model"), ("stage", "stage"), ("seeds", "seeds"), ("val", "val MAE")]
    columns += [(f"h{h}", f"MAE h{h} (margin)") for h in hs]
    columns += [("training", "training s (max)"), ("epochs", "epochs"), ("stop", "stopped by")]
    table = []
    for stage in stages:
        for model, s in model_summaries(rows, stage, hs).items():
            entry = {"model": model, "stage": stage, "seeds": s["val"].n, "val": _mae(s["val"])}
            for h in hs:
                if h in s and base:
                    better = min(base[b][h] for b in base)
                    entry[f"h{h}"] = f"{_mae(s[h])} ({_pct(margin(s[h].mean, better))})"
            runs = s["runs"]
            entry["training"] = f"{max(r['training_s'] or 0 for r in runs):.0f}"
            entry["epochs"] = "/".join(f"{r['best_epoch'] or '-'}:{int(r['epochs'] or 0)}" for r in runs)
            entry["stop"] = ", ".join(sorted({str(r.get("stop_reason") or "-") for r in runs}))
            table.append(entry)
        for r in rows:
            if r["stage"] == stage and r["status"] != "ok":
                table.append({"model": r["model"], "stage": stage, "seeds": f"seed {r['seed']}",
                              "val": "failed", "stop": r["reason"][:80]})
    for name in base:
        table.append({"model": f"*{name}*", "stage": "-", "seeds": "-", "val": "-",
                      **{f"h{h}": f"{base[name][h]:.4f}" for h in hs}})
    note = ("Cells: test MAE, mean ± sd over seeds, and in brackets the margin over the better baseline "
            "at that horizon, (baseline - model) / baseline. `epochs`: best:run per seed.")
    return note + "\n\n" + report.markdown_table(table, columns)


def verdict_table(rows: list[dict]) -> str:
    shown = []
    for v in rows:
        if v.get("horizon") is None:
            shown.append({"case": v["case"], "model": "-", "verdict": "MISS", "baseline": v["baseline"]})
            continue
        shown.append({
            "case": v["case"], "horizon": f"h{v['horizon']}", "model": v["model"], "seeds": v["seeds"],
            "mae": f"{v['model_mae']:.4f}", "baseline": f"{v['baseline']} {v['baseline_mae']:.4f}",
            "margin": _pct(v["margin"]), "lower": _pct(v["margin_lower95"]),
            "verdict": report.verdict(v["beats"]),
            "grow": report.verdict(v["errors_grow"]),
        })
    return report.markdown_table(shown, [
        ("case", "dataset"), ("horizon", "horizon"), ("model", "best model (validation)"), ("seeds", "seeds"),
        ("mae", "test MAE"), ("baseline", "better baseline"), ("margin", "margin"), ("lower", "95% lower bound"),
        ("verdict", "beats both"), ("grow", "errors grow")])


def plot_margins(path: Path, verdict_rows: list[dict]) -> None:
    """The best model's margin over the better baseline, per dataset and horizon, with its
    one-sided 95% lower bound as a whisker."""
    plt = report._pyplot()
    shown = [v for v in verdict_rows if v.get("horizon") is not None]
    if not shown:
        return
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(shown)), 4.0))
    xs = range(len(shown))
    values = [100 * v["margin"] for v in shown]
    lower = [100 * (v["margin"] - v["margin_lower95"]) if v["margin_lower95"] is not None else 0 for v in shown]
    colors = ["C2" if v["beats"] else "C3" for v in shown]
    ax.bar(xs, values, color=colors, yerr=[lower, [0] * len(shown)], capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{v['case']}\nh{v['horizon']}" for v in shown], fontsize=6, rotation=60)
    ax.set_ylabel("margin over the better baseline (%)")
    ax.set_title("best model (by validation) vs the better naive baseline; whisker: 95% lower bound", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    report._save(fig, path)


# --- the command -----------------------------------------------------------------------------------


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="bench_forecast.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default=",".join(DEFAULT_CASES), metavar="A,B",
                   help="datasets read from --data-dir, or generated:NAME for synthetic data in NAME's format")
    p.add_argument("--models", default="all", metavar="A,B", help="models (built-in names), or all")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds of each final run")
    p.add_argument("--budget-seconds", type=positive_float, default=600.0,
                   help="training-time budget of a final run (the target's 10 minutes)")
    p.add_argument("--finalists", type=int, default=3,
                   help="models that go from the screen to the final stage (0: one stage, every model)")
    p.add_argument("--screen-seeds", type=positive_int, default=1, help="seeds of each screen run")
    p.add_argument("--screen-seconds", type=positive_float, default=120.0, help="training-time budget of a screen run")
    p.add_argument("--data-dir", default="data", help="where the real datasets are")
    p.add_argument("--gen-nodes", type=positive_int, default=64, help="sensors of a generated dataset")
    p.add_argument("--gen-timesteps", type=positive_int, default=8064,
                   help="steps of a generated dataset (8,064 = 4 weeks at 5 minutes)")
    p.add_argument("--gen-seed", type=int, default=0, help="generator seed of the generated datasets")
    p.add_argument("--out", type=Path, default=Path("results/forecast"), help="page, CSVs, plot and runs")
    p.add_argument("-np", "--npar", type=positive_int, default=2, help="runs at once (Dask workers, 1 thread each)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-d", "--debug", action="store_true", help="tracebacks on errors")
    return p


def _stage_runs(planned: list[Run], stage: str, seconds: float, args) -> list[dict]:
    done = {run for run in planned if is_done(run)}
    todo = [run for run in planned if run not in done]
    report.log(f"{stage}: {len(planned)} runs ({len(done)} already done, {len(todo)} to train), "
               f"at most {seconds:.0f} s of training each")
    outcomes = execute(todo, args.npar, progress=not args.quiet, debug=args.debug)
    return [read_run(run, outcomes.get(run)) for run in planned]


def sweep(args, argv: Sequence[str]) -> int:
    if args.finalists < 0:
        raise InputError(f"--finalists must be 0 or more, got {args.finalists}")
    machine, command = report.start("bench_forecast.py", argv)
    out = args.out
    gen = {"nodes": args.gen_nodes, "timesteps": args.gen_timesteps, "seed": args.gen_seed}
    cases = parse_cases(args.datasets, args.data_dir, out, gen)
    models = forecasters(args.models)
    for case in cases:
        if case.generated is not None:
            ensure_generated(case)
    root = out / "runs"
    with holding_runs(root):
        rows = _all_stages(cases, models, root, args)
    _report(cases, rows, args, out, machine, command)
    return 0


def _all_stages(cases: list[Case], models: list[str], root: Path, args) -> list[dict]:
    if not args.finalists:
        planned = [r for case in cases for r in plan(case, models, "screen", args.seeds, args.budget_seconds, root)]
        return _stage_runs(planned, "screen", args.budget_seconds, args)
    planned = [r for case in cases for r in plan(case, models, "screen", args.screen_seeds, args.screen_seconds, root)]
    rows = _stage_runs(planned, "screen", args.screen_seconds, args)
    final = []
    for case in cases:
        chosen = finalists([r for r in rows if r["case"] == case.label], args.finalists)
        report.log(f"{case.label}: finalists {', '.join(chosen) or '(none: every screen run failed)'}")
        final += plan(case, chosen, "final", args.seeds, args.budget_seconds, root)
    return rows + _stage_runs(final, "final", args.budget_seconds, args)


def _report(cases, rows, args, out, machine, command) -> None:
    final_stage = "final" if args.finalists else "screen"
    all_verdicts = [v for case in cases
                    for v in verdicts(case.label, [r for r in rows if r["case"] == case.label], final_stage,
                                      args.seeds)]

    hs = horizons(rows)
    extra = [f"test_mae_h{h}{suffix}" for h in hs for suffix in ("", *(f"_{s}" for s in BASELINE_COLUMNS.values()))]
    report.write_csv(out / "runs.csv", rows, [*RUN_COLUMNS, *extra, "run_dir"])
    report.write_csv(out / "verdicts.csv", all_verdicts, VERDICT_COLUMNS)
    plot_margins(out / "margins.png", all_verdicts)
    stages = STAGES if args.finalists else ("screen",)
    sections = ["## Targets\n\n" + verdict_table(all_verdicts) + "\n\n![margins](margins.png)"]
    for case in cases:
        case_rows = [r for r in rows if r["case"] == case.label]
        title = case.label if case.generated is None else (
            f"{case.label} ({case.generated['nodes']} sensors x {case.generated['timesteps']} steps, "
            f"generator seed {case.generated['seed']})")
        sections.append(f"## {title}\n\n" + case_table(case_rows, stages))
    report.write_markdown(out / "forecast.md", "Forecast accuracy against the naive baselines", command, machine,
                          sections)

    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        report.warn(f"failed: {r['case']} {r['model']} {r['stage']} seed {r['seed']}: {r['reason']}")
    for v in all_verdicts:
        if v.get("horizon") is None:
            print(report.target_line(f"{v['case']} best model beats both baselines", v["baseline"], "> 0", False))
            continue
        measured = (f"{v['model']} {_pct(v['margin'])} (95% lower bound {_pct(v['margin_lower95'])}, "
                    f"{v['seeds']} seeds) over {v['baseline']}")
        print(report.target_line(f"{v['case']} h{v['horizon']} beats both baselines", measured,
                                 "lower bound > 0", v["beats"]))
    for case in cases:
        grow = [v["errors_grow"] for v in all_verdicts if v["case"] == case.label]
        if grow and grow[0] is not None:
            print(report.target_line(f"{case.label} errors grow with the horizon",
                                     "yes" if grow[0] else "no", "h3 < h6 < h12", grow[0]))
    print(f"{len(rows) - len(failed)} runs ok, {len(failed)} failed -> {out / 'forecast.md'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    return run_cli(lambda arguments: sweep(parser.parse_args(arguments), list(arguments)), argv)
