"""Small datasets in the real formats, written the way the real files were written:
pandas' own HDFStore writer for the series, and Python-2-style protocol-2 pickles."""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: byte strings (and ASCII text) as py2 ``str``
    opcodes (SHORT_BINSTRING/BINSTRING), which Python 3 can only read with encoding='latin1'."""

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def random_adjacency(n: int, rng: np.random.Generator, density: float = 0.3) -> np.ndarray:
    adj = np.where(rng.random((n, n)) < density, rng.uniform(0.1, 1.0, (n, n)), 0.0)
    np.fill_diagonal(adj, 1.0)
    return adj.astype(np.float32)


def write_traffic(
    data_dir: Path,
    name: str = "metr-la",
    *,
    nodes: int = 6,
    timesteps: int = 300,
    seed: int = 0,
    missing: float = 0.05,
    unit: str = "us",
    key: str = "df",
    adj: np.ndarray | None = None,
    h5_name: str | None = None,
    pkl_name: str | None = None,
) -> tuple[Path, Path]:
    """A DCRNN-format dataset written by pandas (series) and a py2-style pickle (graph)."""
    rng = np.random.default_rng(seed)
    t = np.arange(timesteps)
    speed = 60 + 8 * np.sin(2 * np.pi * t / 288)[:, None] + rng.normal(0, 3, (timesteps, nodes))
    speed[rng.random(speed.shape) < missing] = 0.0
    index = pd.date_range("2012-03-01", periods=timesteps, freq="5min").as_unit(unit)
    ids = [str(773869 + 7 * i) for i in range(nodes)]
    data_dir.mkdir(parents=True, exist_ok=True)
    h5 = data_dir / (h5_name or f"{name}.h5")
    pd.DataFrame(speed, index=index, columns=ids).to_hdf(h5, key=key, mode="w")
    pkl = data_dir / (pkl_name or f"adj_mx_{name}.pkl")
    adj = random_adjacency(nodes, rng) if adj is None else adj
    pkl.write_bytes(py2_pickle([ids, {s: i for i, s in enumerate(ids)}, adj]))
    return h5, pkl


def write_windmill(data_dir: Path, *, nodes: int = 5, timesteps: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    block = rng.random((timesteps, nodes)) * np.linspace(0.5, 2.0, nodes)
    edges = [[i, j] for i in range(nodes) for j in range(nodes) if i != j]
    path = data_dir / "windmill_output.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"block": block.tolist(), "edges": edges,
                                "weights": rng.random(len(edges)).tolist()}))
    return path
