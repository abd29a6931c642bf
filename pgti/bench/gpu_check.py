"""The GPU check behind ``scripts/gpu_check.sh``: every GPU path of the harness, run once through
the scripts and drivers users run, with what each one measures, in one call sized for a short
lease of a GPU machine (under 8 minutes on an H100/H200).

Checks, in order; each runs under its own timeout (and the whole under a time budget), prints
``PASS <check>`` or ``FAIL <check>`` (``SKIP`` where the machine cannot have it), and a failed
check never stops the next:

- ``env``: Python, torch, CUDA and driver versions and the GPUs (torch and NVML).
- ``gpu-tests``: the tests marked ``gpu`` (``tests/test_device_paths.py``, the models), none
  skipped.
- ``data``: synthetic PeMS-Bay at its real size (325 x 52,116), ``scripts/make_synthetic.py``.
- ``bench-dcrnn-cell``, ``bench-pgt-dcrnn``: ``scripts/bench_memory.py`` on it, a fresh process
  per mode: base-gpu, index (CPU), gpu-index and lazy-index-gpu; the last of 2 passes over K
  training batches gives the time per batch (projected to a full epoch) and the data share (time
  spent producing batches); with the GPU allocator's peak and the host's peak RSS.
- ``nvml``: ``single_gpu_testing/pems_bay_main.py --mode index --gpu``; its system_stats.csv must
  hold GPU memory read from the driver through NVML.
- ``ddp-nccl-1`` (and ``ddp-nccl-2`` where there are 2 GPUs): ``ddp_testing/pems_ddp.py -m index
  --gpu`` launched by ``LOCAL=1 bash submit.sh`` (scheduler file, Dask workers, client), one rank
  per GPU, NCCL.
- ``pems-full``: the full PeMS size (11,160 x 105,120) generated in the background from the start,
  then kept on the GPU with GPU-index-batching for a few training batches (bench_memory
  ``gpu-index``): the GPU must hold the series and the host must never hold it whole.

``--dry-run`` runs each check's CPU stand-in at a tiny size: the same scripts, flags and parsing,
with the CPU instead of CUDA and gloo instead of NCCL, so that CI keeps the check working.

Results go to OUTDIR, five files: report.md, checks.csv, results.csv, log.txt, runs.tar.gz.

    python -m pgti.bench.gpu_check run --out OUTDIR --work DIR [--dry-run] ...   (gpu_check.sh calls it)
    python -m pgti.bench.gpu_check deps --site DIR    (requirements of the wheels installed in DIR)
    python -m pgti.bench.gpu_check probe              (versions and GPUs, one JSON line)
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT_FILES = ("report.md", "checks.csv", "results.csv", "log.txt", "runs.tar.gz")
LOG_TAIL_BYTES = 256 << 10  # of each step's output in log.txt
TARGET_EPOCH_RATIO = 0.5  # GPU-index epoch <= 0.5 x base epoch (issue "GPU-index-batching")
TARGET_DATA_SHARE = 0.02  # data share of a GPU-index epoch < 2%
NOT_CHECKED = {"torch-geometric-temporal"}  # installed --no-deps on purpose (see setup_env.sh)


def canonical(name: str) -> str:
    """A distribution's name as PyPI compares them: ``torch_geometric_temporal`` is ``torch-geometric-temporal``."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- sizes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run does: sizes, modes, where it trains."""

    dry_run: bool
    bay_nodes: int
    bay_steps: int
    pems_nodes: int
    pems_steps: int
    batch_size: int
    batches: dict  # model -> training batches per pass in the benchmark
    passes: int
    driver_batches: int
    ddp_batches: int
    pems_batches: int
    threads: int
    bench_modes: dict  # model -> modes
    pems_mode: str
    step_timeouts: dict = field(default_factory=dict)

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"


STEP_TIMEOUTS = {"env": 90, "gpu-tests": 180, "data": 90, "bench-dcrnn-cell": 180, "bench-pgt-dcrnn": 180,
                 "nvml": 120, "ddp-nccl-1": 150, "ddp-nccl-2": 150, "pems-full": 300}


def make_plan(dry_run: bool, pems_steps: int | None) -> Plan:
    if dry_run:
        return Plan(True, bay_nodes=12, bay_steps=600, pems_nodes=16, pems_steps=pems_steps or 600,
                    batch_size=8, batches={"dcrnn-cell": 2, "pgt-dcrnn": 2}, passes=2, driver_batches=2,
                    ddp_batches=2, pems_batches=1, threads=1,
                    bench_modes={"dcrnn-cell": ("base", "index", "lazy-index"), "pgt-dcrnn": ("index",)},
                    pems_mode="index", step_timeouts=dict(STEP_TIMEOUTS))
    gpu_modes = ("base-gpu", "index", "gpu-index", "lazy-index-gpu")
    return Plan(False, bay_nodes=325, bay_steps=52116, pems_nodes=11160, pems_steps=pems_steps or 105120,
                batch_size=64, batches={"dcrnn-cell": 40, "pgt-dcrnn": 20}, passes=2, driver_batches=20,
                ddp_batches=10, pems_batches=3, threads=8,
                bench_modes={"dcrnn-cell": gpu_modes, "pgt-dcrnn": gpu_modes},
                pems_mode="gpu-index", step_timeouts=dict(STEP_TIMEOUTS))


