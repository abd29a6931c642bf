"""The three JSON datasets of PyTorch Geometric Temporal's ``dataset/`` folder that PGT-I's
artifact does not use: Montevideo bus, Pedal Me London and England COVID. Readers (real layout
in, :class:`RawDataset` out) and writers (the same layout, for the synthetic generator).

Layouts, as PGT's own loaders read them (``MontevideoBusDatasetLoader``,
``PedalMeDatasetLoader``, ``EnglandCovidDatasetLoader``, PGT 0.56):

- Montevideo bus: a networkx node-link graph ``{"directed": true, "multigraph": false, "graph":
  {"name": ...}, "nodes": [{"bus_stop", "in_degree", "lon", "lat", "y": T counts, "X": {name: T
  values}, "id"}, ...], "links": [{"weight", "source", "target"}, ...]}``. Link endpoints are
  ``bus_stop`` values (PGT maps them to positions through ``bus_stop``). ``y`` is hourly
  passenger inflow, the target; in the published file ``X`` holds one feature, ``"y"``, equal
  to ``y``, so it adds nothing and is not read. The file has no timestamps: it covers October
  2020 (744 = 31 x 24 hours), so step t is hour t from the registry's ``start``.
- Pedal Me: ``{"edges": E x [i, j], "weights": E, "X": T x N}``.
- England COVID: ``{"time_periods": T, "y": T x N, "edge_mapping": {"edge_index": {"0".."T-1":
  E_t x [i, j]}, "edge_weight": {"0".."T-1": E_t}}}``, one mobility graph per day. The
  harness trains on one static graph: the union of the daily graphs, each pair's weights summed
  over the days (:func:`union_graph`).

Every problem with a file is an InputError whose one line names the file, where in it, and
what is wrong; nothing here lets a KeyError/TypeError/IndexError/ValueError escape.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pgti.datasets import json_fields
from pgti.datasets.formats import ArrayRows, RawDataset
from pgti.datasets.registry import DatasetSpec
from pgti.errors import InputError

MONTEVIDEO_FORMAT = "montevideo-bus-json"
PEDALME_FORMAT = "pedalme-json"
ENGLAND_COVID_FORMAT = "england-covid-json"


def read(spec: DatasetSpec, path: Path) -> RawDataset:
    """Read ``path`` in ``spec.format``, one of :data:`READERS`."""
    return READERS[spec.format](spec, Path(path))


def _raw(spec: DatasetSpec, path: Path, values: np.ndarray, edge_index: np.ndarray, edge_weight: np.ndarray,
         node_ids: list[str] | None = None, timestamps_ns: np.ndarray | None = None) -> RawDataset:
    ids = node_ids if node_ids is not None else [str(i) for i in range(values.shape[1])]
    return RawDataset(spec, (path,), ids, edge_index.astype(np.int64), edge_weight.astype(np.float32),
                      timestamps_ns, ArrayRows(values, str(path)))


def step_timestamps_ns(start: str, num_timesteps: int, step_seconds: int) -> np.ndarray:
    """int64 nanoseconds of ``start`` (a date, read as local midnight) plus t steps."""
    first = np.datetime64(start, "ns").astype(np.int64)
    return first + np.arange(num_timesteps, dtype=np.int64) * (step_seconds * 10**9)


# --- Montevideo bus ---------------------------------------------------------------------------------


def read_montevideo(spec: DatasetSpec, path: Path) -> RawDataset:
    obj = json_fields.load_object(path, ("nodes", "links"))
    directed = obj.get("directed", True)
    if not isinstance(directed, bool):
        raise InputError(f"{path}: 'directed' must be true or false, found {json_fields.found(directed)}")
    nodes, links = obj["nodes"], obj["links"]
    for key, value in (("nodes", nodes), ("links", links)):
        if not isinstance(value, list):
            raise InputError(f"{path}: {key!r} must be a list of objects, found {json_fields.found(value)}")
    if not nodes:
        raise InputError(f"{path}: 'nodes' is empty")

    position: dict[object, int] = {}
    rows = []
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise InputError(f"{path}: {where} must be an object, found {json_fields.found(node)}")
        missing = [k for k in ("bus_stop", "y") if k not in node]
        if missing:
            raise InputError(f"{path}: {where} has no {' or '.join(map(repr, missing))} (found keys {sorted(node)})")
        stop = node["bus_stop"]
        if not (json_fields.is_integer(stop) or isinstance(stop, str)):
            raise InputError(f"{path}: {where}['bus_stop'] must be an integer or a string, "
                             f"found {json_fields.found(stop)}")
        if stop in position:
            raise InputError(f"{path}: bus_stop {json_fields.show(stop)} appears twice (nodes[{position[stop]}] and {where})")
        position[stop] = i
        y = json_fields.array(path, f"{where}['y']", node["y"], ndim=1)
        if rows and len(y) != len(rows[0]):
            raise InputError(f"{path}: the 'y' rows are ragged: {where} (bus_stop {json_fields.show(stop)}) has {len(y)} "
                             f"values, nodes[0] has {len(rows[0])}")
        rows.append(y)
    if len(rows[0]) == 0:
        raise InputError(f"{path}: nodes[0]['y'] is empty: no time steps")
    values = np.stack(rows, axis=1)  # (T, N)

    src, dst, weight = [], [], []
    for k, link in enumerate(links):
        where = f"links[{k}]"
        if not isinstance(link, dict):
            raise InputError(f"{path}: {where} must be an object, found {json_fields.found(link)}")
        missing = [key for key in ("source", "target", "weight") if key not in link]
        if missing:
            raise InputError(f"{path}: {where} has no {' or '.join(map(repr, missing))} (found keys {sorted(link)})")
        for end, out in (("source", src), ("target", dst)):
            stop = link[end]
            if isinstance(stop, bool) or not isinstance(stop, (int, str)) or stop not in position:
                raise InputError(f"{path}: {where}['{end}'] = {json_fields.show(stop)} is not the bus_stop of any node")
            out.append(position[stop])
        w = link["weight"]
        if not json_fields.is_number(w) or not math.isfinite(json_fields.as_float(w)):
            raise InputError(f"{path}: {where}['weight'] must be a finite number, found {json_fields.found(w)}")
        weight.append(float(w))
    edge_index = np.array([src, dst], dtype=np.int64).reshape(2, -1)
    edge_weight = np.array(weight, dtype=np.float64)
    if not directed:  # a node-link graph with "directed": false means each link both ways
        edge_index = np.concatenate([edge_index, edge_index[::-1]], axis=1)
        edge_weight = np.concatenate([edge_weight, edge_weight])
    timestamps = step_timestamps_ns(spec.start, values.shape[0], spec.step_seconds)
    return _raw(spec, path, values, edge_index, edge_weight, [str(s) for s in position], timestamps)


def write_montevideo_json(
    path: str | Path, bus_stops: Sequence[int], lon: Sequence[int], lat: Sequence[int], series: np.ndarray,
    links: Sequence[tuple[int, int, float]], *, name: str = "Bus lines of Montevideo",
) -> None:
    """The node-link layout of the real file, keys in its order. ``series`` is (T, N) counts;
    ``links`` are (source position, target position, weight)."""
    series = np.asarray(series)
    in_degree = np.bincount([t for _, t, _ in links], minlength=len(bus_stops))
    nodes = []
    for i, stop in enumerate(bus_stops):
        y = series[:, i].tolist()
        nodes.append({"bus_stop": int(stop), "in_degree": int(in_degree[i]), "lon": int(lon[i]),
                      "lat": int(lat[i]), "y": y, "X": {"y": y}, "id": int(stop)})
    obj = {
        "directed": True, "multigraph": False, "graph": {"name": name}, "nodes": nodes,
        "links": [{"weight": float(w), "source": int(bus_stops[s]), "target": int(bus_stops[t])}
                  for s, t, w in links],
    }
    with open(path, "w") as f:
        json.dump(obj, f)


# --- Pedal Me ---------------------------------------------------------------------------------------


def read_pedalme(spec: DatasetSpec, path: Path) -> RawDataset:
    obj = json_fields.load_object(path, ("edges", "weights", "X"))
    values = json_fields.series(path, "'X'", obj["X"])
    edge_index = json_fields.edge_pairs(path, "'edges'", obj["edges"], values.shape[1])
    weights = json_fields.weights(path, "'weights'", obj["weights"], edge_index.shape[1], "'edges'")
    return _raw(spec, path, values, edge_index, weights)


def write_pedalme_json(path: str | Path, edges: np.ndarray, weights: np.ndarray, x: np.ndarray) -> None:
    """``{"edges": E x [i, j], "weights": E, "X": T x N}``."""
    obj = {"edges": np.asarray(edges, dtype=np.int64).tolist(),
           "weights": np.asarray(weights, dtype=np.float64).tolist(),
           "X": np.asarray(x, dtype=np.float64).tolist()}
    with open(path, "w") as f:
        json.dump(obj, f)


# --- England COVID ----------------------------------------------------------------------------------


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


def read_england_covid(spec: DatasetSpec, path: Path) -> RawDataset:
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
    return _raw(spec, path, values, edge_index, edge_weight)


def write_england_covid_json(path: str | Path, y: np.ndarray,
                             daily: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
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


READERS: dict[str, Callable[[DatasetSpec, Path], RawDataset]] = {
    MONTEVIDEO_FORMAT: read_montevideo,
    PEDALME_FORMAT: read_pedalme,
    ENGLAND_COVID_FORMAT: read_england_covid,
}
