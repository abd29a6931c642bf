"""Batching modes: where the series lives (a storage), on which device the batches are used, and
how the windows are sharded over the ranks; and the one table that maps the names the drivers
and benchmarks take (the artifact's ``base``, ``index``, ``dask``, ``dask-index``, ...) onto it.

A single-node run is the world-of-one case: its mode is sharded ``global`` over one rank, which
gives the single-node order (one seeded shuffle of the training windows per epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgti.data.storages import STORAGES, Shape
from pgti.errors import InputError


@dataclass(frozen=True)
class Mode:
    storage: str  # a pgti.data.storages name
    device: str | None = None  # "cpu" or "cuda"; None: the run's choice (--gpu)
    sharding: str = "global"  # global | batch-shuffle (pgti.data.plan.POLICIES)
    summary: str = ""

    def on(self, gpu: bool) -> "Mode":
        """This mode with its device decided."""
        if self.device is not None:
            return self
        return Mode(self.storage, "cuda" if gpu else "cpu", self.sharding, self.summary)


AUTO = "auto"

MODE_NAMES: dict[str, dict[str, Mode]] = {
    # single-node drivers (single_gpu_testing/*), --mode auto aside
    "single": {
        "base": Mode("base", summary="every window materialised in host memory (the standard workflow)"),
        "index": Mode("index", summary="windows gathered from one copy of the series (on the GPU with --gpu)"),
        "lazy-index": Mode("lazy-index", summary="windows read from disk per batch, in a background thread"),
    },
    # benchmarks: the device is part of the name
    "bench": {
        "base": Mode("base", "cpu"),
        "index": Mode("index", "cpu"),
        "lazy-index": Mode("lazy-index", "cpu"),
        "gpu-index": Mode("index", "cuda"),
        "base-gpu": Mode("base", "cuda"),
        "lazy-index-gpu": Mode("lazy-index", "cuda"),
    },
    # distributed drivers (ddp_testing/*)
    "pems_ddp.py": {
        "dask": Mode("dask-windows", summary="standard DDP: every window pair materialised in the cluster's "
                                             "memory, DistributedSampler shuffling"),
        "index": Mode("index", summary="distributed index-batching: each rank holds the whole normalised series"),
        "dask-index": Mode("dask-series", summary="the series held once in the cluster; each batch fetches "
                                                  "only its rows"),
    },
    "opt_baseline.py": {
        "dask": Mode("dask-windows", summary="standard DDP: every window pair materialised in the cluster's "
                                             "memory, DistributedSampler shuffling"),
    },
    "opt_pems_ddp.py": {
        "dask": Mode("dask-windows", sharding="batch-shuffle",
                     summary="window pairs in the cluster; each rank takes a contiguous partition, shuffled by batch"),
        "dask-index": Mode("slab", sharding="batch-shuffle",
                           summary="each rank keeps its partition's slab of the series plus a 2L-1 halo; "
                                   "shuffled by batch"),
    },
}


def mode_named(name: str, context: str = "single") -> Mode:
    try:
        return MODE_NAMES[context][name]
    except KeyError:
        known = ", ".join(MODE_NAMES.get(context, {}))
        raise InputError(f"unknown mode {name!r}; choose one of {known}", field="batching.mode") from None


def pick_auto(shape: Shape, gpu: bool, host_budget: int, device_budget: int | None) -> tuple[str, str]:
    """The fastest storage whose predicted bytes fit the budgets, and why, in one line.

    With ``gpu`` the GPU-index storage (the series on the GPU) comes first; lazy-index, which
    holds only a few chunks, is the last resort and is taken even when it does not fit."""
    candidates = sorted((k for k in STORAGES.values() if k.speed is not None and k.single_node),
                        key=lambda k: k.speed)
    refused = []
    for kind in candidates:
        host, device = kind.predict(shape, gpu)
        label = f"{kind.name}{' on the GPU' if gpu and device else ''}"
        over = []
        if host > host_budget:
            over.append(f"{_human(host)} of host memory > {_human(host_budget)}")
        if gpu and device_budget is not None and device > device_budget:
            over.append(f"{_human(device)} of GPU memory > {_human(device_budget)}")
        if not over:
            why = f"predicted {_human(host)} host" + (f" + {_human(device)} GPU" if device else "")
            if refused:
                why += "; " + "; ".join(refused)
            return kind.name, why
        refused.append(f"{label} needs {' and '.join(over)}")
    last = candidates[-1]
    return last.name, "; ".join(refused) + f"; {last.name} is the smallest there is"


def _human(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 0.1 * 2**30 else f"{n / 2**20:.1f} MiB"


def parse_size(text: str) -> int:
    """Bytes from ``512MB``, ``4GB``, ``1.5GiB``, ``800M`` or a plain number of bytes. MB/GB are
    read as MiB/GiB, as memory is counted everywhere in this project."""
    units = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
             "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}
    s = str(text).strip().lower().replace(" ", "")
    number = s.rstrip("kmgtib")
    unit = s[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if unit not in units or not value > 0 or value == float("inf"):
        raise ValueError(f"expected a size such as 512MB or 4GB, got {text!r}")
    return int(value * units[unit])
