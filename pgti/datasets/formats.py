"""Readers for the real file formats. Each returns a :class:`RawDataset`: the graph, the
timestamps and a :class:`RowReader` that reads raw rows ``[t0, t1)`` of the (T, N) series on
demand, so that a large HDF5 series is never loaded whole.

Formats (see README "Datasets"):
- chickenpox JSON: ``{"edges": E x 2, "node_ids": {name: idx}, "FX": T x N}``.
- windmill JSON: ``{"block": T x N, "edges": E x 2, "weights": E}``.
- DCRNN: a pandas HDFStore (fixed format) holding a DataFrame with a DatetimeIndex and one
  float64 column per sensor (``/<key>/block0_values`` is (T, N) row-major, ``axis0`` the sensor
  ids, ``axis1`` int64 timestamps in the unit named by its ``kind`` attribute), plus a pickle
  ``[sensor_ids, sensor_id_to_ind, adj_mx]`` written by Python 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from pgti.datasets.registry import DatasetSpec, get_spec, resolve_files
from pgti.datasets.safe_pickle import load_untrusted_pickle
from pgti.errors import InputError

H5_KEYS = ("df", "speed")
_NS_PER = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


class RowReader(Protocol):
    num_timesteps: int
    num_nodes: int
    source: str

    def read(self, t0: int, t1: int) -> np.ndarray:
        """Raw values of rows [t0, t1) as a (t1 - t0, N) float64 array."""

    def close(self) -> None: ...


class ArrayRows:
    """Rows of an in-memory (T, N) array (the JSON formats must be parsed whole anyway)."""

    def __init__(self, values: np.ndarray, source: str):
        self.values = values
        self.num_timesteps, self.num_nodes = values.shape
        self.source = source

    def read(self, t0: int, t1: int) -> np.ndarray:
        return self.values[t0:t1]

    def close(self) -> None:
        pass


class H5Rows:
    """Rows of ``/<key>/block0_values`` read with h5py, a slab at a time."""

    def __init__(self, path: Path, key: str):
        self.path = path
        self.source = str(path)
        self._file = h5py.File(path, "r")
        self._values = self._file[key]["block0_values"]
        self.num_timesteps, self.num_nodes = self._values.shape

    def read(self, t0: int, t1: int) -> np.ndarray:
        return self._values[t0:t1]

    def close(self) -> None:
        self._file.close()

    def __getstate__(self):  # reopen in another process (Dask workers)
        return {"path": self.path, "key": self._values.parent.name.lstrip("/")}

    def __setstate__(self, state):
        self.__init__(state["path"], state["key"])


@dataclass
class RawDataset:
    spec: DatasetSpec
    paths: tuple[Path, ...]
    node_ids: list[str]
    edge_index: np.ndarray  # (2, E) int64, row 0 source, row 1 target
    edge_weight: np.ndarray  # (E,) float32
    timestamps_ns: np.ndarray | None  # (T,) int64 nanoseconds since the epoch, or None
    rows: RowReader

    @property
    def num_timesteps(self) -> int:
        return self.rows.num_timesteps

    @property
    def num_nodes(self) -> int:
        return self.rows.num_nodes

    def close(self) -> None:
        self.rows.close()


def load_raw(name: str, data_dir: str | Path = "data") -> RawDataset:
    """Open dataset ``name`` from ``data_dir`` in its real format."""
    spec = get_spec(name)
    paths = resolve_files(spec, data_dir)
    if spec.format == "chickenpox-json":
        return _read_chickenpox(spec, paths[0])
    if spec.format == "windmill-json":
        return _read_windmill(spec, paths[0])
    return _read_dcrnn(spec, *paths)


# --- JSON formats ---------------------------------------------------------------------------


def _load_json(path: Path, keys: tuple[str, ...]) -> dict:
    try:
        with open(path) as f:
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise InputError(f"{path} must be a JSON object with keys {list(keys)}; found {found}")
    return obj


def _matrix(path: Path, key: str, value, dtype) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {key!r} is not a numeric matrix: {exc}") from None
    if arr.ndim != 2:
        raise InputError(f"{path}: {key!r} must be 2-D, got shape {arr.shape}")
    return arr


def _edges(path: Path, edges, num_nodes: int) -> np.ndarray:
    e = _matrix(path, "edges", edges, np.int64)
    if e.shape[1] != 2:
        raise InputError(f"{path}: 'edges' must be E x 2 pairs, got shape {e.shape}")
    if e.size and (e.min() < 0 or e.max() >= num_nodes):
        raise InputError(
            f"{path}: edge endpoints must be node indices in [0, {num_nodes}), "
            f"found {e.min()}..{e.max()}"
        )
    return np.ascontiguousarray(e.T)


def _read_chickenpox(spec: DatasetSpec, path: Path) -> RawDataset:
    obj = _load_json(path, ("edges", "node_ids", "FX"))
    values = _matrix(path, "FX", obj["FX"], np.float64)
    num_nodes = values.shape[1]
    node_ids = [name for name, _ in sorted(obj["node_ids"].items(), key=lambda kv: kv[1])]
    if len(node_ids) != num_nodes:
        raise InputError(
            f"{path}: 'node_ids' names {len(node_ids)} nodes but 'FX' has {num_nodes} columns"
        )
    edge_index = _edges(path, obj["edges"], num_nodes)
    weights = np.ones(edge_index.shape[1], dtype=np.float32)
    return RawDataset(spec, (path,), node_ids, edge_index, weights, None, ArrayRows(values, str(path)))


def _read_windmill(spec: DatasetSpec, path: Path) -> RawDataset:
    obj = _load_json(path, ("block", "edges", "weights"))
    values = _matrix(path, "block", obj["block"], np.float64)
    num_nodes = values.shape[1]
    edge_index = _edges(path, obj["edges"], num_nodes)
    weights = np.asarray(obj["weights"], dtype=np.float32).reshape(-1)
    if weights.shape[0] != edge_index.shape[1]:
        raise InputError(
            f"{path}: {weights.shape[0]} 'weights' for {edge_index.shape[1]} 'edges'"
        )
    node_ids = [str(i) for i in range(num_nodes)]
    return RawDataset(spec, (path,), node_ids, edge_index, weights, None, ArrayRows(values, str(path)))


# --- DCRNN format -----------------------------------------------------------------------------


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def find_h5_key(path: Path) -> str:
    with h5py.File(path, "r") as f:
        for key in H5_KEYS:
            if key in f and isinstance(f[key], h5py.Group) and "block0_values" in f[key]:
                return key
        found = sorted(f.keys())
    raise InputError(
        f"{path} has no pandas series under the keys {list(H5_KEYS)}; keys found: {found or 'none'}"
    )


def read_timestamps_ns(path: Path, key: str) -> np.ndarray:
    """The DatetimeIndex as int64 nanoseconds. ``kind`` is 'datetime64' (ns, older pandas)
    or 'datetime64[<unit>]' (pandas >= 2 writes microseconds)."""
    with h5py.File(path, "r") as f:
        axis1 = f[key]["axis1"]
        kind = _attr_str(axis1.attrs.get("kind", b""))
        raw = axis1[:].astype(np.int64)
    if not kind.startswith("datetime64"):
        raise InputError(f"{path}: /{key}/axis1 is not a DatetimeIndex (kind={kind!r})")
    unit = kind[len("datetime64[") : -1] if "[" in kind else "ns"
    if unit not in _NS_PER:
        raise InputError(f"{path}: unsupported timestamp unit {unit!r} in /{key}/axis1")
    return raw * _NS_PER[unit]


def _sensor_ids(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v) for v in values]


def read_adjacency(path: Path) -> tuple[list[str], dict[str, int], np.ndarray]:
    obj = load_untrusted_pickle(path)
    if not (isinstance(obj, (list, tuple)) and len(obj) == 3):
        raise InputError(
            f"{path} must hold [sensor_ids, sensor_id_to_ind, adj_mx]; found {type(obj).__name__}"
        )
    ids, id_to_ind, adj = obj
    if not isinstance(adj, np.ndarray) or adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        shape = getattr(adj, "shape", None)
        raise InputError(f"{path}: adj_mx must be a square N x N array, got shape {shape}")
    ids = [i.decode("latin1") if isinstance(i, bytes) else str(i) for i in ids]
    id_to_ind = {
        (k.decode("latin1") if isinstance(k, bytes) else str(k)): int(v) for k, v in dict(id_to_ind).items()
    }
    return ids, id_to_ind, adj


def dense_to_edges(adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero entries of a (possibly huge) dense adjacency as (2, E) int64 and (E,) float32,
    row-blocked so no second N x N array is made."""
    n = adj.shape[0]
    rows, cols, weights = [], [], []
    step = max(1, (64 << 20) // max(1, n * adj.dtype.itemsize))
    for r0 in range(0, n, step):
        block = np.asarray(adj[r0 : r0 + step])
        r, c = np.nonzero(block)
        rows.append(r + r0)
        cols.append(c)
        weights.append(block[r, c].astype(np.float32))
    edge_index = np.stack([np.concatenate(rows), np.concatenate(cols)]).astype(np.int64)
    return edge_index, np.concatenate(weights)


def _read_dcrnn(spec: DatasetSpec, h5_path: Path, pkl_path: Path) -> RawDataset:
    key = find_h5_key(h5_path)
    timestamps = read_timestamps_ns(h5_path, key)
    with h5py.File(h5_path, "r") as f:
        columns = _sensor_ids(f[key]["axis0"][:])
        shape = f[key]["block0_values"].shape
    if len(shape) != 2 or shape != (len(timestamps), len(columns)):
        raise InputError(
            f"{h5_path}: /{key}/block0_values has shape {shape}, expected "
            f"({len(timestamps)} timestamps, {len(columns)} sensors)"
        )
    ids, id_to_ind, adj = read_adjacency(pkl_path)
    if adj.shape[0] != len(columns):
        raise InputError(
            f"{pkl_path}: adjacency is {adj.shape[0]} x {adj.shape[1]} but {h5_path} has "
            f"{len(columns)} sensors"
        )
    edge_index, edge_weight = dense_to_edges(adj)
    # The adjacency is indexed by sensor_id_to_ind; the series by its column order. DCRNN's
    # files agree; where they don't, renumber the edges into column order.
    if ids and ids != columns:
        position = {sensor: i for i, sensor in enumerate(columns)}
        try:
            col_of = np.array([position[s] for s in sorted(id_to_ind, key=id_to_ind.get)])
        except KeyError:
            missing = sorted(set(id_to_ind) - set(columns))[:3]
            raise InputError(
                f"{pkl_path}: sensors {missing} are not columns of {h5_path}"
            ) from None
        edge_index = col_of[edge_index]
    return RawDataset(
        spec, (h5_path, pkl_path), columns, edge_index, edge_weight, timestamps, H5Rows(h5_path, key)
    )
