"""Observability: the memory monitor, GPU probing, the run's output files, and plots of them.

- ``monitor``: ``MemoryMonitor`` (system_stats.csv) and process-tree RSS helpers.
- ``gpu``: ``GpuProbe`` (NVML) and ``torch_peak_allocated``; both degrade to "no data".
- ``outputs``: column lists, ``CsvAppender``, ``write_stats``, ``write_config``, ``append_resume``.
- ``rundir``: ``RunDir``: one run per directory (refusal, lock, clean-up of a refused run).
- ``plots``: PNGs and the cross-run summary, read back from those files.

``plots`` is not imported here, so training never pays for importing matplotlib.
"""

from pgti.observability.gpu import GpuProbe, torch_peak_allocated
from pgti.observability.monitor import (
    SYSTEM_STATS_COLUMNS,
    MemoryMonitor,
    peak_rss_tree_bytes,
    rss_tree_bytes,
)
from pgti.observability.outputs import (
    CONFIG_FILE,
    EPOCH_COLUMNS,
    EPOCHS_FILE,
    MB,
    STATS_COLUMNS,
    STATS_FILE,
    SYSTEM_STATS_FILE,
    CsvAppender,
    write_config,
    write_stats,
)
from pgti.observability.rundir import RunDir

__all__ = [
    "CONFIG_FILE",
    "EPOCH_COLUMNS",
    "EPOCHS_FILE",
    "MB",
    "STATS_COLUMNS",
    "STATS_FILE",
    "SYSTEM_STATS_COLUMNS",
    "SYSTEM_STATS_FILE",
    "CsvAppender",
    "GpuProbe",
    "MemoryMonitor",
    "RunDir",
    "peak_rss_tree_bytes",
    "rss_tree_bytes",
    "torch_peak_allocated",
    "write_config",
    "write_stats",
]
