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

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from pgti.datasets import json_fields
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
        self._file = open_h5(path)
        self._values = self._file[key]["block0_values"]
        self.num_timesteps, self.num_nodes = self._values.shape

    def read(self, t0: int, t1: int) -> np.ndarray:
        try:
            return self._values[t0:t1]
        except (OSError, RuntimeError) as exc:  # a truncated or damaged file fails on read
            raise InputError(f"{self.path}: cannot read time steps {t0}..{t1 - 1} (is the file truncated "
                             f"or damaged?): {_first_line(exc)}") from None

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
    from pgti.datasets import pgt_json  # Montevideo bus, Pedal Me, England COVID (imports this module)

    if spec.format in pgt_json.READERS:
        return pgt_json.read(spec, paths[0])
    return _read_dcrnn(spec, *paths)


# --- JSON formats ---------------------------------------------------------------------------


def _read_chickenpox(spec: DatasetSpec, path: Path) -> RawDataset:
    obj = json_fields.load_object(path, ("edges", "node_ids", "FX"))
    values = json_fields.series(path, "'FX'", obj["FX"])
    num_nodes = values.shape[1]
    ids = obj["node_ids"]
    if not isinstance(ids, dict) or not all(type(v) is int for v in ids.values()):
        raise InputError(f"{path}: 'node_ids' must be an object mapping each name to an integer index")
    if sorted(ids.values()) != list(range(num_nodes)):
        raise InputError(
            f"{path}: 'node_ids' must number the {num_nodes} columns of 'FX' 0..{num_nodes - 1}; "
            f"found {len(ids)} names with indices {sorted(set(ids.values()))[:5]}..."
        )
    node_ids = [name for name, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    edge_index = json_fields.edge_pairs(path, "'edges'", obj["edges"], num_nodes)
    weights = np.ones(edge_index.shape[1], dtype=np.float32)
    return RawDataset(spec, (path,), node_ids, edge_index, weights, None, ArrayRows(values, str(path)))


def _read_windmill(spec: DatasetSpec, path: Path) -> RawDataset:
    obj = json_fields.load_object(path, ("block", "edges", "weights"))
    values = json_fields.series(path, "'block'", obj["block"])
    num_nodes = values.shape[1]
    edge_index = json_fields.edge_pairs(path, "'edges'", obj["edges"], num_nodes)
    weights = json_fields.weights(path, "'weights'", obj["weights"], edge_index.shape[1], "'edges'").astype(np.float32)
    node_ids = [str(i) for i in range(num_nodes)]
    return RawDataset(spec, (path,), node_ids, edge_index, weights, None, ArrayRows(values, str(path)))


# --- DCRNN format -----------------------------------------------------------------------------


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only, or say in one line why it is not a readable HDF5 file."""
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        size = path.stat().st_size if path.is_file() else None
        what = "is empty" if size == 0 else "is not an HDF5 file, or is truncated or damaged"
        raise InputError(f"{path} {what} ({_first_line(exc)})") from None


_NUMERIC = "iuf"


def find_h5_key(path: Path) -> str:
    """The key of the pandas frame in ``path``, after checking its layout: ``axis0`` (N sensor
    ids), ``axis1`` (T int64 timestamps) and a numeric 2-D ``block0_values`` (T, N)."""
    with open_h5(path) as f:
        key = next((k for k in H5_KEYS if k in f and isinstance(f[k], h5py.Group)), None)
        if key is None:
            raise InputError(
                f"{path} has no pandas series under the keys {list(H5_KEYS)}; keys found: {sorted(f.keys()) or 'none'}"
            )
        group = f[key]
        for name in ("axis0", "axis1", "block0_values"):
            if not isinstance(group.get(name), h5py.Dataset):
                raise InputError(f"{path}: /{key}/{name} is missing; this is not a pandas fixed-format frame")
        values, axis0, axis1 = group["block0_values"], group["axis0"], group["axis1"]
        if values.ndim != 2 or values.dtype.kind not in _NUMERIC:
            raise InputError(f"{path}: /{key}/block0_values must be a 2-D numeric array (time x sensors); "
                             f"found {values.ndim}-D {values.dtype}")
        if axis1.ndim != 1 or axis1.dtype.kind not in "iu":
            raise InputError(f"{path}: /{key}/axis1 must hold int64 timestamps; found {axis1.ndim}-D {axis1.dtype}")
        if axis0.ndim != 1:
            raise InputError(f"{path}: /{key}/axis0 must be a 1-D list of sensor ids; found {axis0.ndim}-D")
        if values.shape != (axis1.shape[0], axis0.shape[0]):
            raise InputError(
                f"{path}: /{key}/block0_values has shape {values.shape}, expected "
                f"({axis1.shape[0]} timestamps, {axis0.shape[0]} sensors)"
            )
        if 0 in values.shape:
            raise InputError(f"{path}: the series is empty (shape {values.shape})")
    return key


def read_timestamps_ns(path: Path, key: str, step_seconds: int | None = None) -> np.ndarray:
    """The DatetimeIndex as int64 nanoseconds. ``kind`` is 'datetime64' (ns, older pandas)
    or 'datetime64[<unit>]' (pandas >= 2 writes microseconds). With ``step_seconds``, the
    timestamps must advance by exactly that step."""
    with open_h5(path) as f:
        axis1 = f[key]["axis1"]
        kind = _attr_str(axis1.attrs.get("kind", b""))
        raw = axis1[:].astype(np.int64)
    if not kind.startswith("datetime64"):
        raise InputError(f"{path}: /{key}/axis1 is not a DatetimeIndex (kind={kind!r})")
    unit = kind[len("datetime64[") : -1] if "[" in kind else "ns"
    if unit not in _NS_PER:
        raise InputError(f"{path}: unsupported timestamp unit {unit!r} in /{key}/axis1")
    if np.abs(raw).max(initial=0) > np.iinfo(np.int64).max // _NS_PER[unit]:
        raise InputError(f"{path}: /{key}/axis1 holds timestamps out of range")
    ts = raw * _NS_PER[unit]
    if step_seconds is not None and len(ts) > 1:
        check_regular(path, ts, step_seconds)
    return ts


MAX_GAP_FRACTION = 0.001
"""Share of steps that may be gaps of whole steps: real PeMS-Bay (DCRNN's file) lacks the hour
of the spring daylight-saving change (52,116 = 181 days x 288 - 12 steps)."""


def check_regular(path: Path, ts: np.ndarray, step_seconds: int) -> None:
    """Timestamps must increase by the dataset's step. A few gaps of whole steps (a lost hour)
    are accepted; anything else (a step back, a repeat, an off-grid or a changing step) is not."""
    step = step_seconds * 1_000_000_000
    steps = np.diff(ts)
    off = np.flatnonzero(steps != step)
    if not off.size:
        return
    gaps = (steps[off] > 0) & (steps[off] % step == 0)
    if gaps.all() and off.size <= max(1, MAX_GAP_FRACTION * len(ts)):
        return
    i = int(off[~gaps][0]) if not gaps.all() else int(off[0])
    raise InputError(
        f"{path}: timestamps must advance by {step_seconds} s; step {i} -> {i + 1} "
        f"({np.datetime64(int(ts[i]), 'ns')} -> {np.datetime64(int(ts[i + 1]), 'ns')}) is {steps[i] / 1e9:g} s "
        f"({off.size} irregular step(s) in all)"
    )


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
    if adj.dtype.kind not in _NUMERIC:
        raise InputError(f"{path}: adj_mx must be numeric, found dtype {adj.dtype}")
    if not np.isfinite(adj).all():
        raise InputError(f"{path}: adj_mx holds NaN or infinite weights")
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, (str, bytes)) for i in ids):
        raise InputError(f"{path}: sensor_ids must be a list of strings")
    if not isinstance(id_to_ind, dict) or not all(
            isinstance(k, (str, bytes)) and isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            for k, v in id_to_ind.items()):
        raise InputError(f"{path}: sensor_id_to_ind must map sensor id strings to integer indices")
    if sorted(int(v) for v in id_to_ind.values()) != list(range(len(id_to_ind))):
        raise InputError(f"{path}: sensor_id_to_ind must number its {len(id_to_ind)} sensors 0..{len(id_to_ind) - 1}")
    ids = [i.decode("latin1") if isinstance(i, bytes) else str(i) for i in ids]
    id_to_ind = {(k.decode("latin1") if isinstance(k, bytes) else str(k)): int(v) for k, v in id_to_ind.items()}
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
    timestamps = read_timestamps_ns(h5_path, key, spec.step_seconds)
    with open_h5(h5_path) as f:
        columns = _sensor_ids(f[key]["axis0"][:])
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
        if len(id_to_ind) != len(columns):
            raise InputError(f"{pkl_path}: sensor_id_to_ind names {len(id_to_ind)} sensors but {h5_path} has "
                             f"{len(columns)}")
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
