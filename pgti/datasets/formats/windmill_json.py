"""Windmill JSON (PyTorch Geometric Temporal's WindmillOutputLarge): ``{"block": T x N,
"edges": E x 2, "weights": E}``, hourly power output. No timestamps: the value is the only
feature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from pgti.datasets import json_fields
from pgti.datasets.formats.base import Format, RawDataset, in_memory, value_only
from pgti.datasets.registry import DatasetSpec


def read(spec: DatasetSpec, paths: tuple[Path, ...]) -> RawDataset:
    (path,) = paths
    obj = json_fields.load_object(path, ("block", "edges", "weights"))
    values = json_fields.series(path, "'block'", obj["block"])
    num_nodes = values.shape[1]
    edge_index = json_fields.edge_pairs(path, "'edges'", obj["edges"], num_nodes)
    weights = json_fields.weights(path, "'weights'", obj["weights"], edge_index.shape[1], "'edges'")
    return in_memory(spec, path, values, edge_index, weights)


def write(path: str | Path, series: Iterable[tuple[int, np.ndarray]], edges: np.ndarray, weights: np.ndarray) -> None:
    """``series`` as (t0, rows) chunks in order, streamed to the file chunk by chunk;
    ``edges`` (E, 2) pairs, ``weights`` (E,)."""
    with open(path, "w") as f:
        f.write('{"block": [')
        sep = ""
        for _, block in series:
            for row in np.asarray(block).tolist():
                f.write(sep + json.dumps(row))
                sep = ", "
        f.write("]")
        f.write(', "edges": ' + json.dumps(np.asarray(edges).tolist()))
        f.write(', "weights": ' + json.dumps(np.asarray(weights).astype(np.float64).tolist()) + "}")


FORMAT = Format(name="windmill-json", read=read, write=write, features=value_only)
