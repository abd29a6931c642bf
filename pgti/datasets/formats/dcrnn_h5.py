"""DCRNN's traffic format (METR-LA, PeMS-Bay, PeMS-All-LA, PeMS): two files.

- The series: a pandas HDFStore (fixed format) holding a DataFrame with a DatetimeIndex and one
  float64 column per sensor (``/<key>/block0_values`` is (T, N) row-major, ``axis0`` the sensor
  ids, ``axis1`` int64 timestamps in the unit named by its ``kind`` attribute). Read a slab of
  rows at a time (:class:`H5Rows`), so a large series is never loaded whole.
- The sensor graph: a pickle ``[sensor_ids, sensor_id_to_ind, adj_mx]`` written by Python 2
  (protocol 2, text and array data as Python 2 ``str``), read with a restricted unpickler.

Features: the value, time of day, and day of week on request (the series has timestamps).
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Callable, Iterable

import h5py
import numpy as np

from pgti.datasets.formats.base import Format, RawDataset, epoch_seconds, value_and_calendar
from pgti.datasets.registry import DatasetSpec
from pgti.datasets.safe_pickle import load_untrusted_pickle
from pgti.errors import InputError

H5_KEYS = ("df", "speed")
TIMESTAMP_UNITS = ("us", "ns")
_NS_PER = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


# --- reading ----------------------------------------------------------------------------------------


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


def read(spec: DatasetSpec, paths: tuple[Path, ...]) -> RawDataset:
    h5_path, pkl_path = paths
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


# --- writing ----------------------------------------------------------------------------------------


def _str_type(size: int, utf8: bool) -> h5py.h5t.TypeID:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(max(1, size))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_UTF8 if utf8 else h5py.h5t.CSET_ASCII)
    return tid


def _set_attr(obj, name: str, value, *, utf8: bool = True) -> None:
    """Set an attribute as PyTables writes it: bytes as NULLTERM fixed strings (empty ones with a
    null dataspace), bool-like flags as an 8-bit bitfield, numbers as numpy scalars."""
    if isinstance(value, bytes):
        tid = _str_type(len(value), utf8)
        if value:
            space = h5py.h5s.create(h5py.h5s.SCALAR)
            aid = h5py.h5a.create(obj.id, name.encode(), tid, space)
            aid.write(np.array(value, dtype=f"S{len(value)}"), mtype=tid)
        else:
            h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.NULL))
    elif name == "transposed":
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        aid = h5py.h5a.create(obj.id, name.encode(), h5py.h5t.NATIVE_B8, space)
        aid.write(np.array(int(value), dtype=np.uint8), mtype=h5py.h5t.NATIVE_B8)
    else:
        obj.attrs.create(name, value)


def _array_attrs(ds, extra: dict) -> None:
    for key, value in {
        "CLASS": b"ARRAY", "VERSION": b"2.4", "TITLE": b"", "FLAVOR": b"numpy", "transposed": 1,
    }.items():
        _set_attr(ds, key, value)
    for key, (value, utf8) in extra.items():
        _set_attr(ds, key, value, utf8=utf8)


def _string_dataset(group: h5py.Group, name: str, values: list[bytes]) -> h5py.Dataset:
    width = max(1, max((len(v) for v in values), default=1))
    tid = _str_type(width, utf8=False)
    space = h5py.h5s.create_simple((len(values),))
    dsid = h5py.h5d.create(group.id, name.encode(), tid, space)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(values, dtype=f"S{width}"), mtype=tid)
    return h5py.Dataset(dsid)


def _pandas_freq_pickle(step_seconds: int) -> bytes:
    """The index frequency as pandas stores it (a protocol-0 pickle of the offset)."""
    import pandas as pd

    return pickle.dumps(pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=step_seconds)), protocol=0)


class DCRNNH5Writer:
    """Writes a DCRNN series file, laid out as ``DataFrame.to_hdf(path, key="df", format="fixed")``
    writes it, a slab of rows at a time: ``/df/block0_values`` is a contiguous (T, N) float64
    array, ``axis0``/``block0_items`` the sensor ids, ``axis1`` int64 timestamps.

    ``timestamp_unit`` "us" writes axis1 kind 'datetime64[us]' (pandas >= 2); "ns" writes kind
    'datetime64' in nanoseconds, as the older pandas that wrote DCRNN's files did.
    """

    def __init__(
        self, path: str | Path, sensor_ids: list[str], *, num_timesteps: int, start: str,
        step_seconds: int, timestamp_unit: str = "us",
    ):
        if timestamp_unit not in TIMESTAMP_UNITS:
            raise InputError(f"timestamp unit must be one of {TIMESTAMP_UNITS}, got {timestamp_unit!r}")
        self.num_timesteps = num_timesteps
        self._file = f = h5py.File(path, "w")
        for attr, value in {"CLASS": b"GROUP", "PYTABLES_FORMAT_VERSION": b"2.1", "TITLE": b"", "VERSION": b"1.0"}.items():
            _set_attr(f, attr, value)
        g = f.create_group("df")
        for attr, value in {
            "CLASS": b"GROUP", "TITLE": b"", "VERSION": b"1.0", "pandas_type": b"frame",
            "encoding": b"UTF-8", "errors": b"strict", "ndim": np.int64(2), "nblocks": np.int64(1),
            "axis0_variety": b"regular", "axis1_variety": b"regular", "block0_items_variety": b"regular",
        }.items():
            _set_attr(g, attr, value)
        ids = [s.encode() for s in sensor_ids]
        string_attrs = {"kind": (b"string", True), "name": (b"N.", False), "nan_rep": (b"", True)}
        _array_attrs(_string_dataset(g, "axis0", ids), string_attrs)
        per_second = 1_000_000 if timestamp_unit == "us" else 1_000_000_000
        stamps = (epoch_seconds(start) + np.arange(num_timesteps, dtype=np.int64) * step_seconds) * per_second
        axis1 = g.create_dataset("axis1", data=stamps)
        _array_attrs(axis1, {
            "kind": (b"datetime64[us]" if timestamp_unit == "us" else b"datetime64", True),
            "name": (b"N.", False),
            "index_class": (b"datetime", True),
            "freq": (_pandas_freq_pickle(step_seconds), False),
        })
        _array_attrs(_string_dataset(g, "block0_items", ids), string_attrs)
        self._values = g.create_dataset("block0_values", shape=(num_timesteps, len(ids)), dtype=np.float64)
        _array_attrs(self._values, {})

    def write(self, t0: int, rows: np.ndarray) -> None:
        self._values[t0 : t0 + len(rows)] = rows

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except (OSError, RuntimeError):
            if exc_type is None:
                raise
            # Closing after a failed write (a full disk) fails too; the first error is the one to report.


def write_dcrnn_h5(
    path: str | Path, sensor_ids: list[str], series: np.ndarray | Iterable[tuple[int, np.ndarray]], *,
    num_timesteps: int | None = None, start: str, step_seconds: int, timestamp_unit: str = "us",
) -> None:
    """Write a DCRNN series file from a (T, N) array or from (t0, rows) chunks."""
    if isinstance(series, np.ndarray):
        num_timesteps = len(series)
        series = [(0, series)]
    with DCRNNH5Writer(
        path, sensor_ids, num_timesteps=num_timesteps, start=start, step_seconds=step_seconds,
        timestamp_unit=timestamp_unit,
    ) as writer:
        for t0, rows in series:
            writer.write(t0, rows)


class _Py2Str:
    """Raw bytes to pickle as a Python 2 ``str`` (opcode BINSTRING), straight from a buffer."""

    def __init__(self, data: memoryview):
        self.data = data


class _Py2StylePickler(pickle._Pickler):
    """Protocol 2, with ndarray data stored as a Python 2 str, as in DCRNN's own pickles.

    Python 3's protocol 2 stores bytes as ``_codecs.encode(text, "latin1")``, which needs the
    data several times over in memory (a 0.5 GB adjacency took 2.4 GB); this writes the array's
    buffer once, directly. Loads with ``pickle.load(f, encoding="latin1")`` as the real files do.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: _Py2Str) -> None:
        self.write(pickle.BINSTRING + len(obj.data).to_bytes(4, "little"))
        self.write(obj.data)

    dispatch[_Py2Str] = save_py2_str

    def reducer_override(self, obj):
        if type(obj) is np.ndarray and not obj.dtype.hasobject and obj.nbytes < 2**32:
            rebuild, args, _ = np.zeros(0, obj.dtype).__reduce__()
            data = np.ascontiguousarray(obj)
            state = (1, data.shape, data.dtype, False, _Py2Str(memoryview(data).cast("B")))
            return rebuild, args, state
        return NotImplemented


