"""Montevideo bus JSON (PyTorch Geometric Temporal's ``dataset/montevideo_bus.json``, read as
PGT 0.56's ``MontevideoBusDatasetLoader`` reads it).

A networkx node-link graph ``{"directed": true, "multigraph": false, "graph": {"name": ...},
"nodes": [{"bus_stop", "in_degree", "lon", "lat", "y": T counts, "X": {name: T values}, "id"},
...], "links": [{"weight", "source", "target"}, ...]}``. Link endpoints are ``bus_stop`` values
(PGT maps them to positions through ``bus_stop``). ``y`` is hourly passenger inflow, the target;
in the published file ``X`` holds one feature, ``"y"``, equal to ``y``, so it adds nothing and is
not read. The file has no timestamps: it covers October 2020 (744 = 31 x 24 hours), so step t is
hour t from the registry's ``start``; hence the calendar features.

Every problem with a file is an InputError whose one line names the file, where in it, and
what is wrong.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from pgti.datasets import json_fields
from pgti.datasets.formats.base import Format, RawDataset, in_memory, step_timestamps_ns, value_and_calendar
from pgti.datasets.registry import DatasetSpec
from pgti.errors import InputError


def read(spec: DatasetSpec, paths: tuple[Path, ...]) -> RawDataset:
    (path,) = paths
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
    return in_memory(spec, path, values, edge_index, edge_weight, [str(s) for s in position], timestamps)


def write(
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


FORMAT = Format(name="montevideo-bus-json", read=read, write=write, features=value_and_calendar)
