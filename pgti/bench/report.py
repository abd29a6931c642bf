"""Writing results: CSV, a markdown page (command, machine, date, tables), bar charts, the table
of batch-assembly rates, and the target lines (``PASS``/``MISS``) that the scripts print."""

from __future__ import annotations

import csv
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from pgti.bench.machine import describe_machine, machine_line


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def script(name: str) -> Path:
    """``scripts/<name>``, the entry point a suite's command line names."""
    return SCRIPTS / name


def command_line(script: str | Path, argv: Sequence[str]) -> str:
    """The command as typed from the repository root."""
    path = Path(script)
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return shlex.join(["python", str(path), *argv])


def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def target_line(label: str, measured: str, target: str, ok: bool | None) -> str:
    return f"target {label}: {measured} (target {target}) {verdict(ok)}"


def write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _csv_value(row.get(c)) for c in columns})


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def markdown_table(rows: list[dict], columns: Sequence[tuple[str, str]]) -> str:
    """``columns``: (key, header) pairs; values are shown as they are (format them first)."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(k)) for k, _ in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value).replace("|", "\\|")


def write_markdown(path: Path, title: str, command: str, machine: dict, sections: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {title}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine_line(machine)}",
        f"- date: {machine['date']}",
        f"- code: commit {machine.get('code', 'unknown')}",
        "",
    ]
    path.write_text("\n".join(lines) + "\n" + "\n\n".join(sections).rstrip() + "\n")


def fmt(value, spec: str = ".3g", unit: str = "") -> str:
    """A float by ``spec`` (and ``unit``); None as "-"; anything else (a count, a text) as it is."""
    if value is None:
        return "-"
    return f"{value:{spec}}{unit}" if isinstance(value, float) else str(value)


def bar_chart(path: Path, groups: list[str], series: dict[str, list[float | None]], *, ylabel: str,
              title: str, log: bool = False, notes: dict[tuple[str, str], str] | None = None) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per key of ``series``. A missing
    value (None) leaves a gap labelled with ``notes[(group, key)]`` if given."""
    from matplotlib.patches import Patch

    plt = _pyplot()

    notes = notes or {}
    keys = list(series)
    width = 0.8 / max(1, len(keys))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) * max(1, len(keys)) / 3), 4.2))
    present = [v for vals in series.values() for v in vals if v]
    floor = min(present) if present else 1.0
    for i, key in enumerate(keys):
        xs = [g + (i - (len(keys) - 1) / 2) * width for g in range(len(groups))]
        vals = series[key]
        ax.bar([x for x, v in zip(xs, vals) if v], [v for v in vals if v], width, color=f"C{i}")
        for x, v, group in zip(xs, vals, groups):
            if not v and (group, key) in notes:
                ax.text(x, floor if present else 0.02, notes[(group, key)], rotation=90, ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log and present:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor / 2)
    if not present:
        ax.set_ylim(0, 1)
    ax.legend(handles=[Patch(color=f"C{i}", label=key) for i, key in enumerate(keys)], fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


@dataclass
class Panel:
    """One bar chart of a row of them: a bar per label (horizontal bars with ``horizontal``)."""

    title: str
    labels: list[str]
    values: list[float]
    color: str
    horizontal: bool = False
    log: bool = False  # a log scale, where there are values


def bar_panels(path: Path, panels: Sequence[Panel], figsize: tuple[float, float]) -> None:
    """Side-by-side bar charts in one PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=figsize)
    for ax, p in zip(axes, panels):
        (ax.barh if p.horizontal else ax.bar)(p.labels, p.values, color=p.color)
        if p.log and p.values:
            ax.set_yscale("log")
        ax.set_title(p.title, fontsize=9)
        ax.grid(axis="both", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
        if p.horizontal:
            ax.tick_params(axis="y", labelsize=6)
    _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


RATE_METHODS = (  # the contestants of the ``rates`` task, as the tables name them
    ("peer_same_data", "peer IndexDataset + DataLoader, same float32 series"),
    ("peer_own_layout", "peer IndexDataset + DataLoader, its loader's array"),
    ("memcpy", "plain tensor copies of the same bytes"),
)


def rate_rows(rate: dict | None, index_label: str) -> list[dict]:
    """A row per way of assembling batches in the ``rates`` task's result (none without one):
    batches/s, GB/s, index / method, the fraction of the same-size copy rate, every trial."""
    if rate is None:
        return []
    rows = []
    for key, label in (("index", index_label), *RATE_METHODS):
        value = rate.get(f"{key}_batches_per_s")
        if value is None:
            continue
        rows.append({"method": label, "batches_per_s": value, "gbytes_per_s": value * rate["batch_bytes"] / 1e9,
                     "vs_index": rate["index_batches_per_s"] / value,
                     "fraction_of_copy_rate": value / rate["memcpy_batches_per_s"],
                     "trials": " ".join(f"{v:.0f}" for v in rate[f"{key}_all"])})
    return rows


def log(message: str = "") -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start(name: str, argv: Sequence[str]) -> tuple[dict, str]:
    """Describe the machine and log the header of ``scripts/<name>``'s benchmark; return
    (machine, command line)."""
    machine = describe_machine()
    command = command_line(script(name), argv)
    log(f"date: {machine['date']}\ncommand: {command}\nmachine: {machine_line(machine)}\n"
        f"code: commit {machine['code']}")
    return machine, command
