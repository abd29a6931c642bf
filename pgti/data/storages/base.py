"""``base``: every (input, target) window pair materialised up front, as the standard PyTorch
Geometric Temporal workflow does (about 2L times the series). The memory baseline."""

from __future__ import annotations

import torch

from pgti.data.features import FeatureBuilder
from pgti.data.storages import BuildContext, GatherStorage, StorageKind, register
from pgti.data.storages.index import IndexStorage
from pgti.data.windows import window_block
from pgti.datasets.formats import RowReader


class BaseStorage(GatherStorage):
    """Every window materialised: X_all[s] = series[s:s+L], Y_all[s] = series[s+L:s+2L]."""

    def __init__(self, rows: RowReader, features: FeatureBuilder, lags: int, num_windows: int):
        self.lags = lags
        series = IndexStorage(rows, features, lags).series.numpy()
        self.x = torch.from_numpy(window_block(series, lags, num_windows))
        self.y = torch.from_numpy(window_block(series, lags, num_windows, shift=lags))
        del series  # the materialised windows are all that base keeps

    @property
    def nbytes(self) -> int:
        return 2 * self.x.numel() * self.x.element_size()

    def gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.as_tensor(starts, device=self.device)
        return self.x.index_select(0, starts), self.y.index_select(0, starts)


def _build(ctx: BuildContext) -> BaseStorage:
    data = ctx.data
    return BaseStorage(data.raw.rows, data.features, data.lags, data.split.test[1])


register(StorageKind(
    name="base",
    summary="every window pair materialised in host memory (the standard workflow; about 2L x the series)",
    build=_build,
    host_bytes=lambda s, gpu: s.windows_bytes + s.series_bytes,
))
