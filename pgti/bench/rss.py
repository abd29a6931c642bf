"""Peak memory of one measured span of a process: :class:`PeakRss`.

The figure is the highest resident set size reached inside the span minus the RSS at its start
(after the imports, before any data is loaded), so the interpreter and its libraries are not
counted. Two measurements are combined:

- a sampling thread reads this process's RSS every ``interval`` (5 ms by default) and the whole
  process tree's every ``tree_interval`` (walking ``/proc`` costs ~2 ms, too much at 5 ms);
- a final check of the kernel's own high-water mark (``VmHWM``), which misses nothing. The
  kernel keeps that mark since the process started (imports included), so it is reset at the
  start of the span by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0). Where that
  is not possible the sampled peak alone is used and ``exact`` is False.

On a CUDA device the allocator's peak (``torch.cuda.max_memory_allocated``/``reserved``) is
reset at the start and read at the end.
"""

from __future__ import annotations

import gc
import os
import sys
import threading

import psutil

from pgti.observability.monitor import rss_tree_bytes


def reset_high_water() -> bool:
    """Reset this process's VmHWM to its current RSS. False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def high_water() -> int | None:
    """This process's VmHWM in bytes, or None where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakRss:
    """Context manager: ``with PeakRss() as m: work()`` then ``m.peak_above_baseline``."""

    def __init__(self, interval: float = 0.005, tree_interval: float = 0.2, gpu: bool = False):
        self.interval = interval
        self.tree_every = max(1, round(tree_interval / interval))
        self.gpu = gpu
        self._proc = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline = 0
        self.sampled_peak = 0
        self.kernel_peak: int | None = None
        self.samples = 0
        self.exact = False
        self.gpu_peak_allocated: int | None = None
        self.gpu_peak_reserved: int | None = None

    def __enter__(self) -> "PeakRss":
        gc.collect()
        if self.gpu:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.baseline = rss_tree_bytes()
        self.sampled_peak = self.baseline
        self.exact = reset_high_water()
        self._thread = threading.Thread(target=self._run, name="pgti-bench-rss", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        tick = 0
        own = self._proc
        while not self._stop.wait(self.interval):
            tick += 1
            try:
                rss = rss_tree_bytes() if tick % self.tree_every == 0 else own.memory_info().rss
            except psutil.Error:
                continue
            self.samples += 1
            if rss > self.sampled_peak:
                self.sampled_peak = rss

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        final = rss_tree_bytes()
        self.sampled_peak = max(self.sampled_peak, final)
        if self.exact:
            hwm = high_water()
            children = final - self._proc.memory_info().rss  # descendants' RSS at the end
            self.kernel_peak = None if hwm is None else hwm + max(0, children)
            self.exact = hwm is not None
        if self.gpu:
            import torch

            torch.cuda.synchronize()
            self.gpu_peak_allocated = torch.cuda.max_memory_allocated()
            self.gpu_peak_reserved = torch.cuda.max_memory_reserved()

    @property
    def peak(self) -> int:
        """The span's peak RSS (bytes), the larger of the sampled and kernel figures."""
        return max(self.sampled_peak, self.kernel_peak or 0)

    @property
    def peak_above_baseline(self) -> int:
        return max(0, self.peak - self.baseline)

    def as_dict(self) -> dict:
        return {
            "baseline_bytes": self.baseline,
            "peak_bytes": self.peak,
            "peak_above_baseline_bytes": self.peak_above_baseline,
            "sampled_peak_bytes": self.sampled_peak,
            "kernel_peak_bytes": self.kernel_peak,
            "rss_samples": self.samples,
            "rss_exact": self.exact,
            "gpu_peak_allocated_bytes": self.gpu_peak_allocated,
            "gpu_peak_reserved_bytes": self.gpu_peak_reserved,
            "platform": sys.platform,
        }
