"""The three shipped PGT datasets (Montevideo bus, Pedal Me, England COVID), as a specification:
read in their real layouts, right shapes and graphs, identical batches in every storage, a
driver for each, and one clear line for every kind of bad file."""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
import math
import re
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import torch

from conftest import REPO
from pgti.data import prepare
from pgti.datasets import formats, registry
from pgti.datasets.formats import england_covid_json, get_format, load_raw
from pgti.datasets.registry import DATASETS, get_spec
from pgti.datasets.synthetic import generate, min_timesteps
from pgti.engine import cli as run_module
from pgti.errors import InputError

DATA = REPO / "data"
NEW = ["montevideo-bus", "pedalme", "england-covid"]
FILE = {name: get_spec(name).layouts[0][0] for name in NEW}
DRIVER = {"montevideo-bus": "montevideo_bus_main.py", "pedalme": "pedalme_main.py",
          "england-covid": "england_covid_main.py"}

# name: (T, N, F, edges of the static graph, train/val/test windows)
SHAPES = {
    "montevideo-bus": (744, 675, 2, 690, (505, 72, 144)),  # F: inflow, time of day
    "pedalme": (35, 15, 1, 225, (21, 3, 6)),
    "england-covid": (61, 129, 1, 2347, (34, 4, 10)),
}


def _json(name):
    return json.loads((DATA / FILE[name]).read_text())


# --- the shipped files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_shipped_file_is_the_published_one(name):
    url, sha256 = get_spec(name).sources[FILE[name]]
    assert url == ("https://raw.githubusercontent.com/benedekrozemberczki/pytorch_geometric_temporal/"
                   f"master/dataset/{FILE[name]}")
    assert hashlib.sha256((DATA / FILE[name]).read_bytes()).hexdigest() == sha256


@pytest.mark.parametrize("name", NEW)
def test_shipped_dataset_has_the_real_shape_graph_and_splits(name):
    t, n, f, e, windows = SHAPES[name]
    spec = get_spec(name)
    assert (spec.num_timesteps, spec.num_nodes) == (t, n)
    data = prepare(name, DATA, "index")
    try:
        assert tuple(data.storage.series.shape) == (t, n, f)
        assert data.raw.edge_index.shape == (2, e) and data.raw.edge_weight.shape == (e,)
        assert data.raw.edge_index.dtype == np.int64 and data.raw.edge_weight.dtype == np.float32
        assert (data.split.size("train"), data.split.size("val"), data.split.size("test")) == windows
        assert data.lags == spec.lags
        data.check_batch_size(spec.default_batch_size)  # the default batch fits every split
    finally:
        data.close()


def test_montevideo_series_and_links_are_those_of_the_node_link_file():
    obj = _json("montevideo-bus")
    raw = load_raw("montevideo-bus", DATA)
    stops = [node["bus_stop"] for node in obj["nodes"]]
    assert raw.node_ids == [str(s) for s in stops]
    np.testing.assert_array_equal(raw.rows.read(0, 744), np.array([node["y"] for node in obj["nodes"]]).T)
    links = [(stops[s], stops[d], w) for (s, d), w in zip(raw.edge_index.T.tolist(), raw.edge_weight.tolist())]
    assert [(a, b) for a, b, _ in links] == [(link["source"], link["target"]) for link in obj["links"]]
    np.testing.assert_array_equal(raw.edge_weight, np.float32([link["weight"] for link in obj["links"]]))
    # hourly from 2020-10-01 00:00: step 24 is midnight of 2 October, step 30 is 06:00
    time_of_day = prepare("montevideo-bus", DATA, "index", raw=raw).storage.series[:, 0, 1]
    assert time_of_day[24] == 0.0 and time_of_day[30] == pytest.approx(0.25)
    assert raw.timestamps_ns[0] == np.datetime64("2020-10-01T00:00", "ns").astype(np.int64)


def test_pedalme_values_and_edges_are_those_of_the_file():
    obj = _json("pedalme")
    raw = load_raw("pedalme", DATA)
    np.testing.assert_array_equal(raw.rows.read(0, 35), np.array(obj["X"]))
    np.testing.assert_array_equal(raw.edge_index.T, np.array(obj["edges"]))
    np.testing.assert_array_equal(raw.edge_weight, np.float32(obj["weights"]))
    assert raw.timestamps_ns is None


