"""Which windows each rank visits: the two sharding policies (a single-node run is one rank).

Indices here are positions within one split (0 .. n-1); plans add the split's first start.

- :func:`rank_share` has torch's ``DistributedSampler`` semantics: one seeded permutation of the
  whole split per epoch (the same on every rank), padded by repeating its head to a multiple of
  the world size, and rank ``r`` takes positions ``r, r + world, ...``. Every rank gets the same
  number of windows, so every rank runs the same number of batches. The permutation is
  :func:`epoch_order`, so with one rank the share is the single-node order.
- :class:`BatchShuffledSampler` (generalised distributed index-batching): each rank owns a
  contiguous partition of the split, cut into batches of consecutive windows; each epoch the
  order of those batches is shuffled (seeded by seed, epoch and rank). Partitions may differ in
  size, but every rank runs the same number of batches: ranks with fewer batches repeat some of
  theirs, as ``DistributedSampler`` pads, so uneven partitions cannot leave a rank waiting in a
  gradient all-reduce that its peers never join.
"""

from __future__ import annotations

import numpy as np
import torch


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> torch.Tensor:
    """The order of a split's windows in one epoch: a seeded permutation, or 0..n-1."""
    if not shuffle:
        return torch.arange(n)
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)
    generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    return torch.randperm(n, generator=generator)


def num_batches(num_samples: int, batch_size: int, max_batches: int | None = None) -> int:
    n = -(-num_samples // batch_size)
    return n if max_batches is None else min(n, max_batches)


def rank_share(n: int, world: int, rank: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
               pad: bool = True) -> np.ndarray:
    """Positions of rank ``rank``'s windows, in the order it visits them.

    ``pad=False`` leaves the share unpadded (evaluation: every window counted exactly once; the
    shares then differ in length by at most one).
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    order = epoch_order(n, shuffle=shuffle, seed=seed, epoch=epoch).numpy()
    if pad:
        total = -(-n // world) * world
        if total > n:
            order = np.concatenate([order, np.resize(order, total - n)])  # repeat the head
    return order[rank::world]


def batches_of(positions: np.ndarray, batch_size: int, max_batches: int | None = None) -> list[np.ndarray]:
    """Consecutive batches of ``positions`` (the last one may be short), at most ``max_batches``."""
    count = num_batches(len(positions), batch_size, max_batches)
    return [positions[i * batch_size : (i + 1) * batch_size] for i in range(count)]


def partition_bounds(n: int, world: int) -> np.ndarray:
    """Boundaries (world + 1 of them) of ``world`` contiguous partitions of 0 .. n-1, sizes
    differing by at most one (the first ``n % world`` partitions hold one more)."""
    sizes = np.full(world, n // world, dtype=np.int64)
    sizes[: n % world] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def common_num_batches(bounds: np.ndarray, batch_size: int, max_batches: int | None = None) -> int:
    """Batches every rank runs per epoch: enough for the largest partition (capped)."""
    largest = int(np.max(np.diff(bounds)))
    return num_batches(largest, batch_size, max_batches)


class BatchShuffledSampler:
    """Rank ``rank``'s training batches over its own partition ``bounds[rank] .. bounds[rank + 1]``.

    ``batches(epoch)`` gives ``num_batches`` arrays of positions: the partition's consecutive
    batches in a seeded random order, cycled if this partition has fewer than its peers.
    """

    def __init__(self, bounds: np.ndarray, rank: int, batch_size: int, *, seed: int = 0,
                 max_batches: int | None = None):
        self.lo, self.hi = int(bounds[rank]), int(bounds[rank + 1])
        if self.hi <= self.lo:
            raise ValueError(f"rank {rank} owns an empty partition {self.lo}..{self.hi}")
        self.rank = rank
        self.batch_size = batch_size
        self.seed = seed
        self.num_batches = common_num_batches(bounds, batch_size, max_batches)
        self._own = batches_of(np.arange(self.lo, self.hi, dtype=np.int64), batch_size)

    def batches(self, epoch: int) -> list[np.ndarray]:
        state = np.random.SeedSequence([self.seed, epoch, self.rank])
        order = np.random.default_rng(state).permutation(len(self._own))
        order = np.resize(order, self.num_batches)  # cycle when short, cut when capped
        return [self._own[i] for i in order]
