"""A rank's batch plan (the plan that ``pgti.engine.trainer.fit`` runs): which window starts it
visits each epoch, per split, and the storage it gathers them from. A single-node run is rank 0
of a world of one: ``global`` sharding then gives the single-node order.

Two sharding policies (see samplers.py):

- ``global``: training follows ``DistributedSampler`` (one seeded shuffle of the split per epoch,
  padded, rank r takes every world-th window). Validation and test are sharded the same way
  but neither shuffled nor padded, so each window is evaluated exactly once and the all-reduced
  metrics equal single-process ones.
- ``batch-shuffle``: each rank owns a contiguous partition of every split. Training visits the
  partition's batches of consecutive windows in a seeded order, the same number of batches on
  every rank; validation and test run through the partition in order.

Evaluation batch counts may differ by one between ranks: evaluation has no collective per
batch (DDP is built with ``broadcast_buffers=False``), only the final all-reduce of the sums.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from pgti.data.windows import SPLITS, Split
from pgti.data.samplers import BatchShuffledSampler, batches_of, partition_bounds, rank_share

POLICIES = ("global", "batch-shuffle")


@dataclass
class Sharding:
    """Window starts (global) of rank ``rank``'s batches, per split and epoch."""

    policy: str
    split: Split
    world: int
    rank: int
    batch_size: int
    seed: int = 0
    max_batches: int | None = None
    full_evaluation: bool = False  # max_batches caps training only

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"unknown sharding policy {self.policy!r}")
        self._samplers = {}
        if self.policy == "batch-shuffle":
            bounds = partition_bounds(self.split.size("train"), self.world)
            self._samplers["train"] = BatchShuffledSampler(bounds, self.rank, self.batch_size, seed=self.seed,
                                                           max_batches=self.max_batches)

    def partition(self, split: str) -> tuple[int, int]:
        """[first, last + 1) positions of this rank's partition of ``split`` (batch-shuffle)."""
        bounds = partition_bounds(self.split.size(split), self.world)
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def positions(self, split: str, epoch: int) -> list[np.ndarray]:
        n = self.split.size(split)
        if split == "train" and self.policy == "batch-shuffle":
            return self._samplers["train"].batches(epoch)
        train = split == "train"
        cap = self.max_batches if train or not self.full_evaluation else None
        if self.policy == "batch-shuffle":
            lo, hi = self.partition(split)
            return batches_of(np.arange(lo, hi, dtype=np.int64), self.batch_size, cap)
        share = rank_share(n, self.world, self.rank, shuffle=train, seed=self.seed, epoch=epoch, pad=train)
        return batches_of(share, self.batch_size, cap)

    def starts(self, split: str, epoch: int) -> list[np.ndarray]:
        first = self.split.starts(split)[0] if self.split.size(split) else 0
        return [p + first for p in self.positions(split, epoch)]

    def num_batches(self, split: str) -> int:
        return len(self.positions(split, 0))


class Plan:
    """The batches of one rank (a single-node run is rank 0 of 1): for each batch of the
    sharding, ``storages[split].request(starts)``, asked one batch ahead, moved to ``device``.

    ``data_wait`` adds up the seconds the consumer waited for its batches (for a result still
    being read or fetched, and for the copy to ``device``); :meth:`take_data_wait` reads and
    resets it (per epoch: ``data_wait_s`` in per_epoch_stats.csv)."""

    def __init__(self, sharding: Sharding, storages: dict, device: torch.device):
        missing = [s for s in SPLITS if s not in storages]
        if missing:
            raise ValueError(f"no storage for split(s) {missing}")
        self.sharding = sharding
        self.storages = storages
        self.device = torch.device(device)
        self.data_wait = 0.0
        self._counts = {s: sharding.num_batches(s) for s in SPLITS}

    def num_batches(self, split: str) -> int:
        return self._counts[split]

    def take_data_wait(self) -> float:
        wait, self.data_wait = self.data_wait, 0.0
        return wait

    def batches(self, split: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iterate(self.storages[split], self.sharding.starts(split, epoch), self.device, self)

    def close(self) -> None:
        for storage in {id(s): s for s in self.storages.values()}.values():
            close = getattr(storage, "close", None)
            if callable(close):
                close()


def iterate(storage, starts: list[np.ndarray], device: torch.device, clock=None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The one batch iterator: ``storage.request`` each batch one ahead of the one handed out,
    moved to ``device``. The time spent asking (a storage in memory gathers on the spot), waiting
    for a result and copying is added to ``clock.data_wait`` when a clock is given."""
    t0 = time.perf_counter()
    pending = storage.request(starts[0]) if starts else None
    for i in range(len(starts)):
        upcoming = storage.request(starts[i + 1]) if i + 1 < len(starts) else None
        x, y = pending.result()
        if x.device != device:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if clock is not None:
            clock.data_wait += time.perf_counter() - t0
        yield x, y
        t0 = time.perf_counter()
        pending = upcoming