def _union_by_dict(obj) -> dict[tuple[int, int], float]:
    """The union graph the slow, obvious way: a dict of summed weights over every day."""
    total = defaultdict(float)
    for day, pairs in obj["edge_mapping"]["edge_index"].items():
        for (i, j), w in zip(pairs, obj["edge_mapping"]["edge_weight"][day]):
            total[(i, j)] += w
    return dict(total)


def _as_dict(raw) -> dict[tuple[int, int], float]:
    return {(i, j): w for (i, j), w in zip(raw.edge_index.T.tolist(), raw.edge_weight.tolist())}


def test_england_covid_static_graph_is_the_union_of_the_61_daily_graphs():
    obj = _json("england-covid")
    raw = load_raw("england-covid", DATA)
    np.testing.assert_array_equal(raw.rows.read(0, 61), np.array(obj["y"]))
    expected = _union_by_dict(obj)
    got = _as_dict(raw)
    assert sorted(got) == sorted(expected) == list(got)  # every pair once, sorted by (i, j)
    for pair, w in expected.items():
        assert got[pair] == np.float32(w)
    days = obj["edge_mapping"]["edge_index"]
    assert len(got) < sum(len(days[d]) for d in days)  # pairs recur across days: a real union


def test_england_covid_union_of_a_tiny_example_by_hand(tmp_path):
    y = np.arange(3 * 3).reshape(3, 3)
    daily = [
        (np.array([[0, 1], [1, 1]]), np.array([1.5, 2.0])),
        (np.array([[2, 0], [0, 1]]), np.array([4.0, 0.5])),
        (np.array([[1, 1]]), np.array([1.0])),
    ]
    england_covid_json.write(tmp_path / "england_covid.json", y, daily)
    raw = load_raw("england-covid", tmp_path)
    # (0,1): 1.5 + 0.5; (1,1): 2 + 1; (2,0): 4, sorted by (source, target)
    assert raw.edge_index.tolist() == [[0, 1, 2], [1, 1, 0]]
    assert raw.edge_weight.tolist() == [2.0, 3.0, 4.0]
    np.testing.assert_array_equal(raw.rows.read(0, 3), y)


def test_england_covid_union_of_a_generated_example(tmp_path):
    (path,) = generate("england-covid", tmp_path, nodes=6, timesteps=19, progress=False)
    obj = json.loads(path.read_text())
    got = _as_dict(load_raw("england-covid", tmp_path))
    expected = _union_by_dict(obj)
    assert got == {pair: float(np.float32(w)) for pair, w in expected.items()}
    assert any(len([d for d in obj["edge_mapping"]["edge_index"].values() if [i, j] in d]) < 19
               for i, j in expected)  # some pairs are missing on some days


# --- format modules -------------------------------------------------------------------------------


def test_every_registered_dataset_names_a_format_module():
    for spec in DATASETS.values():
        assert get_format(spec.format).name == spec.format


NEW_FORMAT_MODULE = """
import numpy as np
from pgti.datasets.formats.base import Format, in_memory, value_only

def read(spec, paths):
    values = np.loadtxt(paths[0], delimiter=",", ndmin=2)
    ring = np.arange(values.shape[1])
    return in_memory(spec, paths[0], values, np.stack([ring, np.roll(ring, 1)]), np.ones(len(ring)))

def write(path, values):
    np.savetxt(path, values, delimiter=",")

FORMAT = Format(name="csv-rows", read=read, write=write, features=value_only)
"""


def test_a_new_format_is_one_module_and_a_dataset_in_it_one_registry_entry(tmp_path, monkeypatch):
    (tmp_path / "csv_rows.py").write_text(NEW_FORMAT_MODULE)
    spec = dataclasses.replace(get_spec("chickenpox"), name="toy", format="csv-rows", layouts=(("toy.csv",),),
                               num_nodes=3, num_timesteps=40)
    monkeypatch.setitem(registry.DATASETS, "toy", spec)
    original_path = list(formats.__path__)
    formats.__path__.append(str(tmp_path))
    formats.formats.cache_clear()
    try:
        values = np.arange(120, dtype=np.float64).reshape(40, 3)
        get_format("csv-rows").write(tmp_path / "toy.csv", values)
        raw = load_raw("toy", tmp_path)
        np.testing.assert_array_equal(raw.rows.read(0, 40), values)
        assert raw.edge_index.tolist() == [[0, 1, 2], [2, 0, 1]]
        data = prepare("toy", tmp_path, "index")
        assert data.features.feature_names == ("value",)
    finally:
        formats.__path__[:] = original_path
        formats.formats.cache_clear()
        sys.modules.pop(f"{formats.__name__}.csv_rows", None)
    with pytest.raises(InputError, match="unknown file format 'csv-rows'"):
        get_format("csv-rows")


