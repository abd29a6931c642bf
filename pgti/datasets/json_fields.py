"""Checked reading of JSON dataset files: every field a reader takes is checked for its JSON type
and shape, and a problem becomes one InputError line naming the file, where in it (e.g.
``'FX'[3][4]``) and what was found. Used by every JSON format (pgti/datasets/formats/*_json.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pgti.errors import InputError

_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number"}


def found(value) -> str:
    """A JSON value as a message names it: its JSON type, and the value itself if a scalar."""
    if value is None:
        return "null"
    name = _JSON_TYPES.get(type(value), type(value).__name__)
    return name if isinstance(value, (dict, list)) else f"{name} {show(value)}"


def show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_object(path: Path, keys: Sequence[str]) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise InputError(f"{path} is nested too deeply to be one of the dataset layouts") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path} must be a JSON object with keys {list(keys)}; found {found(obj)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise InputError(
            f"{path} must be a JSON object with keys {list(keys)}; missing {missing}, found {sorted(obj)}"
        )
    return obj


def as_float(v) -> float:
    try:
        return float(v)
    except OverflowError:  # an integer beyond float64
        return math.inf


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _first_not(rows: list, ok: Callable[[object], bool], nested: bool) -> tuple[str, object] | None:
    """The first element (as '[i]' or '[i][j]', value) of a list (of lists, if ``nested``) failing ``ok``."""
    for i, row in enumerate(rows):
        if nested:
            for j, v in enumerate(row):
                if not ok(v):
                    return f"[{i}][{j}]", v
        elif not ok(row):
            return f"[{i}]", row
    return None


def array(path: Path, where: str, value, *, ndim: int, integer: bool = False, width: int | None = None) -> np.ndarray:
    """``value`` as a float64 (or int64 when ``integer``) array of ``ndim`` dimensions, checked:
    a list (of lists of equal length ``width`` if given), numbers only (integers only), finite."""
    kind = "integers" if integer else "numbers"
    shape = "a list" if ndim == 1 else "a list of lists"
    if not isinstance(value, list):
        raise InputError(f"{path}: {where} must be {shape} of {kind}, found {found(value)}")
    if ndim == 2:
        for i, row in enumerate(value):
            if not isinstance(row, list):
                raise InputError(f"{path}: {where}[{i}] must be a list of {kind}, found {found(row)}")
        expected = width if width is not None else (len(value[0]) if value else 0)
        for i, row in enumerate(value):
            if len(row) != expected:
                if width is not None:
                    raise InputError(f"{path}: {where}[{i}] must have {width} values, found {len(row)}")
                raise InputError(f"{path}: {where} is ragged: row {i} has {len(row)} values, row 0 has {expected}")
    ok = is_integer if integer else is_number
    bad = _first_not(value, ok, nested=ndim == 2)
    if bad is not None:
        at, v = bad
        raise InputError(f"{path}: {where}{at} must be {'an integer' if integer else 'a number'}, "
                         f"found {found(v)}")
    try:
        arr = np.array(value, dtype=np.int64 if integer else np.float64)
    except OverflowError:
        raise InputError(f"{path}: {where} holds a number too large for {'int64' if integer else 'float64'}") from None
    if ndim == 2 and arr.ndim == 1:  # an empty list of rows
        arr = arr.reshape(0, width or 0)
    if not integer and not np.isfinite(arr).all():
        at = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(f"{path}: {where}{''.join(f'[{i}]' for i in at)} is {arr[at]}, not a finite number")
    return arr


def series(path: Path, where: str, value) -> np.ndarray:
    """A T x N matrix of numbers with T >= 1 and N >= 1."""
    values = array(path, where, value, ndim=2)
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise InputError(f"{path}: {where} must be T x N with T, N >= 1, found shape {values.shape}")
    return values


def edge_pairs(path: Path, where: str, value, num_nodes: int) -> np.ndarray:
    """E x [i, j] node positions in [0, num_nodes), as (2, E) int64."""
    edges = array(path, where, value, ndim=2, integer=True, width=2)
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        row = int(np.argwhere((edges < 0) | (edges >= num_nodes))[0][0])
        raise InputError(
            f"{path}: {where}[{row}] = {edges[row].tolist()} is not a pair of node indices in [0, {num_nodes})"
        )
    return np.ascontiguousarray(edges.T)


def weights(path: Path, where: str, value, num_edges: int, edges_where: str) -> np.ndarray:
    """One finite weight per edge, float64."""
    w = array(path, where, value, ndim=1)
    if len(w) != num_edges:
        raise InputError(f"{path}: {len(w)} {where} for {num_edges} {edges_where}")
    return w
