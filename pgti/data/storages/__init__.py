"""The storages: where a run's series (or its windows) lives, and how a batch is made from it.

Every storage is one module of this package that registers a :class:`StorageKind`: its name,
how it is built for a rank (a single-node run is rank 0 of a world of one), and the host and
device bytes it is predicted to hold for a given :class:`Shape`. The drivers, ``--mode auto``,
the benchmarks and the size checks all read :data:`STORAGES`; adding a storage is adding a
module here.

The one batch protocol: ``storage.request(starts) -> pending`` and ``pending.result() -> (X, Y)``,
each (B, L, N, F) float32, for the windows starting at ``starts`` (X = rows [s, s + L),
Y = rows [s + L, s + 2L)). A plan asks for batch i + 1 before it hands out batch i, so a storage
whose ``request`` works in the background (lazy-index's reader thread, the cluster's fetches)
prepares the next batch while the model trains on this one. Storages held in memory answer at
once (:class:`GatherStorage`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from pgti.data.features import CHUNK_BYTES


@dataclass(frozen=True)
class Shape:
    """What a storage's size depends on: T steps, N nodes, F features, windows of L steps."""

    dataset: str
    num_timesteps: int
    num_nodes: int
    num_features: int
    lags: int
    json: bool = False  # parsed whole into Python lists by every storage

    @property
    def num_windows(self) -> int:
        return self.num_timesteps - 2 * self.lags + 1

    @property
    def series_bytes(self) -> int:
        """The float32 (T, N, F) feature series."""
        return self.num_timesteps * self.num_nodes * self.num_features * 4

    @property
    def windows_bytes(self) -> int:
        """Every (input, target) window pair, float32: about 2L times the series."""
        return 2 * self.num_windows * self.lags * self.num_nodes * self.num_features * 4

    @property
    def chunk_bytes(self) -> int:
        """The few chunks of rows that building features or normalising holds at a time."""
        return 3 * min(CHUNK_BYTES, 8 * self.num_timesteps * self.num_nodes)

    @property
    def json_bytes(self) -> int:
        return 56 * self.num_timesteps * self.num_nodes if self.json else 0


@dataclass
class BuildContext:
    """What building a rank's storage needs. ``data`` is the run's prepared data without a
    storage (its features, split and row reader); a single-node run is rank 0 of a world of one."""

    data: Any  # pgti.data.loader.PreparedData
    device: torch.device
    world: int = 1
    rank: int = 0
    client: Any = None  # the Dask client, for storages held in the cluster
    datasets: dict | None = None  # what ``publish`` named, for those


@dataclass(frozen=True)
class StorageKind:
    """One storage, as the registry knows it.

    ``build(ctx)`` returns the storage for every split, or a dict ``{split: storage}``.
    ``host_bytes(shape, gpu)`` / ``device_bytes(shape, gpu)``: predicted peak bytes of the data
    per process, in host memory and on the GPU (``gpu``: the batches go to the GPU).
    ``publish(client, data, slots, job_id)``: for storages held in a Dask cluster, put the data
    there (client side) and return the names the ranks find it under.
    ``speed``: rank for ``--mode auto`` (lower is faster); None: never picked automatically.
    """

    name: str
    summary: str
    build: Callable[[BuildContext], Any]
    host_bytes: Callable[[Shape, bool], int]
    device_bytes: Callable[[Shape, bool], int] = lambda shape, gpu: 0
    publish: Callable[..., dict] | None = None
    speed: int | None = None
    single_node: bool = True  # can serve a single-node run (needs no cluster)

    def predict(self, shape: Shape, gpu: bool = False) -> tuple[int, int]:
        """(host bytes, device bytes), the parsed JSON included."""
        return self.host_bytes(shape, gpu) + shape.json_bytes, self.device_bytes(shape, gpu)


STORAGES: dict[str, StorageKind] = {}


def register(kind: StorageKind) -> StorageKind:
    if kind.name in STORAGES:
        raise ValueError(f"storage {kind.name!r} is registered twice")
    STORAGES[kind.name] = kind
    return kind


def get_storage(name: str) -> StorageKind:
    from pgti.errors import InputError

    try:
        return STORAGES[name]
    except KeyError:
        raise InputError(f"unknown storage {name!r}; known: {', '.join(STORAGES)}",
                         field="batching.mode") from None


def build_storages(name: str, ctx: BuildContext) -> dict:
    """``{split: storage}`` of storage ``name`` for this rank."""
    from pgti.data.windows import SPLITS

    built = get_storage(name).build(ctx)
    return built if isinstance(built, dict) else dict.fromkeys(SPLITS, built)


# --- pending batches ---------------------------------------------------------------------------


class Ready:
    """A batch already made."""

    def __init__(self, batch):
        self.batch = batch

    def result(self):
        return self.batch


class GatherStorage:
    """A storage in this process's memory: ``request`` gathers the batch on the spot."""

    device = torch.device("cpu")

    def gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def request(self, starts) -> Ready:
        return Ready(self.gather(torch.as_tensor(np.asarray(starts) if not torch.is_tensor(starts) else starts)))

    @property
    def nbytes(self) -> int:
        return 0


def _discover() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")


_discover()