@pytest.mark.parametrize("name", ["chickenpox", "pedalme", "england-covid"])
def test_a_day_of_week_channel_on_files_without_dates_names_the_config_field(name):
    with pytest.raises(InputError) as refused:
        prepare(name, REPO / "data", "index", day_of_week=True)
    assert refused.value.field == "data.day_of_week"
    assert "needs timestamps" in str(refused.value) and "--" not in str(refused.value)


def test_montevideo_bus_yields_the_calendar_of_its_october_2020_hours():
    data = prepare("montevideo-bus", REPO / "data", "index", day_of_week=True)
    assert data.features.feature_names == ("value", "time_of_day", "day_of_week")
    np.testing.assert_array_equal(data.features.time_of_day[:25], np.float32((np.arange(25) % 24) / 24))
    assert data.features.day_of_week[0] == np.float32(3 / 7)  # 1 October 2020 was a Thursday (Monday = 0)


# --- storages ---------------------------------------------------------------------------------------


def _epochs(data, batch_size):
    return [
        [(x.clone(), y.clone()) for x, y in data.batches(split, batch_size, shuffle=True, seed=3, epoch=e)]
        for e in range(2)
        for split in ("train", "val", "test")
    ]


@pytest.mark.parametrize("name", NEW)
def test_base_index_and_lazy_index_batches_are_bitwise_equal(name):
    batch_size = get_spec(name).default_batch_size
    runs = {}
    for mode in ("base", "index", "lazy-index"):
        data = prepare(name, DATA, mode)
        runs[mode] = _epochs(data, batch_size)
        data.close()
    for mode in ("base", "lazy-index"):
        assert len(runs[mode]) == len(runs["index"]) == 6
        for batches_a, batches_b in zip(runs["index"], runs[mode]):
            assert len(batches_a) == len(batches_b) > 0
            for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
                assert xa.shape == xb.shape and xa.dtype == xb.dtype == torch.float32
                assert torch.equal(xa.view(torch.int32), xb.view(torch.int32))
                assert torch.equal(ya.view(torch.int32), yb.view(torch.int32))


