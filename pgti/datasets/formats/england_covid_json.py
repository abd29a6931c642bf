"""England COVID JSON (PyTorch Geometric Temporal's ``dataset/england_covid.json``, read as
PGT 0.56's ``EnglandCovidDatasetLoader`` reads it): ``{"time_periods": T, "y": T x N,
"edge_mapping": {"edge_index": {"0".."T-1": E_t x [i, j]}, "edge_weight": {"0".."T-1": E_t}}}``,
one mobility graph per day. The harness trains on one static graph: the union of the daily
graphs, each pair's weights summed over the days (:func:`union_graph`). No timestamps: the value
is the only feature.

Every problem with a file is an InputError whose one line names the file, where in it, and
what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from pgti.datasets import json_fields
from pgti.datasets.formats.base import Format, RawDataset, in_memory, value_only
from pgti.datasets.registry import DatasetSpec
from pgti.errors import InputError


def union_graph(daily_edges: Sequence[np.ndarray], daily_weights: Sequence[np.ndarray],
                num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The static graph of a sequence of daily graphs: every (i, j) present on some day, with its
    weights summed over the days (in float64, then float32), sorted by (i, j).
    ``daily_edges`` are (2, E_t) int64, ``daily_weights`` (E_t,)."""
    src = np.concatenate([e[0] for e in daily_edges]) if daily_edges else np.zeros(0, np.int64)
    dst = np.concatenate([e[1] for e in daily_edges]) if daily_edges else np.zeros(0, np.int64)
    w = np.concatenate([np.asarray(x, np.float64) for x in daily_weights]) if daily_weights else np.zeros(0)
    key = src.astype(np.int64) * num_nodes + dst
    pairs, which = np.unique(key, return_inverse=True)
    summed = np.bincount(which.reshape(-1), weights=w, minlength=len(pairs))
    edge_index = np.stack([pairs // num_nodes, pairs % num_nodes]).astype(np.int64)
    return edge_index, summed.astype(np.float32)


def _daily(path: Path, mapping: dict, key: str, num_days: int) -> dict:
    where = f"'edge_mapping'/'{key}'"
    daily = mapping[key]
    if not isinstance(daily, dict):
        raise InputError(f"{path}: {where} must be an object keyed by day \"0\"..\"{num_days - 1}\", "
                         f"found {json_fields.found(daily)}")
    expected = {str(t) for t in range(num_days)}
    missing = sorted(expected - set(daily), key=int)
    extra = sorted(set(daily) - expected)
    if missing or extra:
        problem = (f"has no day {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                   if missing else f"has a key {extra[0]!r} that is not a day 0..{num_days - 1}")
        raise InputError(f"{path}: {where} {problem}; it must have one entry per day of 'y' ({num_days})")
    return daily


def read(spec: DatasetSpec, paths: tuple[Path, ...]) -> RawDataset:
    (path,) = paths
    obj = json_fields.load_object(path, ("time_periods", "y", "edge_mapping"))
    values = json_fields.series(path, "'y'", obj["y"])
    num_days, num_nodes = values.shape
    periods = obj["time_periods"]
    if not json_fields.is_integer(periods):
        raise InputError(f"{path}: 'time_periods' must be an integer, found {json_fields.found(periods)}")
    if periods != num_days:
        raise InputError(f"{path}: 'time_periods' is {periods} but 'y' has {num_days} rows (days)")
    mapping = obj["edge_mapping"]
    if not isinstance(mapping, dict) or any(k not in mapping for k in ("edge_index", "edge_weight")):
        found = sorted(mapping) if isinstance(mapping, dict) else json_fields.found(mapping)
        raise InputError(f"{path}: 'edge_mapping' must be an object with keys ['edge_index', 'edge_weight']; "
                         f"found {found}")
    index_by_day = _daily(path, mapping, "edge_index", num_days)
    weight_by_day = _daily(path, mapping, "edge_weight", num_days)
    daily_edges, daily_weights = [], []
    for t in range(num_days):
        day = str(t)
        edges_where = f"'edge_mapping'/'edge_index'/'{day}'"
        edges = json_fields.edge_pairs(path, edges_where, index_by_day[day], num_nodes)
        daily_edges.append(edges)
        daily_weights.append(json_fields.weights(path, f"'edge_mapping'/'edge_weight'/'{day}'", weight_by_day[day],
                                      edges.shape[1], edges_where))
    edge_index, edge_weight = union_graph(daily_edges, daily_weights, num_nodes)
    return in_memory(spec, path, values, edge_index, edge_weight)


def write(path: str | Path, y: np.ndarray, daily: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """The real layout; ``daily[t]`` is (E_t x 2 pairs, E_t weights) of day t."""
    obj = {
        "edge_mapping": {
            "edge_index": {str(t): np.asarray(e, dtype=np.int64).tolist() for t, (e, _) in enumerate(daily)},
            "edge_weight": {str(t): np.asarray(w, dtype=np.float64).tolist() for t, (_, w) in enumerate(daily)},
        },
        "time_periods": int(len(y)),
        "y": np.asarray(y).tolist(),
    }
    with open(path, "w") as f:
        json.dump(obj, f)


FORMAT = Format(name="england-covid-json", read=read, write=write, features=value_only)