def train_batches(num_timesteps: int, lags: int, batch_size: int) -> int:
    """Training batches of one full epoch (70/10/20 split of the window starts)."""
    from pgti.data.windows import split_windows

    return -(-split_windows(num_timesteps - 2 * lags + 1).size("train") // batch_size)


# --- running steps ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    result: str  # PASS | FAIL | SKIP
    seconds: float
    detail: str


@dataclass
class StepRun:
    returncode: int | None
    timed_out: bool
    seconds: float
    output: str


class Session:
    """Runs steps (each in its own process group, stopped whole at its timeout), keeps their
    output for log.txt, and the checks' verdicts."""

    def __init__(self, plan: Plan, out: Path, work: Path, python: str, budget_s: float, started: float):
        self.plan, self.out, self.work, self.python = plan, out, work, python
        self.deadline = started + budget_s
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.checks: list[Check] = []
        self.results: list[dict] = []
        self.facts: dict = {}
        self.env = dict(os.environ)

    # time ---------------------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - time.time()

    def timeout_for(self, name: str, reserve: float = 15.0) -> float:
        return min(self.plan.step_timeouts.get(name, 120), self.remaining() - reserve)

    # processes ----------------------------------------------------------------------------------

    def run(self, name: str, cmd: list[str], timeout: float, env: dict | None = None) -> StepRun:
        log_path = self.logs / f"{name}.log"
        start = time.monotonic()
        with open(log_path, "ab") as log:
            log.write(f"$ {shlex.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    env=env or self.env, start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                timed_out = True
                stop_group(proc)
            else:
                end_group(proc.pid)  # anything the step left running in its group
        seconds = time.monotonic() - start
        output = log_path.read_text(errors="replace")
        return StepRun(None if timed_out else proc.returncode, timed_out, seconds, output)

    def background(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        log.write(f"$ {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self.env,
                                start_new_session=True)
        log.close()
        return proc

    # verdicts -----------------------------------------------------------------------------------

    def record(self, name: str, ok: bool | None, seconds: float, detail: str) -> Check:
        result = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        check = Check(name, result, seconds, " ".join(detail.split()))
        self.checks.append(check)
        print(f"{result} {name} ({seconds:.0f} s): {check.detail}", flush=True)
        write_checks(self)  # kept up to date, so that a run stopped from outside still leaves its verdicts
        return check

    def attempt(self, name: str, body) -> None:
        """Run one check: ``body(timeout)`` returns (ok, detail); an exception is a FAIL."""
        timeout = self.timeout_for(name)
        start = time.monotonic()
        if timeout < 10:
            self.record(name, False, 0.0, f"not run: the time budget is spent ({self.remaining():.0f} s left)")
            return
        try:
            ok, detail = body(timeout)
        except Exception as exc:  # noqa: BLE001 - one check's failure must not stop the others
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.record(name, ok, time.monotonic() - start, detail)


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM to the process group we started (launch scripts clean up on it), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # the whole group is gone already
        proc.wait()
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    end_group(proc.pid)
    proc.wait()


def end_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def failure(run: StepRun, what: str) -> str:
    if run.timed_out:
        return f"{what} ran past its timeout ({run.seconds:.0f} s) and was stopped"
    lines = [line for line in run.output.strip().splitlines() if line.strip()]
    return f"{what} exited with status {run.returncode}: {lines[-1] if lines else '(no output)'}"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# --- the checks ---------------------------------------------------------------------------------

def probe() -> dict:
    """This interpreter, torch, CUDA, the GPUs (torch and NVML) and the libraries' versions."""
    import platform
    from importlib import metadata

    import psutil
    import torch

    from pgti.bench.machine import cpu_model, usable_cores

    info = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
            "torch_file": torch.__file__, "cuda_build": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "cpu": cpu_model(), "cores": usable_cores(),
            "ram_gib": psutil.virtual_memory().total / 2**30, "platform": platform.platform(terse=True),
            "gpus": []}
    for name in ("torch-geometric", "torch-geometric-temporal", "dask", "distributed", "numpy", "h5py",
                 "pandas", "nvidia-ml-py"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    if info["cuda_available"]:
        info["cudnn"] = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": p.name, "total_gib": p.total_memory / 2**30,
                                 "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
    try:
        import pynvml

        def text(v):
            return v.decode() if isinstance(v, bytes) else str(v)

        pynvml.nvmlInit()
        info["driver"] = text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        info["driver_cuda"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        info["nvml_gpus"] = [text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
                             for i in range(pynvml.nvmlDeviceGetCount())]
        pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - no NVML is a fact to report, not an error here
        info["nvml_error"] = f"{type(exc).__name__}: {exc}"
    return info


def check_env(s: Session, timeout: float):
    run = s.run("env", [s.python, "-m", "pgti.bench.gpu_check", "probe"], timeout)
    line = next((ln for ln in run.output.splitlines() if ln.startswith("PROBE ")), None)
    if line is None:
        return False, failure(run, "the environment probe")
    info = json.loads(line[len("PROBE "):])
    s.facts["env"] = info
    smi = s.run("nvidia-smi", ["nvidia-smi"], 30) if _which("nvidia-smi") else None
    if smi is not None and smi.returncode == 0:
        s.facts["nvidia_smi"] = smi.output
    s.facts["gpu_count"] = len(info["gpus"])
    versions = (f"Python {info['python']}, torch {info['torch']} (CUDA build {info['cuda_build']}), "
                f"torch-geometric {info['torch-geometric']}, PGT {info['torch-geometric-temporal']}, "
                f"dask {info['dask']}, distributed {info['distributed']}")
    if s.plan.dry_run:
        return True, f"CPU stand-in: {versions}; {len(info['gpus'])} GPU(s) visible to torch"
    if not info["gpus"]:
        return False, f"torch sees no CUDA GPU ({versions}); {info.get('nvml_error', '')}"
    gpus = ", ".join(f"{g['name']} ({g['total_gib']:.0f} GiB, sm {g['capability']})" for g in info["gpus"])
    driver = info.get("driver") or f"unknown ({info.get('nvml_error')})"
    return True, f"{gpus}; driver {driver} (CUDA {info.get('driver_cuda')}); {versions}"


def _which(name: str) -> bool:
    from shutil import which

    return which(name) is not None


def check_gpu_tests(s: Session, timeout: float):
    files = ["tests/test_device_paths.py", "tests/test_models.py"]
    marker = ["-m", "not gpu"] if s.plan.dry_run else ["-m", "gpu"]
    if s.plan.dry_run:
        files = files[:1]  # the device paths through the GPU's branches, on the CPU
    run = s.run("gpu-tests", [s.python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *files, *marker],
                timeout)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", run.output)}
    passed, skipped = counts.get("passed", 0), counts.get("skipped", 0)
    bad = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    detail = f"{passed} passed, {bad} failed, {skipped} skipped ({' '.join(files)} {' '.join(marker)})"
    if run.timed_out:
        return False, failure(run, "pytest")
    ok = run.returncode == 0 and passed > 0 and bad == 0 and (s.plan.dry_run or skipped == 0)
    return ok, detail


def bay_dir(s: Session) -> Path:
    return s.work / "cache" / f"pems-bay-{s.plan.bay_nodes}x{s.plan.bay_steps}"


def pems_dir(s: Session) -> Path:
    return s.work / "cache" / f"pems-{s.plan.pems_nodes}x{s.plan.pems_steps}"


def synthetic_cmd(s: Session, name: str, nodes: int, steps: int, directory: Path) -> list[str]:
    return [s.python, "scripts/make_synthetic.py", "--dataset", name, "--nodes", str(nodes), "--timesteps",
            str(steps), "--data-dir", str(directory), "--quiet"]


def check_data(s: Session, timeout: float):
    directory = bay_dir(s)
    run = s.run("data", synthetic_cmd(s, "pems-bay", s.plan.bay_nodes, s.plan.bay_steps, directory), timeout)
    files = sorted(directory.glob("*"))
    if run.returncode != 0 or len(files) < 2:
        return False, failure(run, "make_synthetic.py")
    size = sum(f.stat().st_size for f in files) / 2**20
    return True, (f"synthetic pems-bay {s.plan.bay_nodes} x {s.plan.bay_steps} in {run.seconds:.0f} s "
                  f"({size:.1f} MiB)")


def bench(s: Session, name: str, dataset: str, nodes: int, steps: int, modes, model: str, batches: int,
          passes: int, tag: str, timeout: float) -> tuple[StepRun, list[dict]]:
    out = s.work / "bench"
    cmd = [s.python, "scripts/bench_memory.py", "--datasets", dataset, "--nodes", str(nodes), "--timesteps",
           str(steps), "--cache-dir", str(s.work / "cache"), "--modes", ",".join(modes), "--model", model,
           "--batches", str(batches), "--passes", str(passes), "--repeats", "1", "--threads", str(s.plan.threads),
           "--batch-size", str(s.plan.batch_size), "--timeout", f"{timeout:.0f}", "--out", str(out),
           "--tag", tag]
    run = s.run(name, cmd, timeout)
    path = out / f"memory_{tag}_runs.csv"
    rows = read_csv(path) if run.returncode == 0 and path.is_file() else []
    return run, rows


def result_row(s: Session, check: str, row: dict, model: str) -> dict:
    from pgti.datasets.registry import get_spec

    batches = num(row.get("batches"))
    last = num(row.get("last_pass_s"))
    per_batch = last / batches if last is not None and batches else None
    full = (train_batches(int(row["timesteps"]), get_spec(row["dataset"]).lags, int(row["batch_size"]))
            if row.get("batch_size") else None)
    gpu_mode = row["mode"] in ("base-gpu", "gpu-index", "lazy-index-gpu")
    return {
        "check": check, "dataset": row["dataset"], "nodes": row["nodes"], "timesteps": row["timesteps"],
        "model": row.get("model") or model, "mode": row["mode"], "device": s.plan.device if gpu_mode else "cpu",
        "status": row["status"], "batch_size": row.get("batch_size"), "batches": row.get("batches"),
        "prep_s": num(row.get("prep_s")), "last_pass_s": last, "s_per_batch": per_batch,
        "full_epoch_batches": full, "epoch_s_projected": per_batch * full if per_batch and full else None,
        "data_s": num(row.get("data_s")), "data_share": num(row.get("data_share")),
        "host_peak_gib": num(row.get("peak_gib")), "gpu_alloc_gib": num(row.get("gpu_alloc_gib")),
        "gpu_reserved_gib": num(row.get("gpu_peak_gib")), "series_gib": num(row.get("series_gib")),
        "threads": row.get("threads"),
    }


RESULT_COLUMNS = ("check", "dataset", "nodes", "timesteps", "model", "mode", "device", "status", "batch_size",
                  "batches", "prep_s", "last_pass_s", "s_per_batch", "full_epoch_batches", "epoch_s_projected",
                  "data_s", "data_share", "host_peak_gib", "gpu_alloc_gib", "gpu_reserved_gib", "series_gib",
                  "threads")


def check_bench(s: Session, model: str):
    name = f"bench-{model}"

    def body(timeout):
        modes = s.plan.bench_modes[model]
        run, rows = bench(s, name, "pems-bay", s.plan.bay_nodes, s.plan.bay_steps, modes, model,
                          s.plan.batches[model], s.plan.passes, model.replace("-", "_"), timeout)
        if not rows:
            return False, failure(run, "bench_memory.py")
        found = {r["mode"]: result_row(s, name, r, model) for r in rows}
        s.results.extend(found.values())
        problems, parts = [], []
        for mode in modes:
            r = found.get(mode)
            if r is None or r["status"] != "ok":
                problems.append(f"{mode}: {'not run' if r is None else r['status']}")
                continue
            if r["device"] == "cuda" and not (r["gpu_alloc_gib"] or 0) > 0:
                problems.append(f"{mode}: no GPU allocation recorded")
            if mode == "gpu-index" and (r["gpu_alloc_gib"] or 0) < (r["series_gib"] or 0):
                problems.append(f"gpu-index: GPU peak {r['gpu_alloc_gib']:.3f} GiB < series {r['series_gib']:.3f} GiB")
            parts.append(f"{mode} {1e3 * r['s_per_batch']:.1f} ms/batch, data {r['data_share']:.2%}")
        detail = "; ".join(parts) + (f" -- problems: {'; '.join(problems)}" if problems else "")
        return not problems, detail

    s.attempt(name, body)


def check_nvml(s: Session, timeout: float):
    gpu = not s.plan.dry_run
    run_dir = s.work / "runs" / ("single-pems-bay-index-gpu" if gpu else "single-pems-bay-index")
    cmd = [s.python, "single_gpu_testing/pems_bay_main.py", "--mode", "index", "--epochs", "1", "--max-batches",
           str(s.plan.driver_batches), "--batch-size", str(s.plan.batch_size), "--model", "dcrnn-cell",
           "--data-dir", str(bay_dir(s)), "--output-dir", str(run_dir), "-q"] + (["--gpu"] if gpu else [])
    run = s.run("nvml", cmd, timeout)
    stats_path, sys_path = run_dir / "stats.csv", run_dir / "system_stats.csv"
    if run.returncode != 0 or not stats_path.is_file() or not sys_path.is_file():
        return False, failure(run, "pems_bay_main.py")
    rows = read_csv(sys_path)
    stats = read_csv(stats_path)[0]
    used = [num(r["GPU_Memory_Used"]) for r in rows if num(r["GPU_Memory_Used"]) is not None]
    total = [num(r["GPU_Memory_Total"]) for r in rows if num(r["GPU_Memory_Total"]) is not None]
    torch_peak = [num(r["Torch_GPU_Peak_Allocated"]) for r in rows if num(r["Torch_GPU_Peak_Allocated"]) is not None]
    epochs = read_csv(run_dir / "per_epoch_stats.csv") if (run_dir / "per_epoch_stats.csv").is_file() else []
    s.facts["nvml"] = {"rows": len(rows), "gpu_rows": len(used), "max_used_mib": max(used, default=None),
                       "total_mib": max(total, default=None), "torch_peak_mib": max(torch_peak, default=None),
                       "max_gpu_mem": stats.get("max_gpu_mem"), "epoch_s": num(epochs[0]["runtime"]) if epochs else None,
                       "run_dir": run_dir.name}
    f = s.facts["nvml"]
    if not gpu:
        ok = len(rows) >= 1 and not used and not total and not torch_peak
        return ok, (f"CPU stand-in: system_stats.csv has {len(rows)} rows, GPU columns empty as they must be "
                    f"without a GPU" if ok else f"GPU columns not empty without a GPU: {used[:3]} {total[:3]}")
    ok = bool(used) and max(used) > 0 and bool(total) and bool(torch_peak) and max(torch_peak) > 0 \
        and num(stats.get("max_gpu_mem")) is not None
    detail = (f"system_stats.csv: {len(used)} of {len(rows)} rows with NVML GPU memory, up to "
              f"{f['max_used_mib'] or 0:.0f} of {f['total_mib'] or 0:.0f} MiB; torch peak allocated "
              f"{f['torch_peak_mib'] or 0:.0f} MiB; stats.csv max_gpu_mem {stats.get('max_gpu_mem') or '(empty)'}")
    return ok, detail


def check_ddp(s: Session, workers: int):
    name = f"ddp-nccl-{workers}"
    gpu = not s.plan.dry_run

    def body(timeout):
        label = f"ddp-{'nccl' if gpu else 'gloo'}-{workers}"
        run_dir, log_dir = s.work / "runs" / label, s.work / "runs" / f"{label}-dask-logs"
        extra = f"--model dcrnn-cell --max-batches {s.plan.ddp_batches} -q" + (" --gpu" if gpu else "")
        env = dict(s.env, LOCAL="1", WORKERS=str(workers), DRIVER="pems_ddp.py", MODE="index", DATASET="pems-bay",
                   DATA_DIR=str(bay_dir(s)), EPOCHS="1", BATCH_SIZE=str(s.plan.batch_size), OUTPUT_DIR=str(run_dir),
                   LOG_DIR=str(log_dir), PYTHON=s.python, EXTRA_ARGS=extra, SCHEDULER_TIMEOUT="60",
                   WORKER_TIMEOUT="120")
        if gpu:
            env["NCCL_DEBUG"] = "INFO"
        run = s.run(name, ["bash", "submit.sh"], timeout, env=env)
        stats_path = run_dir / "stats.csv"
        if run.returncode != 0 or not stats_path.is_file():
            return False, failure(run, "LOCAL=1 submit.sh (pems_ddp.py)")
        stats = read_csv(stats_path)[0]
        epochs = read_csv(run_dir / "per_epoch_stats.csv") if (run_dir / "per_epoch_stats.csv").is_file() else []
        worker_logs = "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("worker-*.log")))
        nccl = re.search(r"NCCL version ([0-9][\w.+-]*)", worker_logs)
        facts = {"world_size": stats.get("world_size"), "gpu": stats.get("gpu"), "mode": stats.get("mode"),
                 "training_s": num(stats.get("training")), "epoch_s": num(epochs[0]["runtime"]) if epochs else None,
                 "test_mae": num(stats.get("test_mae")), "max_gpu_mem": stats.get("max_gpu_mem"),
                 "nccl": nccl.group(1) if nccl else None, "backend": "nccl" if gpu else "gloo", "run_dir": label}
        s.facts[name] = facts
        problems = []
        if stats.get("world_size") != str(workers):
            problems.append(f"world_size {stats.get('world_size')}, expected {workers}")
        if stats.get("gpu") != str(gpu):
            problems.append(f"gpu {stats.get('gpu')}, expected {gpu}")
        if gpu and not nccl:
            problems.append("no 'NCCL version' line in the workers' logs (NCCL_DEBUG=INFO)")
        epoch = f"{facts['epoch_s']:.1f} s" if facts["epoch_s"] is not None else "?"
        detail = (f"{facts['mode']} world size {stats.get('world_size')} on {facts['backend']}"
                  f"{' ' + facts['nccl'] if facts['nccl'] else ''}; epoch of {s.plan.ddp_batches} batches/rank "
                  f"{epoch}, test MAE {fmt(facts['test_mae'], '.3f')}")
        return not problems, detail + (f" -- problems: {'; '.join(problems)}" if problems else "")

    if workers > 1 and s.plan.dry_run:
        s.record(name, None, 0.0, f"dry run: the {workers}-rank launch is ddp-nccl-1's with WORKERS={workers}; "
                                  f"tests/test_distributed.py trains 2 gloo ranks")
        return
    if workers > 1 and s.facts.get("gpu_count", 0) < workers:
        s.record(name, None, 0.0, f"needs {workers} GPUs (NCCL takes one per rank), this machine has "
                                  f"{s.facts.get('gpu_count', 0)}")
        return
    s.attempt(name, body)


def check_pems(s: Session, generator: subprocess.Popen):
    name = "pems-full"

    def body(timeout):
        start = time.monotonic()
        try:
            generator.wait(timeout=max(1.0, timeout - 90))  # leave ~90 s for the run itself
        except subprocess.TimeoutExpired:
            stop_group(generator)
            return False, (f"generating pems {s.plan.pems_nodes} x {s.plan.pems_steps} did not finish in time; "
                           f"rerun with --pems-timesteps 52560 (half a year)")
        if generator.returncode != 0:
            log = (s.logs / "pems-generate.log").read_text(errors="replace").strip().splitlines()
            return False, f"make_synthetic.py --dataset pems failed: {log[-1] if log else '(no output)'}"
        left = timeout - (time.monotonic() - start)
        run, rows = bench(s, name, "pems", s.plan.pems_nodes, s.plan.pems_steps, (s.plan.pems_mode,), "dcrnn-cell",
                          s.plan.pems_batches, 1, "pems", left)
        if not rows:
            return False, failure(run, "bench_memory.py")
        r = result_row(s, name, rows[0], "dcrnn-cell")
        s.results.append(r)
        if r["status"] != "ok":
            return False, f"{s.plan.pems_mode}: {r['status']}"
        size = (f"{s.plan.pems_nodes} x {s.plan.pems_steps}" +
                (" (full PeMS size)" if s.plan.pems_steps == 105120 and s.plan.pems_nodes == 11160 else " (truncated)"))
        detail = (f"{size}, series {r['series_gib']:.2f} GiB; preprocessing {r['prep_s']:.1f} s; "
                  f"{r['batches']} batches in {r['last_pass_s']:.2f} s; host peak {r['host_peak_gib']:.2f} GiB")
        if s.plan.dry_run:
            return True, "CPU stand-in (index): " + detail
        detail += f"; GPU peak allocated {r['gpu_alloc_gib']:.2f} GiB"
        ok = (r["gpu_alloc_gib"] or 0) >= r["series_gib"] and (r["host_peak_gib"] or 0) < r["series_gib"]
        return ok, detail + ("" if ok else " -- expected the series on the GPU and never whole on the host")

    s.attempt(name, body)


# --- outputs ------------------------------------------------------------------------------------


def fmt(value, spec: str, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:{spec}}{unit}"


def targets(s: Session) -> list[str]:
    lines = []
    for model in s.plan.bench_modes:
        rows = {r["mode"]: r for r in s.results if r["check"] == f"bench-{model}" and r["status"] == "ok"}
        fast, base = rows.get("gpu-index"), rows.get("base-gpu")
        if fast and base and fast["s_per_batch"] and base["s_per_batch"]:
            ratio = fast["s_per_batch"] / base["s_per_batch"]
            lines.append(f"{model}: GPU-index epoch / base epoch (both on the GPU) = {ratio:.2f} "
                         f"(target <= {TARGET_EPOCH_RATIO}): {'met' if ratio <= TARGET_EPOCH_RATIO else 'missed'}")
        if fast and fast["data_share"] is not None:
            share = fast["data_share"]
            lines.append(f"{model}: data share of a GPU-index epoch = {share:.2%} (target < {TARGET_DATA_SHARE:.0%}): "
                         f"{'met' if share < TARGET_DATA_SHARE else 'missed'}")
        lazy = rows.get("lazy-index-gpu")
        if lazy and lazy["data_share"] is not None:
            lines.append(f"{model}: data share of a lazy-index epoch on the GPU = {lazy['data_share']:.1%} (no target)")
    return lines


def write_checks(s: Session) -> None:
    s.out.mkdir(parents=True, exist_ok=True)
    with open(s.out / "checks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["check", "result", "seconds", "detail"])
        for c in s.checks:
            w.writerow([c.name, c.result, f"{c.seconds:.1f}", c.detail])


def write_outputs(s: Session, install_log: Path | None) -> None:
    write_checks(s)
    with open(s.out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in s.results:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
    parts = []
    if install_log is not None and install_log.is_file():
        parts.append(("install", install_log))
    parts += [(p.stem, p) for p in sorted(s.logs.glob("*.log"), key=lambda p: p.stat().st_mtime)]
    with open(s.out / "log.txt", "w") as log:
        for title, path in parts:
            data = path.read_bytes()
            cut = len(data) > LOG_TAIL_BYTES
            log.write(f"\n===== {title}{' (last 256 KiB)' if cut else ''} =====\n")
            log.write(data[-LOG_TAIL_BYTES:].decode(errors="replace"))
    with tarfile.open(s.out / "runs.tar.gz", "w:gz") as tar:
        for folder in ("bench", "runs"):
            root = s.work / folder
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.suffix not in (".pt", ".tmp") and "dask-worker-space" not in path.parts:
                    tar.add(path, arcname=str(path.relative_to(s.work)))
    (s.out / "report.md").write_text(report(s))


def report(s: Session) -> str:
    env = s.facts.get("env", {})
    gpus = env.get("gpus") or []
    failed = [c.name for c in s.checks if c.result == "FAIL"]
    title = "GPU check (dry run: CPU stand-ins at a tiny size)" if s.plan.dry_run else "GPU check"
    lines = [
        f"# {title}",
        "",
        f"- date: {_dt.datetime.now().isoformat(timespec='seconds')}",
        f"- command: `{s.facts.get('command', 'scripts/gpu_check.sh')}`",
        f"- code: commit {s.facts.get('code', 'unknown')}",
        f"- GPU: {', '.join(g['name'] + ' (' + format(g['total_gib'], '.0f') + ' GiB)' for g in gpus) or 'none'}",
        f"- driver: {env.get('driver') or 'none'} (CUDA {env.get('driver_cuda') or '-'}); torch {env.get('torch', '?')} "
        f"built for CUDA {env.get('cuda_build') or '-'}, cuDNN {env.get('cudnn') or '-'}",
        f"- host: {env.get('cpu', '?')}, {env.get('cores', '?')} cores, {fmt(env.get('ram_gib'), '.0f')} GiB RAM; "
        f"{env.get('platform', '?')}; Python {env.get('python', '?')}",
        f"- libraries: torch-geometric {env.get('torch-geometric')}, torch-geometric-temporal "
        f"{env.get('torch-geometric-temporal')}, dask {env.get('dask')}, distributed {env.get('distributed')}, "
        f"numpy {env.get('numpy')}",
        f"- result: {'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}",
        "",
        "## Checks",
        "",
        "| check | result | seconds | detail |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.result} | {c.seconds:.0f} | {c.detail.replace('|', '/')} |" for c in s.checks]
    bench_rows = [r for r in s.results if r["check"].startswith("bench-")]
    if bench_rows:
        r0 = next((r for r in bench_rows if r["batch_size"]), bench_rows[0])
        lines += [
            "",
            f"## Epoch time and data share ({r0['dataset']} {r0['nodes']} x {r0['timesteps']}, batch "
            f"{r0['batch_size']})",
            "",
            f"`scripts/bench_memory.py`, one fresh process per mode and model; {s.plan.passes} passes over K "
            f"training batches (forward, masked-MAE backward, Adam), the last one timed. Projected epoch = time "
            f"per batch x {r0['full_epoch_batches']} training batches. Data share = time spent producing the "
            f"batches / the pass (on the GPU the queue is drained before and after each batch). `index` trains "
            f"on the CPU ({s.plan.threads} threads); the `-gpu` modes copy each batch to the GPU; `gpu-index` "
            f"keeps the series on the GPU. Host peak: RSS above the process after its imports.",
            "",
            "| model | mode | device | K | ms / batch | projected epoch s | data share | GPU peak allocated GiB "
            "| GPU reserved GiB | host peak GiB | preprocessing s | status |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in bench_rows:
            lines.append(
                f"| {r['model']} | {r['mode']} | {r['device']} | {r['batches'] or '-'} | {fmt(r['s_per_batch'], '.1f', 1e3)} "
                f"| {fmt(r['epoch_s_projected'], '.1f')} | {fmt(r['data_share'], '.2%')} | "
                f"{fmt(r['gpu_alloc_gib'], '.3f')} | {fmt(r['gpu_reserved_gib'], '.3f')} | "
                f"{fmt(r['host_peak_gib'], '.3f')} | {fmt(r['prep_s'], '.1f')} | {r['status']} |")
        target_lines = targets(s)
        if target_lines:
            lines += ["", "Targets:", ""] + [f"- {t}" for t in target_lines]
    pems = next((r for r in s.results if r["check"] == "pems-full"), None)
    if pems is not None:
        truncated = not (int(pems["nodes"]) == 11160 and int(pems["timesteps"]) == 105120)
        lines += [
            "",
            f"## PeMS at {pems['nodes']} x {pems['timesteps']}" + (" (truncated: not the full size)" if truncated else ""),
            "",
            f"Mode {pems['mode']}, `dcrnn-cell`, {pems['batches']} training batches of {pems['batch_size']}: series "
            f"{fmt(pems['series_gib'], '.2f')} GiB; GPU peak allocated {fmt(pems['gpu_alloc_gib'], '.2f')} GiB; host peak "
            f"{fmt(pems['host_peak_gib'], '.2f')} GiB; preprocessing {fmt(pems['prep_s'], '.1f')} s; "
            f"{fmt(pems['s_per_batch'], '.1f', 1e3)} ms per batch (first pass, cold).",
        ]
    nv = s.facts.get("nvml")
    if nv:
        lines += ["", "## NVML (single-node driver)", "",
                  f"`{nv['run_dir']}`: {nv['gpu_rows']} of {nv['rows']} system_stats.csv rows with GPU memory; NVML "
                  f"used up to {fmt(nv['max_used_mib'], '.0f')} of {fmt(nv['total_mib'], '.0f')} MiB; torch peak "
                  f"allocated {fmt(nv['torch_peak_mib'], '.0f')} MiB; epoch ({s.plan.driver_batches} train + val "
                  f"batches) {fmt(nv['epoch_s'], '.1f')} s."]
    ddp = [(k, v) for k, v in s.facts.items() if k.startswith("ddp-")]
    if ddp:
        lines += ["", "## DDP (`LOCAL=1 bash submit.sh`, `ddp_testing/pems_ddp.py -m index`)", "",
                  "| check | world size | backend | epoch s | test MAE | max GPU MiB (NVML) |", "|---|---|---|---|---|---|"]
        for k, v in ddp:
            backend = v["backend"] + (f" {v['nccl']}" if v.get("nccl") else "")
            lines.append(f"| {k} | {v['world_size']} | {backend} | {fmt(v['epoch_s'], '.1f')} | "
                         f"{fmt(v['test_mae'], '.3f')} | {v['max_gpu_mem'] or '-'} |")
    lines += ["", "## Files", "",
              "- `checks.csv`: one row per check; `results.csv`: one row per benchmarked mode;",
              "- `log.txt`: every step's command and output; `runs.tar.gz`: the run directories "
              "(CSVs, config.json, Dask logs) and the benchmark pages."]
    if s.facts.get("nvidia_smi"):
        lines += ["", "## nvidia-smi", "", "```", s.facts["nvidia_smi"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


# --- entry points -------------------------------------------------------------------------------


def run_checks(args) -> int:
    plan = make_plan(args.dry_run, args.pems_timesteps)
    s = Session(plan, Path(args.out), Path(args.work), args.python, args.budget_s, args.started or time.time())
    s.facts["command"] = args.command or "scripts/gpu_check.sh"
    s.facts["code"] = args.code or "unknown"
    if args.install_result:
        s.record("install", {"PASS": True, "FAIL": False}.get(args.install_result), args.install_seconds,
                 args.install_detail or "")
    # The longest step starts first, in the background, at low priority (full size: ~2-4 minutes
    # of one core, 9.4 GB written).
    low_priority = ["nice", "-n", "19"] if _which("nice") else []
    generator = s.background("pems-generate", low_priority + synthetic_cmd(
        s, "pems", plan.pems_nodes, plan.pems_steps, pems_dir(s)))
    try:
        s.attempt("env", lambda t: check_env(s, t))
        s.attempt("gpu-tests", lambda t: check_gpu_tests(s, t))
        s.attempt("data", lambda t: check_data(s, t))
        for model in plan.bench_modes:
            check_bench(s, model)
        s.attempt("nvml", lambda t: check_nvml(s, t))
        check_ddp(s, 1)
        check_ddp(s, 2)
        check_pems(s, generator)
    finally:
        if generator.poll() is None:
            stop_group(generator, grace=5)
        write_outputs(s, Path(args.install_log) if args.install_log else None)
    failed = [c.name for c in s.checks if c.result == "FAIL"]
    passed = sum(c.result == "PASS" for c in s.checks)
    if failed:
        print(f"gpu_check: {len(failed)} of {len(s.checks)} checks failed ({', '.join(failed)}); see {s.out}/report.md",
              flush=True)
        return 1
    print(f"gpu_check: {passed} checks passed{'' if passed == len(s.checks) else ', the others skipped'}; "
          f"results in {s.out}", flush=True)
    return 0


def check_requirements(site: Path) -> list[str]:
    """Unmet requirements of the distributions installed in ``site``, against everything importable
    now (``site`` must be on sys.path): one line each, ``requirement<TAB>needed by<TAB>installed``."""
    from importlib import metadata

    from packaging.requirements import Requirement

    unmet = []
    for dist in metadata.distributions(path=[str(site)]):
        owner = dist.metadata["Name"]
        if canonical(owner) in NOT_CHECKED:
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                have = None
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{req.name}{req.specifier}\t{owner}\t{have or 'absent'}")
    return unmet


def deps_main(args) -> int:
    site = Path(args.site)
    unmet = check_requirements(site)
    for line in unmet:
        print(f"unmet\t{line}")
    if unmet:
        return 1
    try:
        import torch

        if Path(torch.__file__).resolve().is_relative_to(site.resolve()):
            print(f"error\ttorch was installed into {site}: the machine's torch must stay in use")
            return 1
        import dask.array  # noqa: F401
        import distributed  # noqa: F401

        from pgti.compat import import_torch_geometric_temporal

        import_torch_geometric_temporal()
    except Exception as exc:  # noqa: BLE001 - one line naming what does not import
        print(f"error\timport failed: {type(exc).__name__}: {exc}")
        return 1
    from importlib import metadata

    print(f"ok\tdask {dask.__version__}, distributed {distributed.__version__}, torch-geometric-temporal "
          f"{metadata.version('torch-geometric-temporal')}, torch {torch.__version__} (the machine's, "
          f"{Path(torch.__file__).parent})")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgti.bench.gpu_check", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command_name", required=True)
    run = sub.add_parser("run", help="run the checks (scripts/gpu_check.sh calls this)")
    run.add_argument("--out", required=True, help="folder for report.md, checks.csv, results.csv, log.txt, runs.tar.gz")
    run.add_argument("--work", required=True, help="scratch folder (data, run directories)")
    run.add_argument("--dry-run", action="store_true", help="CPU stand-ins at a tiny size")
    run.add_argument("--python", default=sys.executable, help="interpreter for every step")
    run.add_argument("--budget-s", type=float, default=450.0, help="seconds for everything, install included")
    run.add_argument("--started", type=float, default=None, help="epoch seconds when the check started")
    run.add_argument("--pems-timesteps", type=int, default=None,
                     help="length of the PeMS series (default: 105,120, the full size; dry run 600)")
    run.add_argument("--install-result", choices=("PASS", "FAIL", "SKIP"), default=None)
    run.add_argument("--install-detail", default="")
    run.add_argument("--install-seconds", type=float, default=0.0)
    run.add_argument("--install-log", default=None)
    run.add_argument("--command", default=None, help="the command line, for the report")
    run.add_argument("--code", default=None, help="the code's version, for the report")
    deps = sub.add_parser("deps", help="check the requirements of the wheels installed in --site")
    deps.add_argument("--site", required=True)
    sub.add_parser("probe", help="print this machine's versions and GPUs as one JSON line")
    args = parser.parse_args(argv)
    if args.command_name == "deps":
        return deps_main(args)
    if args.command_name == "probe":
        print("PROBE " + json.dumps(probe()))
        return 0
    if args.pems_timesteps is not None and args.pems_timesteps < 240:
        parser.error("--pems-timesteps must be at least 240 (20 x L)")
    return run_checks(args)


if __name__ == "__main__":
    sys.exit(main())
