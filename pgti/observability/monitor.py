"""Memory of this run, sampled about once a second into ``system_stats.csv``.

"This run" is the process and all of its descendants (data-loader workers, Dask workers, DDP
ranks it spawned): the sum of their resident set sizes. The PGT-I artifact summed RSS over every
process on the host, which counts whatever else the machine is doing; host-wide numbers are kept
in their own columns (``System_Memory_*``) so the two are never confused.

RSS sums count pages shared between processes (libraries, fork copy-on-write) once per process,
so the tree total is an upper bound on the memory the run really holds. NVML GPU memory is
device-wide (see gpu.py); torch's peak allocation is this process's own allocator only.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from pgti.observability.gpu import GpuProbe, torch_peak_allocated
from pgti.observability.outputs import MB, SYSTEM_STATS_FILE, TIMESTAMP_FORMAT, CsvAppender

SYSTEM_STATS_COLUMNS = (
    # the artifact's columns, names and units (MB = 2**20 bytes) unchanged
    "Timestamp", "System_Memory_Used", "System_Memory_Total", "GPU_Memory_Used", "GPU_Memory_Total",
    # ours
    "Elapsed_s", "Process_Memory_Used", "Process_Memory_Peak", "Torch_GPU_Peak_Allocated", "Phase",
)  # fmt: skip

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def _tree(pid: int | None) -> list[psutil.Process]:
    root = psutil.Process(os.getpid() if pid is None else pid)
    try:
        children = root.children(recursive=True)
    except _GONE:
        children = []
    return [root, *children]


def rss_tree_bytes(pid: int | None = None) -> int:
    """Current RSS of process ``pid`` (default: this one) plus all its descendants, in bytes.

    Children that exit while being read are skipped. Raises psutil.NoSuchProcess only if
    ``pid`` itself does not exist.
    """
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except _GONE:
            continue
    return total


def _high_water_bytes(proc: psutil.Process) -> int:
    """The kernel's peak RSS of one process (Linux VmHWM, Windows peak working set), else RSS."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    info = proc.memory_info()
    return int(getattr(info, "peak_wset", info.rss))


def peak_rss_tree_bytes(pid: int | None = None) -> int:
    """Sum of each live process's own peak RSS over ``pid`` (default: this one) and its descendants.

    Processes peak at different moments, so this is an upper bound on the tree's peak; children
    that already exited are not counted. For the tree's peak over time, use MemoryMonitor.
    """
    total = 0
    for proc in _tree(pid):
        try:
            total += _high_water_bytes(proc)
        except _GONE:
            continue
    return total


