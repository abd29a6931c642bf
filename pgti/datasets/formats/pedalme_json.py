"""Pedal Me London JSON (PyTorch Geometric Temporal's ``dataset/pedalme_london.json``, read as
PGT 0.56's ``PedalMeDatasetLoader`` reads it): ``{"edges": E x [i, j], "weights": E, "X": T x N}``.
No timestamps: the value is the only feature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pgti.datasets import json_fields
from pgti.datasets.formats.base import Format, RawDataset, in_memory, value_only
from pgti.datasets.registry import DatasetSpec


def read(spec: DatasetSpec, paths: tuple[Path, ...]) -> RawDataset:
    (path,) = paths
    obj = json_fields.load_object(path, ("edges", "weights", "X"))
    values = json_fields.series(path, "'X'", obj["X"])
    edge_index = json_fields.edge_pairs(path, "'edges'", obj["edges"], values.shape[1])
    weights = json_fields.weights(path, "'weights'", obj["weights"], edge_index.shape[1], "'edges'")
    return in_memory(spec, path, values, edge_index, weights)


def write(path: str | Path, edges: np.ndarray, weights: np.ndarray, x: np.ndarray) -> None:
    """``{"edges": E x [i, j], "weights": E, "X": T x N}``."""
    obj = {"edges": np.asarray(edges, dtype=np.int64).tolist(),
           "weights": np.asarray(weights, dtype=np.float64).tolist(),
           "X": np.asarray(x, dtype=np.float64).tolist()}
    with open(path, "w") as f:
        json.dump(obj, f)


FORMAT = Format(name="pedalme-json", read=read, write=write, features=value_only)
