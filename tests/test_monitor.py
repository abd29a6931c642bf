"""MemoryMonitor: what system_stats.csv holds, that it is on disk early, and that it always stops."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import types
from pathlib import Path

import psutil
import pytest

from pgti.observability import gpu as gpu_module
from pgti.observability import monitor as monitor_module
from pgti.observability.gpu import GpuProbe, parse_visible_devices, torch_peak_allocated
from pgti.observability.monitor import (
    SYSTEM_STATS_COLUMNS,
    MemoryMonitor,
    peak_rss_tree_bytes,
    rss_tree_bytes,
)

ARTIFACT_COLUMNS = [
    "Timestamp", "System_Memory_Used", "System_Memory_Total", "GPU_Memory_Used", "GPU_Memory_Total",
]  # fmt: skip


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def no_nvml(monkeypatch):
    """The machine as this CPU box sees it, whatever the test host has."""
    monkeypatch.setattr(gpu_module, "_nvml", None)


def test_header_is_artifact_columns_then_ours_and_gpu_cells_empty_without_nvml(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    with MemoryMonitor(path, interval=0.05) as mon:
        time.sleep(0.2)
    header, rows = read_rows(path)
    assert header == list(SYSTEM_STATS_COLUMNS)
    assert header[:5] == ARTIFACT_COLUMNS
    assert len(rows) >= 3 and mon.samples == len(rows)
    for row in rows:
        assert row["GPU_Memory_Used"] == row["GPU_Memory_Total"] == ""
        assert row["Torch_GPU_Peak_Allocated"] == ""
        assert float(row["System_Memory_Total"]) > float(row["System_Memory_Used"]) > 0
        assert float(row["Process_Memory_Used"]) > 0
    assert mon.peak_gpu_mb is None and mon.gpu_total_mb is None
    assert mon.peak_process_mb == max(float(r["Process_Memory_Used"]) for r in rows)


def test_timestamps_parse_with_pandas_and_elapsed_increases(tmp_path, no_nvml):
    import pandas as pd

    path = tmp_path / "system_stats.csv"
    with MemoryMonitor(path, interval=0.05):
        time.sleep(0.15)
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["Timestamp"], format="%Y-%m-%d %H:%M:%S.%f")
    assert stamps.is_monotonic_increasing
    assert frame["Elapsed_s"].is_monotonic_increasing
    assert (frame["Process_Memory_Peak"].diff().dropna() >= 0).all()


def test_sub_second_run_has_a_start_and_a_final_row(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    with MemoryMonitor(path, interval=60):
        pass
    _, rows = read_rows(path)
    assert len(rows) == 2


def all_processes_rss_mb() -> float:
    """What the PGT-I artifact recorded: RSS summed over every process on the host."""
    total = 0
    for proc in psutil.process_iter(["memory_info"]):
        info = proc.info["memory_info"]
        total += info.rss if info is not None else 0
    return total / 2**20


def test_children_are_counted_and_the_rest_of_the_host_is_not(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    child_code = (
        "import sys\n"
        "block = b'\\x01' * (200 * 2**20)\n"  # written bytes: resident, not lazily mapped
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with MemoryMonitor(path, interval=0.05) as mon:
        time.sleep(0.15)
        before = mon.peak_process_mb
        child = subprocess.Popen(
            [sys.executable, "-c", child_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            assert wait_for(lambda: mon.peak_process_mb - before > 180)
            tree_mb = rss_tree_bytes() / 2**20
            host_mb = all_processes_rss_mb()
        finally:
            child.stdin.close()
            child.wait(timeout=10)
    assert tree_mb < host_mb
    _, rows = read_rows(path)
    peak_row = max(rows, key=lambda r: float(r["Process_Memory_Used"]))
    assert float(peak_row["Process_Memory_Used"]) - before > 180
    assert float(peak_row["Process_Memory_Used"]) < float(peak_row["System_Memory_Used"])


def test_rows_are_on_disk_while_the_run_is_still_going(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    with MemoryMonitor(path, interval=0.05) as mon:
        assert wait_for(lambda: len(read_rows(path)[1]) >= 3)
        assert mon.running


def test_exception_in_block_keeps_rows_and_joins_thread(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    mon = MemoryMonitor(path, interval=0.05)
    with pytest.raises(RuntimeError, match="boom"):
        with mon:
            time.sleep(0.1)
            raise RuntimeError("boom")
    assert not mon.running and not mon._thread.is_alive()
    assert len(read_rows(path)[1]) >= 2


def test_keyboard_interrupt_in_block_joins_thread(tmp_path, no_nvml):
    mon = MemoryMonitor(tmp_path / "system_stats.csv", interval=0.05)
    with pytest.raises(KeyboardInterrupt):
        with mon:
            raise KeyboardInterrupt
    assert not mon._thread.is_alive()


def test_stop_is_immediate_and_idempotent(tmp_path, no_nvml):
    mon = MemoryMonitor(tmp_path / "system_stats.csv", interval=30).start()
    t0 = time.monotonic()
    mon.stop()
    mon.stop()
    assert time.monotonic() - t0 < 2
    assert not mon.running and mon.samples == 2


def test_phase_labels_following_rows(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    with MemoryMonitor(path, interval=30, phase="preprocessing") as mon:
        mon.set_phase("training")
        assert wait_for(lambda: mon.samples >= 2)
        mon.set_phase("evaluation")
        assert wait_for(lambda: mon.samples >= 3)
    phases = [r["Phase"] for r in read_rows(path)[1]]
    assert phases == ["preprocessing", "training", "evaluation", "evaluation"]


def test_failing_sampler_is_reported_once_and_the_run_goes_on(tmp_path, no_nvml, monkeypatch, capsys):
    def broken(pid=None):
        raise RuntimeError("sensor exploded")

    monkeypatch.setattr(monitor_module, "rss_tree_bytes", broken)
    with MemoryMonitor(tmp_path / "system_stats.csv", interval=0.02) as mon:
        time.sleep(0.15)
    assert not mon.running
    err = capsys.readouterr().err
    assert err.count("sampling failed") == 1 and "sensor exploded" in err


def test_existing_file_is_appended_to_without_a_second_header(tmp_path, no_nvml):
    path = tmp_path / "system_stats.csv"
    for _ in range(2):
        with MemoryMonitor(path, interval=30):
            pass
    assert path.read_text().count("Timestamp") == 1
    assert len(read_rows(path)[1]) == 4


def test_rss_helpers_cover_this_process():
    own = psutil.Process().memory_info().rss
    assert rss_tree_bytes() >= own * 0.9
    assert peak_rss_tree_bytes() >= rss_tree_bytes() * 0.9


# --- GPU probe -----------------------------------------------------------------------------------


def test_probe_without_nvml_is_empty_and_never_raises(no_nvml):
    probe = GpuProbe()
    assert probe.available is False
    assert probe.devices() == [] and probe.memory() == []
    probe.close()
    probe.close()


def test_probe_on_this_host_does_not_raise():
    with GpuProbe() as probe:  # no driver here: NVMLError is caught; with one: real devices
        assert isinstance(probe.devices(), list)
        assert all(used <= total for used, total in probe.memory())


def test_torch_peak_is_none_without_cuda():
    import torch

    if torch.cuda.is_available():
        assert torch_peak_allocated() >= 0
    else:
        assert torch_peak_allocated() is None


UUIDS = ["GPU-aaaa1111", "GPU-bbbb2222", "GPU-cccc3333"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, [0, 1, 2]),
        ("", []),
        ("2,0", [2, 0]),
        ("1,7,0", [1]),  # CUDA stops at the first invalid entry
        ("GPU-bbbb", [1]),
        ("cccc3333,0", [2, 0]),
        ("0,0", [0]),
        ("-1", []),
    ],
)
def test_cuda_visible_devices_maps_to_nvml_indices(spec, expected):
    assert parse_visible_devices(spec, 3, UUIDS) == expected


class FakeNvml(types.SimpleNamespace):
    """Three GPUs of 16 GiB, device i using (i + 1) GiB."""

    class NVMLError(Exception):
        pass

    def __init__(self):
        super().__init__(shutdowns=0)

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return 3

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return UUIDS[h]

    def nvmlDeviceGetName(self, h):
        return f"Fake GPU {h}".encode()

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(used=(h + 1) * 2**30, total=16 * 2**30)


def test_monitor_sums_memory_of_visible_gpus_only(tmp_path, monkeypatch):
    fake = FakeNvml()
    monkeypatch.setattr(gpu_module, "_nvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-aaaa")
    with GpuProbe() as probe:
        assert probe.devices() == ["Fake GPU 2", "Fake GPU 0"]
    path = tmp_path / "system_stats.csv"
    with MemoryMonitor(path, interval=30) as mon:
        pass
    row = read_rows(path)[1][-1]
    assert float(row["GPU_Memory_Used"]) == 4 * 1024  # devices 2 and 0: 3 GiB + 1 GiB
    assert float(row["GPU_Memory_Total"]) == 32 * 1024
    assert mon.peak_gpu_mb == 4096 and mon.gpu_total_mb == 32768
    assert mon.stats_fields()["max_gpu_mem"] == 4096
    assert fake.shutdowns == 2  # every probe closed NVML


def test_nvml_error_at_init_means_no_gpu(monkeypatch):
    fake = FakeNvml()

    def fail():
        raise FakeNvml.NVMLError("Driver Not Loaded")

    fake.nvmlInit = fail
    monkeypatch.setattr(gpu_module, "_nvml", fake)
    probe = GpuProbe()
    assert not probe.available and "Driver Not Loaded" in probe.error
    assert probe.memory() == [] and probe.devices() == []
    probe.close()
    assert fake.shutdowns == 0
