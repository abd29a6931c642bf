"""``slab``: each rank keeps, for each split, the slab of the series its partition of the windows
covers (plus the 2L - 1 rows its last windows reach), index-batched in its own memory or GPU. The
raw rows are read on the worker that owns them (generalised distributed index-batching, the
artifact's ``opt_pems_ddp.py --mode dask-index``); only the halos cross the network."""

from __future__ import annotations

import numpy as np
import torch

from pgti.data.features import FeatureBuilder
from pgti.data.samplers import partition_bounds
# pgti.distributed.storage is imported where used: it imports pgti.data, which finds this module.
from pgti.data.storages import BuildContext, GatherStorage, StorageKind, register
from pgti.data.storages.index import IndexStorage
from pgti.data.windows import SPLITS
from pgti.datasets.formats import ArrayRows


class _Shifted:
    """The run's FeatureBuilder for rows numbered from ``offset``: building local row t0 builds
    global row offset + t0 (the calendar channels are indexed by global time step)."""

    def __init__(self, features: FeatureBuilder, offset: int):
        self.features, self.offset = features, offset

    def build(self, raw: np.ndarray, t0: int, **kwargs) -> np.ndarray:
        return self.features.build(raw, t0 + self.offset, **kwargs)

    def __getattr__(self, name):
        return getattr(self.features, name)


class SlabStorage(GatherStorage):
    """Index-batching over rows [offset, offset + len(raw)) of the series; starts are global."""

    def __init__(self, raw: np.ndarray, offset: int, features: FeatureBuilder, lags: int, device="cpu",
                 source: str = "the series"):
        self.offset = offset
        rows = ArrayRows(raw, f"{source} rows {offset}..{offset + len(raw)}")
        self.index = IndexStorage(rows, _Shifted(features, offset), lags, device)
        self.device = self.index.device

    @property
    def nbytes(self) -> int:
        return self.index.nbytes

    def gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.index.gather(torch.as_tensor(starts, device=self.device) - self.offset)


def _publish(client, data, slots, job_id: str) -> dict[str, str]:
    from pgti.distributed.storage import partition_owners, placed_series, publish_arrays

    owners = partition_owners(data.split, len(slots), data.raw.num_timesteps)
    series = placed_series(client, data.raw.rows, [(a, b, slots[rank].address) for a, b, rank in owners])
    return publish_arrays(client, job_id, {"series": series})


def _build(ctx: BuildContext) -> dict:
    from pgti.distributed.storage import ChunkedArray

    data, lags = ctx.data, ctx.data.lags
    chunked, storages = ChunkedArray(ctx.client, ctx.client.get_dataset(ctx.datasets["series"])), {}
    for split in SPLITS:
        bounds = partition_bounds(data.split.size(split), ctx.world)
        first = int(data.split.starts(split)[0])
        a, b = first + int(bounds[ctx.rank]), first + int(bounds[ctx.rank + 1]) + 2 * lags - 1
        raw = np.concatenate(ctx.client.gather(chunked.fetch(np.arange(a, b))))
        storages[split] = SlabStorage(raw, a, data.features, lags, ctx.device, data.raw.rows.source)
    return storages


register(StorageKind(
    name="slab",
    summary="each rank's partition of the series (plus a 2L-1 halo) in its own memory, index-batched; "
            "predicted bytes are the ranks' total",
    build=_build,
    host_bytes=lambda s, gpu: s.chunk_bytes + (0 if gpu else s.series_bytes),
    device_bytes=lambda s, gpu: s.series_bytes if gpu else 0,
    publish=_publish,
    single_node=False,
))