class _Py2TextPickler(_Py2StylePickler):
    """Also writes text and bytes as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as Python 2's
    cPickle did for the sensor ids: Python 3 reads them only with ``encoding='latin1'``."""

    dispatch = dict(_Py2StylePickler.dispatch)

    def save_py2_bytes(self, obj) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(data)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n))
        self.write(data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_bytes
    dispatch[str] = save_py2_bytes


def py2_pickle(obj, *, py2_text: bool = True) -> bytes:
    """``obj`` pickled as DCRNN's pickles are (see :func:`write_adjacency_pickle`)."""
    buf = io.BytesIO()
    (_Py2TextPickler if py2_text else _Py2StylePickler)(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_adjacency_pickle(path: str | Path, sensor_ids: list[str], adj: np.ndarray, *,
                           py2_text: bool = False) -> None:
    """``[sensor_ids, sensor_id_to_ind, adj_mx]`` with pickle protocol 2, array data as a
    Python 2 str, as DCRNN's files. ``py2_text`` writes the ids as Python 2 str too, as the real
    files do; the synthetic generator writes them as unicode (its files' bytes are fixed)."""
    id_to_ind = {s: i for i, s in enumerate(sensor_ids)}
    with open(path, "wb") as f:
        (_Py2TextPickler if py2_text else _Py2StylePickler)(f, protocol=2).dump([list(sensor_ids), id_to_ind, adj])


def write(paths: tuple[Path, Path], sensor_ids: list[str], series: np.ndarray | Iterable[tuple[int, np.ndarray]],
          adj: np.ndarray | Callable[[], np.ndarray], *, num_timesteps: int | None = None, start: str,
          step_seconds: int, timestamp_unit: str = "us", py2_text: bool = False) -> None:
    """Both files: the series (a (T, N) array, or (t0, rows) chunks and ``num_timesteps``),
    then the adjacency. ``adj`` may be a function that builds it: it is then called once the
    series is written, so a large dense N x N matrix and the series chunks are never in memory
    together."""
    h5_path, pkl_path = paths
    write_dcrnn_h5(h5_path, sensor_ids, series, num_timesteps=num_timesteps, start=start,
                   step_seconds=step_seconds, timestamp_unit=timestamp_unit)
    write_adjacency_pickle(pkl_path, sensor_ids, adj() if callable(adj) else adj, py2_text=py2_text)


FORMAT = Format(name="dcrnn-h5", read=read, write=write, features=value_and_calendar)