# --- drivers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_driver_trains_one_epoch_on_the_shipped_data(tmp_path, name):
    out = tmp_path / "run"
    # Each driver's default model: on montevideo-bus that is dcrnn-cell, since pgt-dcrnn (PGT's
    # BatchedDCRNN) divides by zero in-degrees and 9 Montevideo stops have outgoing links only.
    proc = subprocess.run(
        [sys.executable, str(REPO / "single_gpu_testing" / DRIVER[name]), "-e", "1", "--max-batches", "2",
         "-m", "index", "-q", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    with open(out / "stats.csv", newline="") as f:
        (stats,) = list(csv.DictReader(f))
    assert stats["dataset"] == name
    assert stats["model"] == ("dcrnn-cell" if name == "montevideo-bus" else "pgt-dcrnn")
    assert math.isfinite(float(stats["test_mae"])) and float(stats["test_mae"]) > 0
    assert (stats["test_mae_h3"] != "") and ((stats.get("test_mae_h6") or "") != "") == (get_spec(name).lags >= 6)


# --- bad files --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Each format written small by the generator, as a parsed JSON object to break."""
    root = tmp_path_factory.mktemp("tiny")
    objects = {}
    for name in NEW:
        (path,) = generate(name, root / name, nodes=4, timesteps=min_timesteps(get_spec(name)), progress=False)
        objects[name] = json.loads(path.read_text())
    return objects


def _set(obj, keys, value):
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


def _del(obj, keys):
    for k in keys[:-1]:
        obj = obj[k]
    del obj[keys[-1]]


def _append(obj, keys, value):
    for k in keys:
        obj = obj[k]
    obj.append(value)


BAD = [
    # Montevideo bus
    ("montevideo-bus", lambda o: _del(o, ["links"]), r"must be a JSON object with keys \['nodes', 'links'\]; missing \['links'\]"),
    ("montevideo-bus", lambda o: _set(o, ["nodes"], {"0": 1}), r"'nodes' must be a list of objects, found an object"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 1], [1, 2]), r"nodes\[1\] must be an object, found a list"),
    ("montevideo-bus", lambda o: _del(o, ["nodes", 2, "y"]), r"nodes\[2\] has no 'y'"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 0, "bus_stop"], 5000.5), r"nodes\[0\]\['bus_stop'\] must be an integer or a string, found a number 5000.5"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 1, "bus_stop"], 5000), r"bus_stop 5000 appears twice \(nodes\[0\] and nodes\[1\]\)"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 3, "y", 5], "7"), r"nodes\[3\]\['y'\]\[5\] must be a number, found a string \"7\""),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 3, "y", 6], None), r"nodes\[3\]\['y'\]\[6\] must be a number, found null"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 2, "y", 0], True), r"nodes\[2\]\['y'\]\[0\] must be a number, found a boolean true"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 2, "y", 1], float("nan")), r"nodes\[2\]\['y'\]\[1\] is nan, not a finite number"),
    ("montevideo-bus", lambda o: o["nodes"][1]["y"].pop(), r"the 'y' rows are ragged: nodes\[1\] \(bus_stop 5001\) has \d+ values, nodes\[0\] has"),
    ("montevideo-bus", lambda o: _set(o, ["links", 0, "target"], 999), r"links\[0\]\['target'\] = 999 is not the bus_stop of any node"),
    ("montevideo-bus", lambda o: _set(o, ["links", 0, "source"], "5000"), r"links\[0\]\['source'\] = \"5000\" is not the bus_stop of any node"),
    ("montevideo-bus", lambda o: _set(o, ["links", 1, "weight"], "far"), r"links\[1\]\['weight'\] must be a finite number, found a string \"far\""),
    ("montevideo-bus", lambda o: _del(o, ["links", 0, "weight"]), r"links\[0\] has no 'weight'"),
    ("montevideo-bus", lambda o: _set(o, ["links", 0, "weight"], 10**400), r"links\[0\]\['weight'\] must be a finite number, found an integer 1000"),
    ("montevideo-bus", lambda o: _set(o, ["links", 2, "target"], [5001]), r"links\[2\]\['target'\] = \[5001\] is not the bus_stop of any node"),
    ("montevideo-bus", lambda o: _set(o, ["nodes", 0, "y"], []) or [n.update(y=[]) for n in o["nodes"]], r"nodes\[0\]\['y'\] is empty: no time steps"),
    ("montevideo-bus", lambda o: _set(o, ["directed"], "yes"), r"'directed' must be true or false, found a string \"yes\""),
    # Pedal Me
    ("pedalme", lambda o: _del(o, ["X"]), r"missing \['X'\]"),
    ("pedalme", lambda o: o["X"][4].pop(), r"'X' is ragged: row 4 has 3 values, row 0 has 4"),
    ("pedalme", lambda o: _set(o, ["X", 2], 1.0), r"'X'\[2\] must be a list of numbers, found a number 1.0"),
    ("pedalme", lambda o: _set(o, ["X", 2, 1], "1.0"), r"'X'\[2\]\[1\] must be a number, found a string \"1.0\""),
    ("pedalme", lambda o: _set(o, ["X"], []), r"'X' must be T x N with T, N >= 1, found shape \(0, 0\)"),
    ("pedalme", lambda o: _set(o, ["edges", 3], [0, 1, 2]), r"'edges'\[3\] must have 2 values, found 3"),
    ("pedalme", lambda o: _set(o, ["edges", 3], [0, 4]), r"'edges'\[3\] = \[0, 4\] is not a pair of node indices in \[0, 4\)"),
    ("pedalme", lambda o: _set(o, ["edges", 3], [0, 1.0]), r"'edges'\[3\]\[1\] must be an integer, found a number 1.0"),
    ("pedalme", lambda o: o["weights"].pop(), r"15 'weights' for 16 'edges'"),
    ("pedalme", lambda o: _set(o, ["weights"], 1.0), r"'weights' must be a list of numbers, found a number 1.0"),
    # England COVID
    ("england-covid", lambda o: _set(o, ["time_periods"], "19"), r"'time_periods' must be an integer, found a string \"19\""),
    ("england-covid", lambda o: _set(o, ["time_periods"], 20), r"'time_periods' is 20 but 'y' has 19 rows"),
    ("england-covid", lambda o: _append(o, ["y", 7], 3), r"'y' is ragged: row 7 has 5 values, row 0 has 4"),
    ("england-covid", lambda o: _del(o, ["edge_mapping", "edge_weight"]), r"'edge_mapping' must be an object with keys \['edge_index', 'edge_weight'\]; found \['edge_index'\]"),
    ("england-covid", lambda o: _del(o, ["edge_mapping", "edge_index", "5"]), r"'edge_mapping'/'edge_index' has no day '5'"),
    ("england-covid", lambda o: _set(o, ["edge_mapping", "edge_weight", "x"], []), r"'edge_mapping'/'edge_weight' has a key 'x' that is not a day 0..18"),
    ("england-covid", lambda o: _set(o, ["edge_mapping", "edge_index"], []), r"'edge_mapping'/'edge_index' must be an object keyed by day"),
    ("england-covid", lambda o: _set(o, ["edge_mapping", "edge_index", "3"], {"a": 1}), r"'edge_mapping'/'edge_index'/'3' must be a list of lists of integers, found an object"),
    ("england-covid", lambda o: _set(o, ["edge_mapping", "edge_index", "3", 0], [9, 0]), r"'edge_mapping'/'edge_index'/'3'\[0\] = \[9, 0\] is not a pair of node indices"),
    ("england-covid", lambda o: o["edge_mapping"]["edge_weight"]["2"].pop(), r"'edge_mapping'/'edge_weight'/'2' for \d+ 'edge_mapping'/'edge_index'/'2'"),
]


