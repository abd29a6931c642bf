"""The Dask cluster: start one on this machine or join one from a scheduler file, wait for its
workers, give each worker a rank, and read Dask's own transfer counters.

Ranks are assigned by host: workers are sorted by (host, address), so ranks on one host are
consecutive, and a worker's *local rank* is its index among the workers on its host. That local
rank (not ``rank % gpus_per_node``) picks the worker's GPU (see :func:`select_gpu`).

Run as a module it waits for workers (the launch scripts use it)::

    python -m pgti.distributed.cluster --scheduler-file F --workers 8 --timeout 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from pgti.errors import InputError

DEFAULT_WORKER_TIMEOUT = 300.0  # seconds to wait for --npar workers to register

# No work stealing: the ranks' tasks are pinned anyway, and a stolen batch fetch would carry the
# whole chunk it cuts its piece from to another worker. (The launch scripts set the same through
# DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING.)
SCHEDULER_CONFIG = {"distributed.scheduler.work-stealing": False}

# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, to hand freed memory back to the
# system sooner. Any static glibc malloc setting also freezes its mmap threshold at 128 KiB, so
# every tensor above that is mapped and page-faulted anew at every step: 8 epochs of agcrn on
# england-covid took 42.9 s with it and 20.4 s without (19.5 s against 2.1 s of system time),
# a3tgcn2 14.4 s against 11.3 s. Local workers get glibc's own tuning (None unsets the variable;
# one set in the environment is still passed on); the launch scripts do the same.
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@dataclass(frozen=True)
class Slot:
    """Where one rank runs."""

    rank: int
    address: str  # the Dask worker's address
    host: str
    local_rank: int  # index among the workers on the same host
    local_size: int  # workers on that host
    visible_gpus: tuple[str | None, ...]  # CUDA_VISIBLE_DEVICES of each worker on the host, by local rank


def dask_log_level(debug: bool) -> int:
    """Dask's logs: everything from WARNING with --debug, otherwise only what is fatal."""
    return logging.WARNING if debug else logging.CRITICAL


def quiet_dask_logs(debug: bool) -> None:
    level = dask_log_level(debug)
    for name in ("distributed", "dask", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def open_cluster(npar: int, *, gpu: bool, scheduler_file: str | None, debug: bool,
                 worker_timeout: float = DEFAULT_WORKER_TIMEOUT) -> Iterator:
    """A connected ``distributed.Client`` with at least ``npar`` workers; closed on exit.

    With ``scheduler_file``, join the cluster the launch script started; otherwise start a
    ``LocalCluster`` of ``npar`` single-threaded worker processes (``LocalCUDACluster``, one
    worker per GPU, with ``gpu``). Local clusters are shut down on exit; a joined cluster is left
    to the script that started it.
    """
    import dask
    from distributed import Client, LocalCluster

    quiet_dask_logs(debug)
    with contextlib.ExitStack() as stack:
        if scheduler_file:
            path = Path(scheduler_file)
            address = read_scheduler_address(path)
            try:
                client = Client(address, timeout=30)
            except OSError as exc:
                raise InputError(f"cannot reach the Dask scheduler {address} named in {path}: {exc}") from None
            stack.callback(client.close)
        else:
            level = dask_log_level(debug)
            with dask.config.set({**SCHEDULER_CONFIG, **WORKER_CONFIG}), _workers_ignore_ctrl_c():
                if gpu:
                    cluster = _local_cuda_cluster(npar, level)
                else:
                    cluster = LocalCluster(n_workers=npar, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=level)
            stack.callback(cluster.close)
            client = Client(cluster)
            stack.callback(client.close)
        wait_for_workers(client, npar, worker_timeout, source=scheduler_file or "the local cluster")
        yield client


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start local workers with SIGINT ignored (a child inherits an ignored signal, and Python
    then installs no KeyboardInterrupt handler). Ctrl-C reaches every process of the terminal's
    group; this way only the client handles it, shuts the cluster down in order, and prints one
    line, instead of every worker printing its traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def read_scheduler_address(path: Path) -> str:
    """The scheduler's address from a Dask scheduler file (JSON written by ``dask scheduler
    --scheduler-file``), checked: an untrusted file gets one line naming what is wrong."""
    if not path.is_file():
        raise InputError(f"{path} does not exist (is the Dask scheduler running?)", field="distributed.cluster_file")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a Dask scheduler file (not JSON: {exc})",
                         field="distributed.cluster_file") from None
    address = info.get("address") if isinstance(info, dict) else None
    if not isinstance(address, str) or "://" not in address or not host_of(address):
        raise InputError(f"{path} is not a Dask scheduler file: it has no 'address' "
                         f"such as tcp://host:port (found {address!r})", field="distributed.cluster_file")
    try:
        urlparse(address).port
    except ValueError:
        raise InputError(f"{path}: bad port in address {address!r}", field="distributed.cluster_file") from None
    return address


