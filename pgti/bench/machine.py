"""The machine a benchmark ran on, and the date: a number without these is not a result."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata

import psutil

GIB = 1 << 30


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_name() -> str | None:
    """The first CUDA device's name, or None; imports torch only if it is already imported."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        import torch
    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def describe_machine() -> dict[str, str]:
    """CPU, cores, RAM, GPU, OS and library versions, with today's date (ISO)."""
    vm = psutil.virtual_memory()
    gpu = gpu_name()
    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": str(usable_cores()),
        "ram_gib": f"{vm.total / GIB:.1f}",
        "gpu": gpu or "none",
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torch_geometric_temporal": _version("torch-geometric-temporal"),
        "code": code_version(),
    }


def code_version() -> str:
    """The repository's commit, and whether files differ from it (``git`` absent: "unknown")."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f" + uncommitted changes in {len(dirty)} tracked file(s)" if dirty else "")


def machine_line(desc: dict[str, str] | None = None) -> str:
    d = describe_machine() if desc is None else desc
    gpu = "no GPU" if d["gpu"] == "none" else f"GPU {d['gpu']}"
    return (
        f"{d['cpu']}, {d['cores']} cores, {d['ram_gib']} GiB RAM, {gpu}; {d['os']}, "
        f"Python {d['python']}, torch {d['torch']}, torch-geometric-temporal {d['torch_geometric_temporal']}"
    )
