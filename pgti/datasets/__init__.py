"""Dataset registry, readers for the real formats, synthetic data and downloads."""

from pgti.datasets.formats import RawDataset, load_raw
from pgti.datasets.registry import DATASETS, DatasetSpec, get_spec

__all__ = ["DATASETS", "DatasetSpec", "RawDataset", "get_spec", "load_raw"]
