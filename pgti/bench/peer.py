"""The peer: PyTorch Geometric Temporal 0.56.2's index-batching, run on our files.

PGT's dataset loaders download their data, so the benchmark does what each loader's
``get_index_dataset(...)`` does on the CPU (``allGPU=-1``) to the same values read from our
files, and then calls PGT's own ``IndexDataset(indices, data, horizon)`` under a default
``torch.utils.data.DataLoader`` (per-sample ``__getitem__`` slicing and the default collate,
``torch.stack``). Per loader, the array handed to ``IndexDataset`` is:

- PeMS, PeMS-All-LA (``pems.py``, ``pemsAllLA.py``): ``pd.read_hdf`` of the DCRNN file; the
  float64 (T, N) values and a tiled float64 time-of-day are concatenated to (T, N, 2); the
  mean and std over (T, N) per channel normalise it into a new float64 array.
- METR-LA, PeMS-Bay (``metr_la.py``, ``pems_bay.py``): ``np.load`` of a (T, N, 2) float64
  ``node_values.npy`` (speed, time of day; here built from our file), transposed to
  (N, 2, T), cast to float32, normalised per channel, and transposed back: a (T, N, 2) float32
  *view* whose time axis has stride 4 bytes, so each window slice is strided.
- Windmill (``windmilllarge.py``): the float64 block normalised per node, (T, N, 1).
- Chickenpox (``chickenpox.py``): the float64 FX as it is, (T, N, 1).

Where our storages hold float32 (T, N, F), the peer's arrays are what its loaders make, so
the memory comparison includes its dtype and copies. For batch-assembly speed the peer is
also run on our float32 series itself (``same data``), so that only the batching differs.
"""

from __future__ import annotations

import numpy as np
import torch

from pgti.datasets.formats import RawDataset, find_h5_key

PEER_LOADERS = {
    "chickenpox": "chickenpox.py",
    "windmill-large": "windmilllarge.py",
    "metr-la": "metr_la.py",
    "pems-bay": "pems_bay.py",
    "pems-all-la": "pemsAllLA.py",
    "pems": "pems.py",
}


def index_dataset_class():
    """PGT's ``IndexDataset`` (imported through :mod:`pgti.compat`)."""
    from pgti.compat import import_torch_geometric_temporal

    import_torch_geometric_temporal()
    from torch_geometric_temporal.signal.index_dataset import IndexDataset

    return IndexDataset


def _time_of_day(timestamps_ns: np.ndarray) -> np.ndarray:
    """Fraction of the day, float64, as PGT computes ``time_ind`` from the DatetimeIndex."""
    day = 86_400 * 10**9
    return (timestamps_ns % day) / day


def _npy_node_values(raw: RawDataset) -> np.ndarray:
    """What ``np.load("node_values.npy")`` returns for METR-LA/PeMS-Bay: (T, N, 2) float64,
    filled from our file a chunk at a time (so building it costs no more than loading it)."""
    t, n = raw.num_timesteps, raw.num_nodes
    out = np.empty((t, n, 2), dtype=np.float64)
    tod = _time_of_day(raw.timestamps_ns)
    step = max(1, (64 << 20) // (8 * n))
    for t0 in range(0, t, step):
        t1 = min(t0 + step, t)
        out[t0:t1, :, 0] = raw.rows.read(t0, t1)
        out[t0:t1, :, 1] = tod[t0:t1, None]
    return out


def peer_series(raw: RawDataset) -> np.ndarray:
    """The array PGT 0.56.2's CPU ``get_index_dataset`` hands to ``IndexDataset`` (see module doc)."""
    name = raw.spec.name
    if name == "chickenpox":
        data = np.array(raw.rows.read(0, raw.num_timesteps))
        return np.expand_dims(data, axis=-1)
    if name == "windmill-large":
        data = np.stack(raw.rows.read(0, raw.num_timesteps))
        mean = np.mean(data, axis=0)
        std = np.std(data, axis=0) + 1e-10
        data = (data - mean) / std
        return np.expand_dims(data, axis=-1)
    if name in ("metr-la", "pems-bay"):
        data = _npy_node_values(raw).transpose((1, 2, 0))
        data = data.astype(np.float32)
        means = np.mean(data, axis=(0, 2))
        data = data - means.reshape(1, -1, 1)
        stds = np.std(data, axis=(0, 2))
        data = data / stds.reshape(1, -1, 1)
        return data.transpose((2, 0, 1))
    if name in ("pems-all-la", "pems"):
        import pandas as pd

        path = raw.paths[0]
        df = pd.read_hdf(path, find_h5_key(path))
        num_nodes = df.shape[1]
        values = np.expand_dims(df.values, axis=-1)
        time_ind = (df.index.values - df.index.values.astype("datetime64[D]")) / np.timedelta64(1, "D")
        time_in_day = np.tile(time_ind, [1, num_nodes, 1]).transpose((2, 1, 0))
        data = np.concatenate([values, time_in_day], axis=-1)
        means = np.mean(data, axis=(0, 1))
        stds = np.std(data, axis=(0, 1))
        return (data - means) / stds
    raise ValueError(f"no peer loader for dataset {name!r}")


def peer_loader(series, starts: np.ndarray, lags: int, batch_size: int, *, shuffle: bool = True,
                seed: int = 0) -> torch.utils.data.DataLoader:
    """PGT's ``IndexDataset`` over window ``starts`` in a default ``DataLoader`` (as its loaders
    build ``train_dataloader`` without DDP). Batches are (B, L, N, F) in the array's dtype."""
    dataset = index_dataset_class()(np.asarray(starts), series, lags)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
