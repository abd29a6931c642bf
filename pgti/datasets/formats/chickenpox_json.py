"""Chickenpox JSON (Rozemberczki et al. 2021): ``{"edges": E x 2, "node_ids": {name: idx},
"FX": T x N}``, weekly counts already standardised per county. No timestamps: the value is the
only feature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pgti.datasets import json_fields
from pgti.datasets.formats.base import Format, RawDataset, in_memory, value_only
from pgti.datasets.registry import DatasetSpec
from pgti.errors import InputError


def read(spec: DatasetSpec, paths: tuple[Path, ...]) -> RawDataset:
    (path,) = paths
    obj = json_fields.load_object(path, ("edges", "node_ids", "FX"))
    values = json_fields.series(path, "'FX'", obj["FX"])
    num_nodes = values.shape[1]
    ids = obj["node_ids"]
    if not isinstance(ids, dict) or not all(type(v) is int for v in ids.values()):
        raise InputError(f"{path}: 'node_ids' must be an object mapping each name to an integer index")
    if sorted(ids.values()) != list(range(num_nodes)):
        raise InputError(
            f"{path}: 'node_ids' must number the {num_nodes} columns of 'FX' 0..{num_nodes - 1}; "
            f"found {len(ids)} names with indices {sorted(set(ids.values()))[:5]}..."
        )
    node_ids = [name for name, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    edge_index = json_fields.edge_pairs(path, "'edges'", obj["edges"], num_nodes)
    weights = np.ones(edge_index.shape[1], dtype=np.float32)
    return in_memory(spec, path, values, edge_index, weights, node_ids)


def write(path: str | Path, edges: np.ndarray, node_names: list[str], fx: np.ndarray) -> None:
    """``edges`` (E, 2) pairs, ``node_names[i]`` the name of column i of the (T, N) ``fx``."""
    obj = {
        "edges": np.asarray(edges).tolist(),
        "node_ids": {name: i for i, name in enumerate(node_names)},
        "FX": np.asarray(fx).tolist(),
    }
    with open(path, "w") as f:
        json.dump(obj, f)


FORMAT = Format(name="chickenpox-json", read=read, write=write, features=value_only)
