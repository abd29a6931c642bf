"""Windows, splits, normalisation and the batch storages (base, index, GPU-index, lazy-index)."""

from pgti.data.loader import PreparedData, epoch_order, num_batches, prepare
from pgti.data.storage import MODES
from pgti.data.windows import DEFAULT_RATIOS, split_windows

__all__ = ["MODES", "DEFAULT_RATIOS", "PreparedData", "epoch_order", "num_batches", "prepare", "split_windows"]
