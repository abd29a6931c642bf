"""Sizes of each benchmark mode's data, computed before anything is loaded, to refuse what
cannot fit. Our storages' sizes are their own predictions (each storage module of
:mod:`pgti.data.storages` declares its host and device bytes: base about 2L = 24 times the
series, index the series plus a few chunks, lazy-index the chunks only); this module adds:

- the peer (PyTorch Geometric Temporal 0.56.2's ``get_index_dataset``, CPU path) holds, at its
  peak, the copies its loader makes (see :mod:`pgti.bench.peer`): 64 T N bytes for the
  pandas/HDF5 loaders (PeMS, PeMS-All-LA: float64 series, time of day, their concatenation,
  and two float64 temporaries of the normalisation), 24 T N bytes for the npy loaders
  (METR-LA, PeMS-Bay: float64 file and its float32 copy), 32 T N for windmill and 8 T N for
  chickenpox.

JSON datasets are parsed whole by every mode; ``json_bytes`` counts the parsed Python lists
(about 56 bytes a value: a float object and its list slot, and the text).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgti.data import storages
from pgti.data.modes import MODE_NAMES
from pgti.datasets.registry import DatasetSpec

GIB = 1 << 30
MIB = 1 << 20

# dcrnn-cell's training-step peak per (sample x node), measured at L = 12, F = 2 (N = 325: 110 MiB,
# N = 2,716: 893 MiB at B = 64), with some headroom.
TRAIN_BYTES_PER_SAMPLE_NODE = 6_000

# The peer's CPU preprocessing peak, in bytes per (time step x node), per dataset.
PEER_BYTES_PER_VALUE = {
    "chickenpox": 8,
    "windmill-large": 32,
    "metr-la": 24,
    "pems-bay": 24,
    "pems-all-la": 64,
    "pems": 64,
}


@dataclass(frozen=True)
class Shape(storages.Shape):
    """A storage shape with what the benchmarks add: a training step's bytes and the peer."""

    def train_bytes(self, batch_size: int) -> int:
        """About what a dcrnn-cell training step on a batch of ``batch_size`` adds at its peak."""
        return batch_size * self.num_nodes * TRAIN_BYTES_PER_SAMPLE_NODE

    def estimate(self, mode: str) -> int:
        """Peak host bytes ``mode``'s data needs above the idle interpreter: the storage
        registry's prediction for the benchmark mode (pgti.data.modes.MODE_NAMES["bench"]), or
        the peer's loader."""
        if mode == "peer":
            return PEER_BYTES_PER_VALUE.get(self.dataset, 64) * self.num_timesteps * self.num_nodes + self.json_bytes
        if mode not in MODE_NAMES["bench"]:
            raise ValueError(f"unknown mode {mode!r}")
        m = MODE_NAMES["bench"][mode]
        host, _ = storages.get_storage(m.storage).predict(self, gpu=m.device == "cuda")
        return host


def shape_of(spec: DatasetSpec, nodes: int | None = None, timesteps: int | None = None) -> Shape:
    """The shape of ``spec`` at its real size or the given one. Traffic series carry time of day
    as a second feature (F = 2); the JSON sets have no timestamps (F = 1)."""
    return Shape(
        dataset=spec.name,
        num_timesteps=spec.num_timesteps if timesteps is None else timesteps,
        num_nodes=spec.num_nodes if nodes is None else nodes,
        num_features=2 if spec.is_traffic else 1,
        lags=spec.lags,
        json=not spec.is_traffic,
    )


def fits(need: int, available: int, reserve: int) -> bool:
    """Whether ``need`` bytes fit in ``available`` while leaving ``reserve`` for everything else."""
    return need + reserve <= available


def gib(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else n_bytes / GIB


def human(n_bytes: float) -> str:
    """``1.23 GiB`` from 0.1 GiB up, else ``12.3 MiB``."""
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= 0.1 * GIB else f"{n_bytes / MIB:.1f} MiB"