def _local_cuda_cluster(npar: int, level: int):
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise InputError(
            "batching.gpu without distributed.cluster_file starts a dask-cuda cluster, but dask-cuda is not "
            "installed (pip install -e '.[gpu]')", field="batching.gpu"
        ) from None
    import torch

    gpus = torch.cuda.device_count()
    if npar > gpus:
        raise InputError(f"-np {npar} GPU workers requested but this machine has {gpus} GPUs")
    return LocalCUDACluster(n_workers=npar, threads_per_worker=1, dashboard_address=None,
                            silence_logs=level)


def running_workers(client) -> dict[str, dict]:
    """{address: info} of the workers the scheduler knows now.

    Asked of the scheduler directly: ``Client.scheduler_info()`` returns a cache that the
    client's periodic refresh may replace, at any moment, by one without per-worker entries.
    """
    return dict(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


def wait_for_workers(client, n: int, timeout: float, *, source: str) -> None:
    from distributed.exceptions import WorkerStartTimeoutError

    try:
        client.wait_for_workers(n, timeout=timeout)
    except (WorkerStartTimeoutError, TimeoutError):
        seen = len(running_workers(client))
        raise InputError(
            f"only {seen} of the {n} Dask workers expected (-np {n}) registered with the scheduler "
            f"of {source} within {timeout:g} s"
        ) from None


def host_of(address: str) -> str:
    return urlparse(address).hostname or address


def place_ranks(client, n: int) -> list[Slot]:
    """One slot per rank on ``n`` of the cluster's workers (the first ``n`` by host, address)."""
    workers = running_workers(client)
    if len(workers) < n:
        raise InputError(f"the cluster has {len(workers)} workers, fewer than -np {n}")
    chosen = sorted(workers, key=lambda a: (workers[a].get("host") or host_of(a), a))[:n]
    visible = client.run(_cuda_visible_devices, workers=chosen)
    by_host: dict[str, list[str]] = {}
    for address in chosen:
        by_host.setdefault(workers[address].get("host") or host_of(address), []).append(address)
    slots = []
    for rank, address in enumerate(chosen):
        host = workers[address].get("host") or host_of(address)
        peers = by_host[host]
        slots.append(Slot(rank, address, host, peers.index(address), len(peers),
                          tuple(visible[a] for a in peers)))
    return slots


def _cuda_visible_devices() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def select_gpu(slot: Slot, device_count: int) -> int:
    """The CUDA device index (as this worker sees devices) for ``slot``'s rank.

    - One visible device (the launcher pinned each worker to its GPU): device 0.
    - Workers on the host see different first devices (dask-cuda rotates CUDA_VISIBLE_DEVICES so
      that each worker's own GPU comes first): device 0.
    - Otherwise every worker sees the same devices: the worker's local rank.
    """
    if device_count < 1:
        raise RuntimeError(f"rank {slot.rank} on {slot.host}: --gpu given but this worker sees no CUDA device")
    if device_count == 1:
        return 0
    firsts = [(v or "").split(",")[0] for v in slot.visible_gpus]
    if all(firsts) and len(set(firsts)) == len(firsts):
        return 0
    if slot.local_rank >= device_count:
        raise RuntimeError(
            f"rank {slot.rank}: {slot.local_size} workers on {slot.host} but only {device_count} GPUs; "
            f"start one worker per GPU"
        )
    return slot.local_rank


# --- Dask's transfer counters ---------------------------------------------------------------


def _outgoing_bytes(dask_worker) -> int:
    return int(dask_worker.transfer_outgoing_bytes_total)


def transfer_totals(client, workers: list[str] | None = None) -> dict[str, int]:
    """Bytes each worker has sent to other workers and clients since it started.

    ``Worker.transfer_outgoing_bytes_total`` counts every ``get_data`` reply, that is every
    transfer of a stored result out of a worker (keys a worker reads from its own memory are not
    counted). Summed over workers it is the data moved between processes.
    """
    return client.run(_outgoing_bytes, workers=workers)


def worker_outgoing_bytes() -> int:
    """This worker's counter, read from inside a task (0 outside a worker)."""
    from distributed import get_worker

    try:
        return _outgoing_bytes(get_worker())
    except ValueError:
        return 0


# --- the launch scripts' wait ------------------------------------------------------------------


def main(argv=None) -> int:
    from distributed import Client

    from pgti.cli_util import run_cli

    def _main(arguments):
        p = argparse.ArgumentParser(description="Wait until a Dask cluster has N workers.")
        p.add_argument("--scheduler-file", required=True)
        p.add_argument("--workers", type=int, required=True)
        p.add_argument("--timeout", type=float, default=DEFAULT_WORKER_TIMEOUT)
        a = p.parse_args(arguments)
        quiet_dask_logs(False)
        with Client(scheduler_file=a.scheduler_file, timeout=30) as client:
            wait_for_workers(client, a.workers, a.timeout, source=a.scheduler_file)
            print(f"{len(running_workers(client))} Dask workers ready", file=sys.stderr)
        return 0

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
