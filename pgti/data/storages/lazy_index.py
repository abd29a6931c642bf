"""``lazy-index``: the series stays on disk; each batch reads only the rows its windows cover.

The read happens in a background thread: a plan asks for batch i + 1 before it hands out batch
i, so the next batch is read while the model trains on this one, and with a training step at
least as long as a read the epoch takes about as long as index's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pgti.data.features import FeatureBuilder
from pgti.data.storages import BuildContext, GatherStorage, Ready, StorageKind, register
from pgti.datasets.formats import RowReader


class LazyIndexStorage(GatherStorage):
    """Reads, for each batch, the merged row ranges its windows cover, straight from disk.
    ``prefetch=False`` reads in the caller's thread instead."""

    def __init__(self, rows: RowReader, features: FeatureBuilder, lags: int, *, prefetch: bool = True):
        self.rows = rows
        self.features = features
        self.lags = lags
        self.prefetch = prefetch
        self._reader: ThreadPoolExecutor | None = None

    def request(self, starts):
        starts = np.asarray(torch.as_tensor(starts).cpu(), dtype=np.int64)
        if not self.prefetch:
            return Ready(self.gather(starts))
        if self._reader is None:  # one thread: reads stay in order, and the file sees one reader at a time
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="pgti-lazy-read")
        return self._reader.submit(self.gather, starts)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None

    def gather(self, starts) -> tuple[torch.Tensor, torch.Tensor]:
        starts = np.asarray(torch.as_tensor(starts).cpu(), dtype=np.int64)
        span = 2 * self.lags
        # Merge overlapping [s, s + 2L) ranges into runs; read each run once.
        order = np.unique(starts)
        breaks = np.flatnonzero(np.diff(order) > span) + 1
        run_starts = order[np.r_[0, breaks]]
        run_ends = order[np.r_[breaks - 1, len(order) - 1]] + span
        # Build every run straight into one block (no per-run copies to concatenate).
        run_offset = np.r_[0, np.cumsum(run_ends - run_starts)]
        block = np.empty((run_offset[-1], self.rows.num_nodes, self.features.num_features), np.float32)
        for a, b, off in zip(run_starts, run_ends, run_offset):
            self.features.build(self.rows.read(a, b), a, out=block[off : off + (b - a)])
        # Position of each window's first row in the block.
        run_of = np.searchsorted(run_starts, starts, side="right") - 1
        first = run_offset[run_of] + (starts - run_starts[run_of])
        steps = np.arange(self.lags)
        x = block[first[:, None] + steps]
        y = block[first[:, None] + (steps + self.lags)]
        return torch.from_numpy(x), torch.from_numpy(y)


def _build(ctx: BuildContext) -> LazyIndexStorage:
    return LazyIndexStorage(ctx.data.raw.rows, ctx.data.features, ctx.data.lags)


register(StorageKind(
    name="lazy-index",
    summary="the series stays on disk; each batch reads its rows, in a background thread",
    build=_build,
    host_bytes=lambda s, gpu: s.chunk_bytes,
    speed=1,
))
