"""Open a dataset, split it, build its features and its batch storage: :func:`prepare`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from pgti.data.features import FeatureBuilder, feature_builder
from pgti.data.storage import MODES, BaseStorage, IndexStorage, LazyIndexStorage
from pgti.data.windows import DEFAULT_RATIOS, Split, num_windows, split_windows
from pgti.datasets.formats import RawDataset, load_raw
from pgti.errors import InputError


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


@dataclass
class PreparedData:
    raw: RawDataset
    mode: str
    lags: int
    split: Split
    features: FeatureBuilder
    storage: BaseStorage | IndexStorage | LazyIndexStorage
    device: torch.device  # where batches are used (the model's device)

    @property
    def spec(self):
        return self.raw.spec

    @property
    def num_nodes(self) -> int:
        return self.raw.num_nodes

    @property
    def num_features(self) -> int:
        return self.features.num_features

    @property
    def edge_index(self) -> torch.Tensor:
        return torch.from_numpy(self.raw.edge_index)

    @property
    def edge_weight(self) -> torch.Tensor:
        return torch.from_numpy(self.raw.edge_weight)

    def check_batch_size(self, batch_size: int, flag: str = "--batch-size") -> None:
        if batch_size < 1:
            raise InputError(f"{flag} must be positive, got {batch_size}")
        for name in ("train", "val", "test"):
            if batch_size > self.split.size(name):
                raise InputError(
                    f"{flag} {batch_size} is larger than the {name} split of {self.spec.name} "
                    f"({self.split.size(name)} windows)"
                )

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        max_batches: int | None = None,
        starts: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (X, Y) batches of a split (or of the given window ``starts``) in epoch order.

        The order is built once per epoch and moved to the storage's device once, so
        GPU-index batches need no host-to-device copy; base and lazy batches are moved to
        ``self.device`` one by one, as the standard workflow does.
        """
        if starts is None:
            starts = torch.from_numpy(self.split.starts(split))
        order = starts[epoch_order(len(starts), shuffle=shuffle, seed=seed, epoch=epoch)]
        order = order.to(self.storage.device)
        for i in range(num_batches(len(order), batch_size, max_batches)):
            x, y = self.storage.gather(order[i * batch_size : (i + 1) * batch_size])
            if x.device != self.device:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield x, y

    # --- units -----------------------------------------------------------------------------

    def target_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std (float32, scalar or (N,)) to turn channel 0 back into original units."""
        norm = self.features.normaliser
        return (
            torch.as_tensor(norm.mean, dtype=torch.float32, device=self.device),
            torch.as_tensor(norm.std, dtype=torch.float32, device=self.device),
        )

    def missing_normalised(self) -> torch.Tensor | None:
        """Channel-0 value (scalar or (N,)) that marks a missing reading, bit-exact, or None."""
        if self.spec.missing_value is None:
            return None
        value = self.features.normaliser.normalised_value(self.spec.missing_value)
        return torch.as_tensor(value, dtype=torch.float32, device=self.device)

    def close(self) -> None:
        self.raw.close()


def check_device(gpu: bool, flag: str = "--gpu") -> torch.device:
    if not gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"{flag} was given but no usable CUDA GPU is visible to torch")
    return torch.device("cuda", torch.cuda.current_device())


def prepare(
    dataset: str,
    data_dir: str | Path = "data",
    mode: str = "index",
    *,
    gpu: bool = False,
    ratios=DEFAULT_RATIOS,
    day_of_week: bool = False,
    raw: RawDataset | None = None,
) -> PreparedData:
    """Read ``dataset`` and build its storage for ``mode`` (base | index | lazy-index).

    ``gpu`` puts the model's batches on the GPU: index mode then keeps the series on the GPU
    (GPU-index-batching); base and lazy-index copy each batch over.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r} for --mode; choose one of {', '.join(MODES)}")
    device = check_device(gpu)
    raw = raw if raw is not None else load_raw(dataset, data_dir)
    lags = raw.spec.lags
    n = num_windows(raw.num_timesteps, lags, raw.rows.source)
    split = split_windows(n, ratios, raw.rows.source)
    features = feature_builder(raw, split, lags, day_of_week)
    if mode == "base":
        storage = BaseStorage(raw.rows, features, lags, n)
    elif mode == "index":
        storage = IndexStorage(raw.rows, features, lags, device)
    else:
        storage = LazyIndexStorage(raw.rows, features, lags)
    return PreparedData(raw, mode, lags, split, features, storage, device)
