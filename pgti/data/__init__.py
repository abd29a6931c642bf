"""Windows, splits, normalisation, the storages (pgti.data.storages), the batching modes and the
batch plan."""

from pgti.data.loader import PreparedData, epoch_order, num_batches, prepare, read_dataset
from pgti.data.windows import DEFAULT_RATIOS, split_windows

__all__ = ["DEFAULT_RATIOS", "PreparedData", "epoch_order", "num_batches", "prepare", "read_dataset",
           "split_windows"]
