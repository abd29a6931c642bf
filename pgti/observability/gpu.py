"""GPU names and memory from NVML, and torch's own peak allocation, without ever raising.

A machine with no GPU, no NVIDIA driver or no ``pynvml`` gives ``available=False``, empty
lists and ``None``: the monitor then writes empty GPU cells and the run goes on.

NVML numbers devices in PCI bus order. ``CUDA_VISIBLE_DEVICES`` is mapped onto NVML indices
assuming ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (what clusters set, and the order nvidia-smi shows);
entries may also be UUIDs or UUID prefixes (``GPU-8f3a...``). As CUDA does, the list stops at the
first entry that names no device. NVML memory is device-wide: it includes other processes on
the same GPU and the CUDA context, which torch's allocator numbers do not.
"""

from __future__ import annotations

import os
import sys
from typing import Any

try:  # the package is nvidia-ml-py; a broken or absent install only means "no GPU data"
    import pynvml as _nvml
except Exception:  # noqa: BLE001 - any import failure means the same thing
    _nvml = None


def _nvml_errors() -> tuple[type[BaseException], ...]:
    if _nvml is None:
        return (Exception,)
    return (_nvml.NVMLError, OSError, AttributeError)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_visible_devices(spec: str | None, count: int, uuids: list[str]) -> list[int]:
    """NVML indices named by a ``CUDA_VISIBLE_DEVICES`` value.

    ``spec`` None means every device; an empty string means none. ``uuids[i]`` is the UUID of
    NVML device ``i``. Entries are indices or (prefixes of) UUIDs; parsing stops at the first
    entry that names no device, and repeats are dropped, as CUDA does.
    """
    if spec is None:
        return list(range(count))
    chosen: list[int] = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            break
        index: int | None = None
        if entry.lstrip("-").isdigit():
            n = int(entry)
            index = n if 0 <= n < count else None
        else:
            wanted = entry if entry.startswith(("GPU-", "MIG-")) else f"GPU-{entry}"
            matches = [i for i, u in enumerate(uuids) if u.startswith(wanted)]
            index = matches[0] if len(matches) == 1 else None
        if index is None:
            break
        if index not in chosen:
            chosen.append(index)
    return chosen


class GpuProbe:
    """NVML, initialised once. ``available`` is False when NVML cannot be used at all."""

    def __init__(self) -> None:
        self.available = False
        self.error: str | None = None
        self._handles: list[Any] = []
        self._initialised = False
        if _nvml is None:
            self.error = "pynvml is not importable"
            return
        try:
            _nvml.nvmlInit()
        except _nvml_errors() as exc:
            self.error = f"NVML init failed: {exc}"
            return
        self._initialised = True
        try:
            count = _nvml.nvmlDeviceGetCount()
            all_handles = [_nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_text(_nvml.nvmlDeviceGetUUID(h)) for h in all_handles]
            visible = parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), count, uuids)
            self._handles = [all_handles[i] for i in visible]
            self.available = True
        except _nvml_errors() as exc:
            self.error = f"NVML device query failed: {exc}"
            self.close()

    def devices(self) -> list[str]:
        """Names of the visible GPUs (empty without NVML)."""
        if not self.available:
            return []
        try:
            return [_text(_nvml.nvmlDeviceGetName(h)) for h in self._handles]
        except _nvml_errors():
            return []

    def memory(self) -> list[tuple[int, int]]:
        """``(used_bytes, total_bytes)`` per visible GPU (empty without NVML or on an NVML error)."""
        if not self.available:
            return []
        try:
            out = []
            for h in self._handles:
                info = _nvml.nvmlDeviceGetMemoryInfo(h)
                out.append((int(info.used), int(info.total)))
            return out
        except _nvml_errors():
            return []

    def close(self) -> None:
        """Shut NVML down; safe to call more than once."""
        self.available = False
        self._handles = []
        if self._initialised:
            self._initialised = False
            try:
                _nvml.nvmlShutdown()
            except _nvml_errors():
                pass

    def __enter__(self) -> "GpuProbe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def torch_peak_allocated() -> int | None:
    """Peak bytes torch's CUDA allocator handed out in this process, summed over visible devices.

    None without CUDA. Torch is not imported here: a process that never imported it has no
    torch allocations to report. Devices this process never touched report 0, not an error.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        return sum(int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - a broken CUDA setup means "no number", never a crash
        return None
