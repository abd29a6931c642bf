"""Small datasets in the real formats. The DCRNN series is written by pandas' own HDFStore
writer, as the real files were (the reader is checked against pandas, not only against our own
writer); everything else by the format modules' writers (pgti/datasets/formats/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pgti.datasets.formats import dcrnn_h5, windmill_json


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
    """A DCRNN-format dataset: the series written by pandas, the graph a Python-2-style pickle
    with the sensor ids as Python 2 str, as in DCRNN's files."""
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
    dcrnn_h5.write_adjacency_pickle(pkl, ids, adj, py2_text=True)
    return h5, pkl


def write_windmill(data_dir: Path, *, nodes: int = 5, timesteps: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    block = rng.random((timesteps, nodes)) * np.linspace(0.5, 2.0, nodes)
    edges = np.array([[i, j] for i in range(nodes) for j in range(nodes) if i != j])
    path = data_dir / "windmill_output.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    windmill_json.write(path, [(0, block)], edges, rng.random(len(edges)))
    return path
