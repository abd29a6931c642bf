"""Where the series lives in a distributed run, and how a rank gets its batches from there.

Cluster side (built by the client, computed by the workers, kept in their memory):

- :func:`feature_series`: the (T, N, F) float32 feature series as a chunked ``dask.array``, each
  chunk read from the file and built by the run's own :class:`~pgti.data.features.FeatureBuilder`
  (same statistics, same features, bit for bit, as every single-node storage).
- :func:`window_arrays`: every (input, target) window pair materialised from it, (n, L, N, F)
  twice, chunked by windows: the standard DDP baseline ("dask" mode), 2L times the series.
- :func:`placed_series`: the raw series with each chunk read on the worker of the rank that owns
  those rows (:func:`partition_owners`), for the batch-shuffled partitions.

Rank side: :class:`ChunkedArray` fetches rows of a persisted array from the workers holding
them, and :class:`Fetching` is such a batch on its way. The storages that use them are modules
of :mod:`pgti.data.storages` (``dask-windows``, ``dask-series``, ``slab``).
"""

from __future__ import annotations

import numpy as np

from pgti.data.features import FeatureBuilder
from pgti.datasets.formats import ArrayRows, RowReader
from pgti.data.samplers import partition_bounds
from pgti.data.windows import window_block

CHUNK_BYTES = 64 << 20  # upper bound on one chunk of the cluster's arrays
CHUNKS_PER_WORKER = 4  # at least this many chunks per worker, so data spreads over the cluster