def _mb(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else round(n_bytes / MB, 2)


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class MemoryMonitor:
    """Background sampler writing one ``system_stats.csv`` row per ``interval`` seconds.

    ``csv_path`` is the CSV file, or a run directory (then ``<dir>/system_stats.csv``); an
    existing file with the same header is appended to. ``pid`` is the root of the process tree
    to measure (default: this process).

    Use as a context manager; the thread is stopped and joined on every way out of the block,
    exceptions and KeyboardInterrupt included. One sample is taken on entry, one on each
    ``set_phase`` and one on exit, so even a sub-second run leaves rows. Each row is flushed as
    it is written (and fsync'ed every ``fsync_every`` rows). A failing sample is reported once
    on stderr and sampling goes on; the run is never stopped by its monitor.

    Summary properties (MB, i.e. MiB) are kept up to date while running and final after stop.
    ``stats_fields()`` gives them keyed by stats.csv column names.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        interval: float = 1.0,
        pid: int | None = None,
        gpu: bool = True,
        fsync_every: int = 30,
        phase: str = "",
    ):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        path = Path(csv_path)
        self.csv_path = path / SYSTEM_STATS_FILE if path.is_dir() else path
        self.interval = float(interval)
        self.pid = os.getpid() if pid is None else pid
        self.use_gpu = gpu
        self.fsync_every = fsync_every
        self._phase = phase
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._writer: CsvAppender | None = None
        self._probe: GpuProbe | None = None
        self._lock = threading.Lock()  # one sample at a time (thread vs. start/stop)
        self._t0 = 0.0
        self._error_reported = False
        self.samples = 0
        self.peak_process_mb: float | None = None
        self.peak_system_mb: float | None = None
        self.system_total_mb: float | None = None
        self.peak_gpu_mb: float | None = None
        self.gpu_total_mb: float | None = None
        self.peak_torch_gpu_mb: float | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "MemoryMonitor":
        if self._thread is not None:
            raise RuntimeError("MemoryMonitor already started")
        self._writer = CsvAppender(self.csv_path, SYSTEM_STATS_COLUMNS, fsync_every=self.fsync_every)
        self._probe = GpuProbe() if self.use_gpu else None
        self._t0 = time.monotonic()
        try:
            self._sample()
            self._thread = threading.Thread(target=self._run, name="pgti-memory-monitor", daemon=True)
            self._thread.start()
        except BaseException:
            self._thread = None
            self._release()
            raise
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Take the final sample, stop and join the thread, close the file. Idempotent."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout=max(10.0, 5 * self.interval) if timeout is None else timeout)
        if thread.is_alive():  # a sample hung (e.g. in NVML): leave the daemon, keep the run going
            print("pgti monitor: sampler did not stop in time; leaving it behind", file=sys.stderr)
            return
        self._sample()
        self._release()

    def _release(self) -> None:
        self._writer.close()
        if self._probe is not None:
            self._probe.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "MemoryMonitor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the run tells us -----------------------------------------------------------------

    @property
    def phase(self) -> str:
        return self._phase

    def set_phase(self, name: str) -> None:
        """Label the following rows (e.g. "preprocessing", "training", "evaluation").

        A sample is taken right away so each phase's start shows in the file.
        """
        self._phase = str(name)
        self._wake.set()

    def stats_fields(self) -> dict[str, Any]:
        """The memory columns of stats.csv, from this monitor's samples."""
        return {
            "system_memory_total": self.system_total_mb,
            "max_system_mem": self.peak_system_mb,
            "gpu_memory_total": self.gpu_total_mb,
            "max_gpu_mem": self.peak_gpu_mb,
            "max_process_mem": self.peak_process_mb,
        }

    # --- sampling ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping:
                return  # stop() takes the final sample once this thread is gone
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            try:
                self._writer.append(self._measure())
                self.samples += 1
            except Exception as exc:  # noqa: BLE001 - the monitor must never end the run
                if not self._error_reported:
                    self._error_reported = True
                    print(f"pgti monitor: sampling failed ({exc!r}); continuing", file=sys.stderr)

    def _measure(self) -> dict[str, Any]:
        now = _dt.datetime.now()
        try:
            process_mb = _mb(rss_tree_bytes(self.pid))
        except psutil.Error:  # the watched process is gone: nothing of ours to count
            process_mb = None
        vm = psutil.virtual_memory()
        system_used_mb = _mb(vm.total - vm.available)
        system_total_mb = _mb(vm.total)

        gpu_used_mb = gpu_total_mb = None
        memory = self._probe.memory() if self._probe is not None else []
        if memory:
            gpu_used_mb = _mb(sum(u for u, _ in memory))
            gpu_total_mb = _mb(sum(t for _, t in memory))
        torch_peak_mb = _mb(torch_peak_allocated()) if self.use_gpu else None

        self.peak_process_mb = _max(self.peak_process_mb, process_mb)
        self.peak_system_mb = _max(self.peak_system_mb, system_used_mb)
        self.system_total_mb = system_total_mb
        self.peak_gpu_mb = _max(self.peak_gpu_mb, gpu_used_mb)
        self.gpu_total_mb = gpu_total_mb if gpu_total_mb is not None else self.gpu_total_mb
        self.peak_torch_gpu_mb = _max(self.peak_torch_gpu_mb, torch_peak_mb)
        return {
            "Timestamp": now.strftime(TIMESTAMP_FORMAT)[:-3],
            "System_Memory_Used": system_used_mb,
            "System_Memory_Total": system_total_mb,
            "GPU_Memory_Used": gpu_used_mb,
            "GPU_Memory_Total": gpu_total_mb,
            "Elapsed_s": round(time.monotonic() - self._t0, 3),
            "Process_Memory_Used": process_mb,
            "Process_Memory_Peak": self.peak_process_mb,
            "Torch_GPU_Peak_Allocated": torch_peak_mb,
            "Phase": self._phase,
        }