def _write_bad(tiny, directory, name, mutate):
    obj = copy.deepcopy(tiny[name])
    mutate(obj)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE[name]
    path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize("name, mutate, message", BAD)
def test_bad_file_is_one_input_error_naming_the_file_and_the_problem(tiny, tmp_path, name, mutate, message):
    path = _write_bad(tiny, tmp_path, name, mutate)
    with pytest.raises(InputError, match=rf"^{path}: .*{message}|^{path} .*{message}") as info:
        load_raw(name, tmp_path)
    assert "\n" not in str(info.value)


# ragged rows, links to unknown bus stops, a missing day: through the driver, as a user meets them
DRIVER_BAD = [case for case in BAD if any(k in case[2] for k in ("ragged", "is not the bus_stop", "has no day"))]


@pytest.mark.parametrize("name, mutate, message", DRIVER_BAD)
def test_driver_exits_2_with_one_line_on_a_bad_file(tiny, tmp_path, capsys, name, mutate, message):
    path = _write_bad(tiny, tmp_path, name, mutate)
    status = run_module.main(name, ["-e", "1", "--data-dir", str(tmp_path), "--output-dir",
                                    str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {path}") and re.search(message, err)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("content, message", [
    ("{", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object with keys .*; found a list"),
    ("\"text\"", "must be a JSON object with keys .*; found a string \"text\""),
])
def test_not_a_json_object(tmp_path, name, content, message):
    (tmp_path / FILE[name]).write_text(content)
    with pytest.raises(InputError, match=rf"{tmp_path / FILE[name]}.*{message}"):
        load_raw(name, tmp_path)


def test_undirected_node_link_graph_links_both_ways(tiny, tmp_path):
    obj = copy.deepcopy(tiny["montevideo-bus"])
    obj["directed"] = False
    (tmp_path / FILE["montevideo-bus"]).write_text(json.dumps(obj))
    raw = load_raw("montevideo-bus", tmp_path)
    directed = _write_bad(tiny, tmp_path / "d", "montevideo-bus", lambda o: None)
    one_way = load_raw("montevideo-bus", directed.parent)
    e = one_way.edge_index.shape[1]
    assert raw.edge_index.shape[1] == 2 * e
    np.testing.assert_array_equal(raw.edge_index[:, e:], one_way.edge_index[::-1])
    np.testing.assert_array_equal(raw.edge_weight[e:], one_way.edge_weight)


def test_pgt_dcrnn_diverging_on_montevideo_ends_in_one_line_with_status_1(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "single_gpu_testing" / DRIVER["montevideo-bus"]), "-e", "1", "--max-batches",
         "2", "-q", "--model", "pgt-dcrnn", "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and errors[0].startswith("error: training diverged: training loss became nan")