def chunk_length(total: int, item_bytes: int, workers: int) -> int:
    """Rows per chunk: at most CHUNK_BYTES, and enough chunks to give each worker several."""
    by_bytes = max(1, CHUNK_BYTES // max(1, item_bytes))
    by_spread = max(1, -(-total // (CHUNKS_PER_WORKER * max(1, workers))))
    return min(by_bytes, by_spread)


class SlabRows:
    """A RowReader over rows [offset, offset + len(values)) of a series, addressed by their
    global time steps (what a chunk task carries when the series is in memory, not in a file)."""

    def __init__(self, values: np.ndarray, offset: int, source: str, num_timesteps: int):
        self.values = values
        self.offset = offset
        self.source = source
        self.num_timesteps = num_timesteps
        self.num_nodes = values.shape[1]

    def read(self, t0: int, t1: int) -> np.ndarray:
        if t0 < self.offset or t1 > self.offset + len(self.values):
            raise IndexError(f"rows {t0}..{t1} are outside this slab "
                             f"({self.offset}..{self.offset + len(self.values)}) of {self.source}")
        return self.values[t0 - self.offset : t1 - self.offset]

    def close(self) -> None:
        pass


class RowShape:
    """Stands in for a RowReader on ranks that never read the file (the series is in the
    cluster): the shape and source only."""

    def __init__(self, rows: RowReader):
        self.num_timesteps, self.num_nodes, self.source = rows.num_timesteps, rows.num_nodes, rows.source

    def read(self, t0: int, t1: int) -> np.ndarray:
        raise RuntimeError(f"{self.source}: this rank reads the series from the Dask cluster, not the file")

    def close(self) -> None:
        pass


# --- cluster side ------------------------------------------------------------------------------


def _feature_rows(rows: RowReader, features: FeatureBuilder, t0: int, t1: int) -> np.ndarray:
    return features.build(rows.read(t0, t1), t0)


def _row_source(rows: RowReader, t0: int, t1: int) -> RowReader:
    """What a chunk task carries: a file-backed reader travels by path (each chunk is read on its
    worker); an in-memory series (the JSON datasets) is cut into the chunk's own slab."""
    if isinstance(rows, ArrayRows):
        return SlabRows(rows.read(t0, t1), t0, rows.source, rows.num_timesteps)
    return rows


def feature_series(rows: RowReader, features: FeatureBuilder, workers: int):
    """The (T, N, F) float32 feature series as a lazy dask array, chunked along time; Dask
    decides where each chunk is built."""
    import dask
    import dask.array as da

    t, n, f = rows.num_timesteps, rows.num_nodes, features.num_features
    step = chunk_length(t, n * f * 4, workers)
    shared_features = dask.delayed(features, pure=True)  # one node of the graph, not one per chunk
    blocks = []
    for t0 in range(0, t, step):
        t1 = min(t0 + step, t)
        block = dask.delayed(_feature_rows, pure=True)(_row_source(rows, t0, t1), shared_features, t0, t1)
        blocks.append(da.from_delayed(block, shape=(t1 - t0, n, f), dtype=np.float32))
    return da.concatenate(blocks, axis=0)


def _raw_rows(rows: RowReader, t0: int, t1: int) -> np.ndarray:
    return np.ascontiguousarray(rows.read(t0, t1))


def placed_series(client, rows: RowReader, owners: list[tuple[int, int, str]]):
    """The raw (T, N) series read chunk by chunk on the workers that own its rows: ``owners`` is
    [(t0, t1, worker address), ...] covering 0 .. T. The chunks are computed now (futures)."""
    import dask.array as da

    n = rows.num_nodes
    step = max(1, CHUNK_BYTES // (n * 8))
    blocks = []
    for a, b, address in owners:
        for t0 in range(a, b, step):
            t1 = min(t0 + step, b)
            future = client.submit(_raw_rows, _row_source(rows, t0, t1), t0, t1, workers=[address],
                                   allow_other_workers=False, pure=False)
            blocks.append(da.from_delayed(future, shape=(t1 - t0, n), dtype=np.float64))
    return da.concatenate(blocks, axis=0)


def partition_owners(split, world: int, num_timesteps: int) -> list[tuple[int, int, int]]:
    """[(t0, t1, rank), ...] covering rows 0 .. T: the rows from the first window of each rank's
    partition of each split up to the next partition's first window belong to that rank. A
    rank's slab then lies on its own worker except the 2L - 1 halo rows past its last window."""
    starts = []
    for name in ("train", "val", "test"):
        bounds = partition_bounds(split.size(name), world)
        first = getattr(split, name)[0]
        starts += [(first + int(bounds[r]), r) for r in range(world) if bounds[r + 1] > bounds[r]]
    starts.sort()
    ends = [t for t, _ in starts[1:]] + [num_timesteps]
    return [(t0, t1, rank) for (t0, rank), t1 in zip(starts, ends) if t1 > t0]


def window_arrays(series, lags: int, num_windows: int, workers: int):
    """(X, Y): X[s] = series[s : s + L], Y[s] = series[s + L : s + 2L] for s < num_windows,
    each a lazy (num_windows, L, N, F) dask array chunked by windows."""
    import dask
    import dask.array as da

    _, n, f = series.shape
    step = chunk_length(num_windows, lags * n * f * 4, workers)
    xs, ys = [], []
    for w0 in range(0, num_windows, step):
        w1 = min(w0 + step, num_windows)
        slab = series[w0 : w1 + 2 * lags - 1]  # the rows these windows cover
        shape = (w1 - w0, lags, n, f)
        xs.append(da.from_delayed(dask.delayed(window_block, pure=True)(slab, lags, w1 - w0, 0),
                                  shape=shape, dtype=np.float32))
        ys.append(da.from_delayed(dask.delayed(window_block, pure=True)(slab, lags, w1 - w0, lags),
                                  shape=shape, dtype=np.float32))
    return da.concatenate(xs, axis=0), da.concatenate(ys, axis=0)


# --- fetching from the cluster ------------------------------------------------------------


class Fetching:
    """A batch on its way from the cluster: ``futures`` resolve to arrays, ``finish`` makes (X, Y)."""

    def __init__(self, client, futures, finish):
        self.client, self.futures, self.finish = client, futures, finish

    def result(self):
        # Client.gather (not Future.result) takes pieces this worker holds from its own memory
        # instead of over a socket, so they are neither copied nor counted as transfers.
        return self.finish(*self.client.gather(self.futures))


class ChunkedArray:
    """A persisted dask array chunked along axis 0, and the worker holding each chunk (asked once:
    without work stealing or rebalancing, persisted chunks stay where they were computed)."""

    def __init__(self, client, array):
        from dask.core import flatten

        self.client, self.array = client, array
        self.bounds = np.cumsum((0,) + array.chunks[0])
        keys = list(flatten(array.__dask_keys__()))  # one chunk along the other axes: key i is chunk i
        who = client.who_has(client.futures_of(array))
        self.holders = [sorted(who.get(k) or [None])[0] for k in keys]

    def fetch(self, rows: np.ndarray) -> list:
        """Futures of ``array[rows]`` (``rows`` sorted), one per chunk touched, in row order.

        Each piece is cut on the worker holding its chunk and travels once, straight to the rank
        that asked (a single ``array[rows]`` would gather the pieces on some worker first, and
        Dask may prefer to move a whole chunk to an idle worker over cutting it where it is).
        """
        chunk_of = np.searchsorted(self.bounds, rows, side="right") - 1
        chunks = np.unique(chunk_of)
        pieces = [self.array.blocks[int(c)][rows[chunk_of == c] - self.bounds[c]] for c in chunks]
        futures = [None] * len(chunks)
        by_holder: dict[str | None, list[int]] = {}
        for i, c in enumerate(chunks):
            by_holder.setdefault(self.holders[c], []).append(i)
        for holder, members in by_holder.items():
            where = {} if holder is None else {"workers": [holder], "allow_other_workers": True}
            for i, future in zip(members, self.client.compute([pieces[i] for i in members], **where)):
                futures[i] = future
        return futures


def publish_arrays(client, job_id: str, arrays: dict) -> dict[str, str]:
    """Compute ``arrays`` (role -> dask array) on the workers, keep them there, and publish them
    under names unique to the job; returns role -> name, for the ranks."""
    from distributed import wait

    # Together, so that what they share (the windows' series) is computed once.
    persisted = dict(zip(arrays, client.persist(list(arrays.values()))))
    wait(list(persisted.values()))
    names = {role: f"pgti-{job_id}-{role}" for role in persisted}
    client.publish_dataset(**{names[role]: array for role, array in persisted.items()})
    return names
