"""Open a dataset, split it, build its features and its batch storage: :func:`prepare`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from pgti.data.features import FeatureBuilder, feature_builder
from pgti.data.modes import MODE_NAMES
from pgti.data.plan import iterate
from pgti.data.samplers import batches_of, epoch_order, num_batches, rank_share
from pgti.data.storages import BuildContext, Shape, build_storages
from pgti.data.windows import DEFAULT_RATIOS, Split, num_windows, split_windows
from pgti.datasets.formats import RawDataset, load_raw
from pgti.errors import InputError

__all__ = ["PreparedData", "check_device", "epoch_order", "num_batches", "prepare", "read_dataset"]


@dataclass
class PreparedData:
    raw: RawDataset
    mode: str
    lags: int
    split: Split
    features: FeatureBuilder
    storage: object | None  # a pgti.data.storages storage; None where each rank builds its own
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

    @property
    def shape(self) -> Shape:
        """What the storages' predicted sizes depend on."""
        return Shape(self.spec.name, self.raw.num_timesteps, self.num_nodes, self.num_features, self.lags,
                     json=not self.spec.is_traffic)

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size < 1:
            raise InputError(f"must be positive, got {batch_size}", field="batching.batch_size")
        for name in ("train", "val", "test"):
            if batch_size > self.split.size(name):
                raise InputError(
                    f"{batch_size} is larger than the {name} split of {self.spec.name} "
                    f"({self.split.size(name)} windows)", field="batching.batch_size")

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        max_batches: int | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(X, Y) batches of a split in epoch order (a seeded shuffle with ``shuffle``), through
        the one batch iterator (:func:`pgti.data.plan.iterate`). Training goes through a
        :class:`~pgti.data.plan.Plan`; this is for looking at the data."""
        positions = rank_share(self.split.size(split), 1, 0, shuffle=shuffle, seed=seed, epoch=epoch, pad=False)
        first = int(getattr(self.split, split)[0])
        return iterate(self.storage, [p + first for p in batches_of(positions, batch_size, max_batches)], self.device)

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
        close = getattr(self.storage, "close", None)
        if callable(close):
            close()
        self.raw.close()


def check_device(gpu: bool) -> torch.device:
    if not gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("was given but no usable CUDA GPU is visible to torch", field="batching.gpu")
    return torch.device("cuda", torch.cuda.current_device())


def read_dataset(
    dataset: str,
    data_dir: str | Path = "data",
    *,
    gpu: bool = False,
    ratios=DEFAULT_RATIOS,
    day_of_week: bool = False,
    raw: RawDataset | None = None,
) -> PreparedData:
    """Read ``dataset``, split it and fit its features (the normalisation statistics), without
    building a storage: what every rank and every storage starts from."""
    device = check_device(gpu)
    raw = raw if raw is not None else load_raw(dataset, data_dir)
    lags = raw.spec.lags
    n = num_windows(raw.num_timesteps, lags, raw.rows.source)
    split = split_windows(n, ratios, raw.rows.source)
    features = feature_builder(raw, split, lags, day_of_week)
    return PreparedData(raw, "", lags, split, features, None, device)


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
    """Read ``dataset`` and build the single-node storage ``mode`` (a name of
    ``MODE_NAMES["single"]``: base | index | lazy-index) for rank 0 of a world of one.

    ``gpu`` puts the model's batches on the GPU: index mode then keeps the series on the GPU
    (GPU-index-batching); base and lazy-index copy each batch over.
    """
    if mode not in MODE_NAMES["single"]:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODE_NAMES['single'])}",
                         field="batching.mode")
    data = read_dataset(dataset, data_dir, gpu=gpu, ratios=ratios, day_of_week=day_of_week, raw=raw)
    storage = MODE_NAMES["single"][mode].storage
    data.mode = storage
    data.storage = build_storages(storage, BuildContext(data, data.device))["train"]
    return data
