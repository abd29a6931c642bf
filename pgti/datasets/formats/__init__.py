"""File formats, one module each. A module that defines ``FORMAT = Format(name=..., read=...,
write=..., features=...)`` is found here by name; a registry entry
(:mod:`pgti.datasets.registry`) names its format, so adding a dataset in a known format is one
registry entry, and adding a format is one module.

- ``dcrnn_h5``: METR-LA, PeMS-Bay, PeMS-All-LA, PeMS (pandas HDF5 series + Python 2 pickle).
- ``chickenpox_json``, ``windmill_json``: Rozemberczki et al.'s chickenpox; WindmillOutputLarge.
- ``montevideo_bus_json``, ``pedalme_json``, ``england_covid_json``: PyTorch Geometric
  Temporal's ``dataset/`` folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from pgti.datasets.formats.base import (
    DAY_NS,
    ArrayRows,
    Format,
    RawDataset,
    RowReader,
    calendar_features,
    step_timestamps_ns,
)
from pgti.datasets.formats.dcrnn_h5 import (
    H5_KEYS,
    MAX_GAP_FRACTION,
    H5Rows,
    check_regular,
    dense_to_edges,
    find_h5_key,
    open_h5,
    read_adjacency,
    read_timestamps_ns,
)
from pgti.datasets.registry import DatasetSpec, get_spec, resolve_files
from pgti.errors import InputError

__all__ = [
    "DAY_NS", "H5_KEYS", "MAX_GAP_FRACTION", "ArrayRows", "Format", "H5Rows", "RawDataset", "RowReader",
    "calendar_features", "check_regular", "dense_to_edges", "find_h5_key", "format_of", "formats", "get_format",
    "load_raw", "open_h5", "read_adjacency", "read_timestamps_ns", "step_timestamps_ns",
]


@cache
def formats() -> dict[str, Format]:
    """Every format, by name: the ``FORMAT`` of each module of this package."""
    found: dict[str, Format] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if fmt is None:
            continue
        if fmt.name in found:
            raise RuntimeError(f"two modules of {__name__} define the format {fmt.name!r}")
        found[fmt.name] = fmt
    return found


def get_format(name: str) -> Format:
    try:
        return formats()[name]
    except KeyError:
        raise InputError(f"unknown file format {name!r}; known formats: {', '.join(sorted(formats()))}") from None


def format_of(spec: DatasetSpec) -> Format:
    return get_format(spec.format)


def load_raw(name: str, data_dir: str | Path = "data") -> RawDataset:
    """Open dataset ``name`` from ``data_dir`` in its real format."""
    spec = get_spec(name)
    return format_of(spec).read(spec, resolve_files(spec, data_dir))
