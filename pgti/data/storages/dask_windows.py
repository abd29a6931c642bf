"""``dask-windows``: every (input, target) window pair materialised in the Dask cluster's memory,
chunked by windows; each batch fetches its windows from the workers that hold them. The standard
DDP baseline (the artifact's ``dask`` mode), about 2L times the series across the cluster."""

from __future__ import annotations

import numpy as np
import torch

# pgti.distributed.storage is imported where used: it imports pgti.data, which finds this module.
from pgti.data.storages import BuildContext, StorageKind, register


class DaskWindowStorage:
    device = torch.device("cpu")

    def __init__(self, client, x, y):
        from pgti.distributed.storage import ChunkedArray

        self.client, self.x, self.y = client, ChunkedArray(client, x), ChunkedArray(client, y)

    def request(self, starts: np.ndarray):
        from pgti.distributed.storage import Fetching

        starts = np.asarray(starts)
        order = np.argsort(starts, kind="stable")
        ordered = starts[order]
        back = np.argsort(order, kind="stable")  # undo the sort: the batch keeps its sampler order
        xs, ys = self.x.fetch(ordered), self.y.fetch(ordered)

        def finish(*pieces):
            x, y = np.concatenate(pieces[: len(xs)]), np.concatenate(pieces[len(xs) :])
            return torch.from_numpy(x[back]), torch.from_numpy(y[back])

        return Fetching(self.client, xs + ys, finish)


def _publish(client, data, slots, job_id: str) -> dict[str, str]:
    from pgti.distributed.storage import feature_series, publish_arrays, window_arrays

    series = feature_series(data.raw.rows, data.features, len(slots))
    x, y = window_arrays(series, data.lags, data.split.test[1], len(slots))
    return publish_arrays(client, job_id, {"x": x, "y": y})


def _build(ctx: BuildContext) -> DaskWindowStorage:
    client = ctx.client
    return DaskWindowStorage(client, client.get_dataset(ctx.datasets["x"]), client.get_dataset(ctx.datasets["y"]))


register(StorageKind(
    name="dask-windows",
    summary="every window pair materialised in the Dask cluster (standard DDP); "
            "predicted bytes are the cluster's total",
    build=_build,
    host_bytes=lambda s, gpu: s.windows_bytes,
    publish=_publish,
    single_node=False,
))
