"""What every format module shares: the :class:`RawDataset` a reader returns, the row readers,
the :class:`Format` record a module publishes as ``FORMAT``, and the two feature recipes (value
only; value with the calendar channels of the timestamps)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from pgti.datasets.registry import DatasetSpec
from pgti.errors import InputError

DAY_NS = 86_400 * 10**9


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


def in_memory(spec: DatasetSpec, path: Path, values: np.ndarray, edge_index: np.ndarray, edge_weight: np.ndarray,
              node_ids: list[str] | None = None, timestamps_ns: np.ndarray | None = None) -> RawDataset:
    """A one-file dataset parsed whole: ids default to "0".."N-1", edges become int64/float32."""
    ids = node_ids if node_ids is not None else [str(i) for i in range(values.shape[1])]
    return RawDataset(spec, (path,), ids, edge_index.astype(np.int64), edge_weight.astype(np.float32),
                      timestamps_ns, ArrayRows(values, str(path)))


# --- time -------------------------------------------------------------------------------------------


def epoch_seconds(start: str) -> int:
    """Seconds since the epoch of ``start`` (a date or datetime string, read as UTC)."""
    return int(np.datetime64(start, "s").astype(np.int64))


def step_timestamps_ns(start: str, num_timesteps: int, step_seconds: int) -> np.ndarray:
    """int64 nanoseconds of ``start`` (a date, read as local midnight) plus t steps."""
    first = np.datetime64(start, "ns").astype(np.int64)
    return first + np.arange(num_timesteps, dtype=np.int64) * (step_seconds * 10**9)


def calendar_features(timestamps_ns: np.ndarray, day_of_week: bool):
    """Time of day as a fraction of the day, and optionally day of week / 7 (Monday = 0)."""
    tod = ((timestamps_ns % DAY_NS) / DAY_NS).astype(np.float32)
    dow = None
    if day_of_week:
        # 1970-01-01 was a Thursday (Monday = 0 makes it 3).
        dow = (((timestamps_ns // DAY_NS) + 3) % 7 / 7.0).astype(np.float32)
    return tod, dow


# --- feature recipes --------------------------------------------------------------------------------
# A recipe names the channels a format yields after channel 0 (the normalised value, which every
# format has): ``recipe(raw, day_of_week) -> {channel name: (T,) float32}``, in channel order.
# pgti.data.features turns the result into a FeatureBuilder.

Channels = dict[str, np.ndarray]


def value_only(raw: RawDataset, day_of_week: bool) -> Channels:
    """Files without timestamps: the value is the only channel."""
    if day_of_week:
        raise InputError(f"a day-of-week channel needs timestamps; {raw.spec.name} ({raw.spec.format} files) "
                         f"has none", field="data.day_of_week")
    return {}


def value_and_calendar(raw: RawDataset, day_of_week: bool) -> Channels:
    """Timestamped series: time of day, and day of week when asked for."""
    tod, dow = calendar_features(raw.timestamps_ns, day_of_week)
    return {"time_of_day": tod} if dow is None else {"time_of_day": tod, "day_of_week": dow}


# --- the record a format module publishes -----------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """One file format. A module of :mod:`pgti.datasets.formats` that defines ``FORMAT =
    Format(...)`` is found by :func:`pgti.datasets.formats.get_format`; registry entries name
    it by ``name``.

    - ``read(spec, paths)``: the dataset's files (in the order of its registry layout) to a
      :class:`RawDataset`; every problem with a file is an InputError naming the file.
    - ``write``: the one writer of the layout (its arguments depend on the format), used by
      the synthetic generator and the test fixtures.
    - ``features``: the recipe for the channels after the value (:func:`value_only`,
      :func:`value_and_calendar` or the format's own).
    """

    name: str
    read: Callable[[DatasetSpec, tuple[Path, ...]], RawDataset]
    write: Callable[..., None]
    features: Callable[[RawDataset, bool], Channels]
