"""Sizes of each mode's data, computed before anything is loaded, to refuse what cannot fit.

For a series of T steps, N nodes, F features and windows of L steps (``n = T - 2L + 1``):

- base materialises every (input, target) pair: ``2 n L N F`` float32 values plus the float32
  series it is cut from, about 2L = 24 times the series;
- index keeps the float32 series (T N F values) plus a few 64 MiB chunks while building it;
- lazy-index keeps no series, only the chunks of the normalisation passes and one batch;
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

from pgti.data.features import CHUNK_BYTES
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
class Shape:
    dataset: str
    num_timesteps: int
    num_nodes: int
    num_features: int
    lags: int
    json: bool = False

    @property
    def num_windows(self) -> int:
        return self.num_timesteps - 2 * self.lags + 1

    @property
    def series_bytes(self) -> int:
        """The float32 (T, N, F) series that index mode keeps."""
        return self.num_timesteps * self.num_nodes * self.num_features * 4

    @property
    def windows_bytes(self) -> int:
        """Every (input, target) window pair, float32: what base mode keeps."""
        return 2 * self.num_windows * self.lags * self.num_nodes * self.num_features * 4

    @property
    def json_bytes(self) -> int:
        return 56 * self.num_timesteps * self.num_nodes if self.json else 0

    def train_bytes(self, batch_size: int) -> int:
        """About what a dcrnn-cell training step on a batch of ``batch_size`` adds at its peak."""
        return batch_size * self.num_nodes * TRAIN_BYTES_PER_SAMPLE_NODE

    def estimate(self, mode: str) -> int:
        """Peak bytes ``mode``'s data needs above the idle interpreter (in host memory: base-gpu
        and lazy-index-gpu hold what base and lazy-index hold, plus one batch on the GPU)."""
        mode = {"base-gpu": "base", "lazy-index-gpu": "lazy-index"}.get(mode, mode)
        chunks = 3 * min(CHUNK_BYTES, 8 * self.num_timesteps * self.num_nodes)
        if mode == "base":
            need = self.windows_bytes + self.series_bytes
        elif mode in ("index", "gpu-index"):
            need = self.series_bytes + chunks  # gpu-index: host side is the chunks only
            if mode == "gpu-index":
                need = chunks
        elif mode == "lazy-index":
            need = chunks
        elif mode == "peer":
            need = PEER_BYTES_PER_VALUE.get(self.dataset, 64) * self.num_timesteps * self.num_nodes
        else:
            raise ValueError(f"unknown mode {mode!r}")
        return need + self.json_bytes


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
