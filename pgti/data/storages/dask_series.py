"""``dask-series``: the feature series held once in the Dask cluster; each batch fetches every
row its windows cover once and cuts its windows locally (the artifact's ``dask-index``)."""

from __future__ import annotations

import numpy as np
import torch

# pgti.distributed.storage is imported where used: it imports pgti.data, which finds this module.
from pgti.data.storages import BuildContext, StorageKind, register


class DaskSeriesStorage:
    device = torch.device("cpu")

    def __init__(self, client, series, lags: int):
        from pgti.distributed.storage import ChunkedArray

        self.client, self.series, self.lags = client, ChunkedArray(client, series), lags
        self._span = np.arange(2 * lags)

    def request(self, starts: np.ndarray):
        from pgti.distributed.storage import Fetching

        starts = np.asarray(starts)
        rows = np.unique(starts[:, None] + self._span)  # sorted, each row once
        # Row s + k of a window sits at position(s) + k: all 2L rows of a window are in ``rows``.
        index = np.searchsorted(rows, starts)[:, None] + self._span
        lags = self.lags

        def finish(*pieces):
            windows = torch.from_numpy(np.concatenate(pieces)[index])  # (B, 2L, N, F)
            return windows[:, :lags].contiguous(), windows[:, lags:].contiguous()

        return Fetching(self.client, self.series.fetch(rows), finish)


def _publish(client, data, slots, job_id: str) -> dict[str, str]:
    from pgti.distributed.storage import feature_series, publish_arrays

    return publish_arrays(client, job_id, {"series": feature_series(data.raw.rows, data.features, len(slots))})


def _build(ctx: BuildContext) -> DaskSeriesStorage:
    return DaskSeriesStorage(ctx.client, ctx.client.get_dataset(ctx.datasets["series"]), ctx.data.lags)


register(StorageKind(
    name="dask-series",
    summary="the series held once in the Dask cluster; each batch fetches only its rows; "
            "predicted bytes are the cluster's total",
    build=_build,
    host_bytes=lambda s, gpu: s.series_bytes,
    publish=_publish,
    single_node=False,
))
