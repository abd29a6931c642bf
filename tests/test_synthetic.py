"""Synthetic data: written in the real formats, deterministic, realistic enough to learn from."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from pgti.cli_util import run_cli
from pgti.datasets import synthetic
from pgti.datasets.formats import load_raw
from pgti.datasets.formats.dcrnn_h5 import write_dcrnn_h5
from pgti.datasets.registry import get_spec
from pgti.datasets.synthetic import generate
from pgti.datasets.synthetic.graphs import ADJ_THRESHOLD, gaussian_kernel_adjacency, neighbour_pairs, sensor_layout
from pgti.errors import InputError

REPO = Path(__file__).resolve().parents[1]
TRAFFIC = ["metr-la", "pems-bay", "pems-all-la", "pems"]
SMALL = dict(nodes=30, timesteps=500, progress=False)


def _values(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["df/block0_values"][:]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Every dataset written small, one directory per dataset."""
    root = tmp_path_factory.mktemp("synthetic")
    return {name: generate(name, root / name, **SMALL) for name in ["chickenpox", "windmill-large", *TRAFFIC]}


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRAFFIC)
def test_dcrnn_series_reads_back_with_pandas_and_h5py(small, name):
    spec = get_spec(name)
    h5_path, pkl_path = small[name]
    assert (h5_path, pkl_path) == spec.default_paths(h5_path.parent)
    df = pd.read_hdf(h5_path, "df")
    assert df.shape == (500, 30)
    assert df.index[0] == pd.Timestamp(spec.start)
    assert df.index.freq == pd.Timedelta(seconds=spec.step_seconds)
    assert (np.diff(df.index.asi8) > 0).all()
    assert df.dtypes.eq(np.float64).all()
    ids, id_to_ind, _ = pickle.load(open(pkl_path, "rb"), encoding="latin1")
    assert list(df.columns) == ids
    assert np.array_equal(df.to_numpy(), _values(h5_path))


@pytest.mark.parametrize("unit, kind, per_second", [("us", b"datetime64[us]", 10**6), ("ns", b"datetime64", 10**9)])
def test_timestamp_unit_attribute(tmp_path, unit, kind, per_second):
    h5_path, _ = generate("metr-la", tmp_path, timestamp_unit=unit, **SMALL)
    with h5py.File(h5_path, "r") as f:
        axis1 = f["df/axis1"]
        assert bytes(axis1.attrs["kind"]) == kind
        assert axis1[1] - axis1[0] == 300 * per_second
    index = pd.read_hdf(h5_path, "df").index
    assert index[0] == pd.Timestamp("2012-03-01") and index[-1] == pd.Timestamp("2012-03-01") + 499 * pd.Timedelta("5min")


def _layout_signature(path: Path) -> dict:
    """Every attribute's HDF5 type, padding, charset, dataspace and value; every dataset's type
    and storage layout."""
    out = {}

    def visit(name, obj):
        for key in obj.attrs:
            aid = obj.attrs.get_id(key)
            t = aid.get_type()
            pad = t.get_strpad() if isinstance(t, h5py.h5t.TypeStringID) else None
            cset = t.get_cset() if isinstance(t, h5py.h5t.TypeStringID) else None
            out[(name, key)] = (type(t).__name__, t.get_size(), pad, cset, aid.get_space().get_simple_extent_type(), repr(obj.attrs[key]))
        if isinstance(obj, h5py.Dataset):
            t = obj.id.get_type()
            pad = t.get_strpad() if isinstance(t, h5py.h5t.TypeStringID) else None
            out[(name, "<dataset>")] = (type(t).__name__, t.get_size(), pad, obj.id.get_create_plist().get_layout(), obj.shape)

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return out


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_h5_layout_matches_what_pandas_writes(tmp_path, unit):
    ids = ["773869", "767541", "1"]
    values = np.random.default_rng(0).random((7, 3))
    index = pd.date_range("2012-03-01", periods=7, freq="5min", unit=unit)
    pd.DataFrame(values, index=index, columns=ids).to_hdf(tmp_path / "pandas.h5", key="df", format="fixed")
    write_dcrnn_h5(tmp_path / "ours.h5", ids, values, start="2012-03-01", step_seconds=300, timestamp_unit=unit)
    theirs, ours = _layout_signature(tmp_path / "pandas.h5"), _layout_signature(tmp_path / "ours.h5")
    if unit == "ns":  # ours is old-style 'datetime64' (ns), as DCRNN's files; pandas 3 says [ns]
        theirs.pop(("df/axis1", "kind"))
        assert ours.pop(("df/axis1", "kind"))[-1] == "np.bytes_(b'datetime64')"
    assert ours == theirs


@pytest.mark.parametrize("name", TRAFFIC)
def test_adjacency_pickle_is_dcrnn_format(small, name):
    _, pkl_path = small[name]
    assert pkl_path.read_bytes()[:2] == b"\x80\x02"  # protocol 2
    with open(pkl_path, "rb") as f:
        ids, id_to_ind, adj = pickle.load(f, encoding="latin1")
    assert isinstance(ids, list) and all(isinstance(s, str) for s in ids) and len(set(ids)) == 30
    assert id_to_ind == {s: i for i, s in enumerate(ids)}
    assert adj.dtype == np.float32 and adj.shape == (30, 30)
    assert np.all(np.diag(adj) == 1.0)
    assert adj[adj > 0].min() >= ADJ_THRESHOLD and adj.max() <= 1.0


@pytest.mark.parametrize("name", ["chickenpox", "windmill-large", *TRAFFIC])
def test_project_reader_loads_every_synthetic_dataset(small, name):
    raw = load_raw(name, small[name][0].parent)
    try:
        assert (raw.num_timesteps, raw.num_nodes) == (500, 30)
        assert np.isfinite(raw.rows.read(0, 500)).all()
        assert raw.edge_index.max() < 30
    finally:
        raw.close()


def test_chickenpox_json(small):
    obj = json.loads(small["chickenpox"][0].read_text())
    assert list(obj) == ["edges", "node_ids", "FX"]
    fx, edges = np.array(obj["FX"]), np.array(obj["edges"])
    assert fx.shape == (500, 30) and edges.shape[1] == 2
    assert sorted(obj["node_ids"].values()) == list(range(30))
    assert abs(fx.mean()) < 1e-6 and abs(fx.std() - 1) < 1e-6
    pairs = set(map(tuple, edges.tolist()))
    assert all((b, a) in pairs for a, b in pairs)
    assert all((i, i) in pairs for i in range(30))


def test_chickenpox_real_size_uses_county_names(tmp_path):
    (path,) = generate("chickenpox", tmp_path, progress=False)
    obj = json.loads(path.read_text())
    assert np.array(obj["FX"]).shape == (521, 20)
    assert "BUDAPEST" in obj["node_ids"]


def test_windmill_json(small):
    obj = json.loads(small["windmill-large"][0].read_text())
    assert list(obj) == ["block", "edges", "weights"]
    block, edges, weights = np.array(obj["block"]), np.array(obj["edges"]), np.array(obj["weights"])
    assert block.shape == (500, 30) and edges.shape == (len(weights), 2)
    assert block.min() >= 0 and block.max() <= 1 and block.std() > 0.05
    assert weights.min() > 0 and weights.max() <= 1


# --- graph ----------------------------------------------------------------------------------


def test_neighbour_pairs_equal_brute_force():
    pos = sensor_layout(300, np.random.default_rng(1))
    i, j, d = neighbour_pairs(pos, 2.5)
    full = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    bi, bj = np.nonzero((full < 2.5) & ~np.eye(300, dtype=bool))
    assert set(zip(i.tolist(), j.tolist())) == set(zip(bi.tolist(), bj.tolist()))
    assert np.allclose(d, full[i, j])


def test_adjacency_is_thresholded_sparse_and_about_pems_bay_density():
    pos = sensor_layout(3000, np.random.default_rng(2))
    graph = gaussian_kernel_adjacency(pos, np.random.default_rng(3))
    assert graph.weight[graph.src != graph.dst].min() >= ADJ_THRESHOLD
    assert np.all(graph.weight[graph.src == graph.dst] == 1) and (graph.src == graph.dst).sum() == 3000
    assert 7.5 <= graph.num_edges / 3000 <= 10.5  # PeMS-Bay: 2,694 / 325 = 8.3
    forward = set(zip(graph.src.tolist(), graph.dst.tolist()))
    assert any((b, a) not in forward for a, b in forward)  # road distances are asymmetric


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_same_bytes_and_other_seeds_differ(tmp_path):
    a = generate("pems-bay", tmp_path / "a", seed=7, **SMALL)
    b = generate("pems-bay", tmp_path / "b", seed=7, **SMALL)
    c = generate("pems-bay", tmp_path / "c", seed=8, **SMALL)
    assert _values(a[0]).tobytes() == _values(b[0]).tobytes()
    assert _sha(a[1]) == _sha(b[1])
    assert not np.array_equal(_values(a[0]), _values(c[0]))
    ja = generate("windmill-large", tmp_path / "a", seed=7, **SMALL)
    jb = generate("windmill-large", tmp_path / "b", seed=7, **SMALL)
    jc = generate("windmill-large", tmp_path / "c", seed=8, **SMALL)
    assert _sha(ja[0]) == _sha(jb[0]) != _sha(jc[0])


def test_shorter_series_is_a_prefix_of_a_longer_one(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.traffic, "CHUNK_ELEMENTS", 1)  # one block per chunk: chunking is free
    short = generate("metr-la", tmp_path / "s", nodes=20, timesteps=700, progress=False)
    monkeypatch.undo()
    long = generate("metr-la", tmp_path / "l", nodes=20, timesteps=1500, progress=False)
    assert np.array_equal(_values(short[0]), _values(long[0])[:700])
    assert _sha(short[1]) == _sha(long[1])


# --- realism --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_weeks_paths(tmp_path_factory):
    """METR-LA-like: 40 sensors, three weeks of 5-minute speeds."""
    return generate("metr-la", tmp_path_factory.mktemp("weeks"), nodes=40, timesteps=3 * 2016, progress=False)


@pytest.fixture(scope="module")
def three_weeks(three_weeks_paths):
    return pd.read_hdf(three_weeks_paths[0], "df")


def test_missing_readings_are_five_to_eight_percent_isolated_and_in_runs(three_weeks):
    missing = three_weeks.to_numpy() == 0
    assert 0.05 <= missing.mean() <= 0.08
    before = np.vstack([np.zeros((1, 40), bool), missing[:-1]])
    after = np.vstack([missing[1:], np.zeros((1, 40), bool)])
    isolated = missing & ~before & ~after
    assert isolated.sum() > 100 and (missing & before).sum() > 1000  # both kinds
    speeds = three_weeks.to_numpy()[~missing]
    assert 55 < speeds.mean() < 68 and speeds.max() <= 85 and np.percentile(speeds, 1) < 40


def test_time_of_day_profile_beats_repeating_the_last_value_at_one_hour(three_weeks):
    x = three_weeks.to_numpy()
    horizon, steps_per_day = 12, 288
    tod = np.asarray(three_weeks.index.hour * 60 + three_weeks.index.minute) // 5
    weekend = (np.asarray(three_weeks.index.day_of_week) >= 5).astype(int)
    train_end, test_start = int(0.7 * len(x)), int(0.8 * len(x))
    profile = np.zeros((2, steps_per_day, x.shape[1]))
    for w in (0, 1):
        for k in range(steps_per_day):
            rows = x[:train_end][(tod[:train_end] == k) & (weekend[:train_end] == w)]
            seen = rows > 0
            profile[w, k] = (rows * seen).sum(0) / np.maximum(seen.sum(0), 1)
    t = np.arange(test_start, len(x) - horizon)
    target, last = x[t + horizon], x[t]
    predicted = profile[weekend[t + horizon], tod[t + horizon]]
    ok = (target > 0) & (last > 0)
    mae_last = np.abs(target - last)[ok].mean()
    mae_profile = np.abs(target - predicted)[ok].mean()
    assert mae_profile < 0.85 * mae_last, (mae_profile, mae_last)


def test_weekday_rush_hour_slows_traffic(three_weeks):
    x = three_weeks.to_numpy()
    hour = np.asarray(three_weeks.index.hour)
    weekday = np.asarray(three_weeks.index.day_of_week) < 5
    peak = x[weekday & (hour == 8)]
    night = x[weekday & (hour == 2)]
    assert np.mean(peak[peak > 0]) < np.mean(night[night > 0]) - 5


def test_speed_changes_spread_along_edges_with_a_lag(three_weeks_paths):
    """On one-way edges i -> j, changes at i now correlate with changes at j 10 min later more
    than the other way round: upstream sensors lead downstream ones."""
    h5_path, pkl_path = three_weeks_paths
    x = pd.read_hdf(h5_path, "df").to_numpy(copy=True)
    x[x == 0] = np.nan
    change = np.diff(x, axis=0)
    _, _, adj = pickle.load(open(pkl_path, "rb"), encoding="latin1")
    lag = 2

    def lagged_corr(a, b):
        a, b = change[:-lag, a], change[lag:, b]
        ok = ~np.isnan(a) & ~np.isnan(b)
        return np.corrcoef(a[ok], b[ok])[0, 1]

    src, dst = np.nonzero((adj > 0) & (adj.T == 0))
    forward = np.array([lagged_corr(i, j) for i, j in zip(src, dst)])
    backward = np.array([lagged_corr(j, i) for i, j in zip(src, dst)])
    assert len(src) >= 10
    assert forward.mean() > backward.mean() and (forward > backward).mean() > 0.6


# --- writing safely -------------------------------------------------------------------------


def test_refuses_to_overwrite_unless_asked(tmp_path):
    paths = generate("metr-la", tmp_path, **SMALL)
    before = _sha(paths[0])
    with pytest.raises(InputError, match="already exist.*overwrite=True"):
        generate("metr-la", tmp_path, seed=1, **SMALL)
    assert _sha(paths[0]) == before
    generate("metr-la", tmp_path, seed=1, overwrite=True, **SMALL)
    assert _sha(paths[0]) != before


def test_written_files_get_a_normal_file_mode(small):
    umask = os.umask(0o022)
    os.umask(umask)
    for path in small["pems-bay"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failure_midway_leaves_no_file_behind(tmp_path, monkeypatch):
    def broken(self, num_timesteps):
        yield 0, np.ones((10, self.n))
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic.traffic.TrafficSimulator, "chunks", broken)
    with pytest.raises(RuntimeError):
        generate("pems-bay", tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(nodes=0), "nodes must be"),
        (dict(timesteps=100), "timesteps must be an integer >= 240"),
        (dict(timestamp_unit="ms"), "timestamp unit"),
    ],
)
def test_bad_arguments_are_input_errors(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        generate("metr-la", tmp_path, **{**SMALL, **kwargs})
    with pytest.raises(InputError, match="unknown dataset"):
        generate("metr-la-2", tmp_path)


# --- command line ---------------------------------------------------------------------------


def _cli():
    spec = importlib.util.spec_from_file_location("make_synthetic", REPO / "scripts" / "make_synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--dataset", "metr-la", "--nodes", "-1"], "nodes must be"),
        (["--dataset", "metr-la", "--timesteps", "10"], ">= 240"),
        (["--dataset", "metr-la", "--nodes", "x"], "invalid int value"),
        (["--dataset", "metr-la", "--timestamp-unit", "ms"], "invalid choice"),
        ([], "required: --dataset"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert run_cli(_cli(), [*argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_cli_unwritable_data_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_cli(_cli(), ["--dataset", "metr-la", "--data-dir", str(blocker / "sub")]) == 2
    assert "cannot create data directory" in capsys.readouterr().err


def test_cli_writes_and_needs_force_to_overwrite(tmp_path):
    base = [sys.executable, str(REPO / "scripts" / "make_synthetic.py"), "--dataset", "chickenpox",
            "--nodes", "12", "--timesteps", "200", "--data-dir", str(tmp_path)]
    first = subprocess.run(base, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "chickenpox.json" in first.stdout and "200 time steps x 12 nodes" in first.stdout
    again = subprocess.run([*base, "--seed", "1"], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr and again.stderr.count("\n") == 1
    forced = subprocess.run([*base, "--seed", "1", "--force", "--quiet"], capture_output=True, text=True)
    assert forced.returncode == 0 and forced.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chickenpox.json"]


# --- the PGT JSON formats (Montevideo bus, Pedal Me, England COVID) ----------------------------

PGT_JSON = {"montevideo-bus": dict(nodes=30, timesteps=300), "pedalme": dict(nodes=6, timesteps=20),
            "england-covid": dict(nodes=9, timesteps=30)}


@pytest.fixture(scope="module")
def pgt_small(tmp_path_factory):
    root = tmp_path_factory.mktemp("pgt_json")
    return {name: generate(name, root / name, progress=False, **size)[0] for name, size in PGT_JSON.items()}


@pytest.mark.parametrize("name", list(PGT_JSON))
def test_pgt_json_synthetic_reads_back_through_the_real_reader(pgt_small, name):
    from pgti.data import prepare

    n, t = PGT_JSON[name]["nodes"], PGT_JSON[name]["timesteps"]
    raw = load_raw(name, pgt_small[name].parent)
    assert (raw.num_timesteps, raw.num_nodes) == (t, n)
    values = raw.rows.read(0, t)
    assert np.isfinite(values).all() and values.std() > 0
    assert raw.edge_index.shape[1] > 0 and 0 <= raw.edge_index.min() and raw.edge_index.max() < n
    data = prepare(name, pgt_small[name].parent, "lazy-index", raw=raw)
    assert min(data.split.size(s) for s in ("train", "val", "test")) >= 1
    data.close()


def test_montevideo_synthetic_is_a_node_link_graph_like_the_real_file(pgt_small):
    obj = json.loads(pgt_small["montevideo-bus"].read_text())
    real_node_keys = ["bus_stop", "in_degree", "lon", "lat", "y", "X", "id"]
    assert list(obj) == ["directed", "multigraph", "graph", "nodes", "links"]
    assert obj["directed"] is True and obj["multigraph"] is False and "name" in obj["graph"]
    stops = [node["bus_stop"] for node in obj["nodes"]]
    assert len(set(stops)) == 30
    in_degree = {s: 0 for s in stops}
    for link in obj["links"]:
        assert list(link) == ["weight", "source", "target"]
        assert link["source"] in in_degree and link["target"] in in_degree and link["weight"] > 0
        in_degree[link["target"]] += 1
    for node in obj["nodes"]:
        assert list(node) == real_node_keys and node["id"] == node["bus_stop"]
        assert node["in_degree"] == in_degree[node["bus_stop"]]
        assert node["X"] == {"y": node["y"]} and all(isinstance(v, int) and v >= 0 for v in node["y"])
    assert len(obj["links"]) >= 29  # consecutive stops of each line, plus junctions


def test_montevideo_synthetic_riders_follow_the_day(tmp_path):
    (path,) = generate("montevideo-bus", tmp_path, nodes=60, timesteps=24 * 14, progress=False)
    y = load_raw("montevideo-bus", tmp_path).rows.read(0, 24 * 14).reshape(14, 24, 60).sum(axis=2)
    weekdays = y[[d for d in range(14) if (d + 3) % 7 < 5]]  # 2020-10-01 was a Thursday
    assert weekdays[:, 2:4].mean() < 0.1 * weekdays[:, 7:9].mean()  # 2-4 am vs the morning peak


def test_pedalme_synthetic_layout(pgt_small):
    obj = json.loads(pgt_small["pedalme"].read_text())
    assert list(obj) == ["edges", "weights", "X"]
    edges, weights, x = np.array(obj["edges"]), np.array(obj["weights"]), np.array(obj["X"])
    assert edges.tolist() == [[i, j] for i in range(6) for j in range(6)]  # every pair, row-major
    assert np.all(weights[edges[:, 0] == edges[:, 1]] == 1.0) and weights.min() > 0 and weights.max() <= 1
    assert x.shape == (20, 6)


def test_england_covid_synthetic_layout(pgt_small):
    obj = json.loads(pgt_small["england-covid"].read_text())
    assert list(obj) == ["edge_mapping", "time_periods", "y"]
    assert obj["time_periods"] == 30 and np.array(obj["y"]).shape == (30, 9)
    index, weight = obj["edge_mapping"]["edge_index"], obj["edge_mapping"]["edge_weight"]
    assert list(index) == list(weight) == [str(t) for t in range(30)]
    sizes = [len(index[d]) for d in index]
    assert all(len(weight[d]) == len(index[d]) for d in index) and len(set(sizes)) > 1  # graphs change daily
    assert all({i for i, j in index[d] if i == j} == set(range(9)) for d in index)  # self loops every day


def test_short_real_series_set_their_own_minimum_length(tmp_path):
    from pgti.datasets.synthetic import min_timesteps

    assert min_timesteps(get_spec("montevideo-bus")) == 240  # 20 x L still fits in 744 hours
    assert min_timesteps(get_spec("pedalme")) == 11  # 35 weeks < 20 x 3: 6 windows split 4/1/1
    assert min_timesteps(get_spec("england-covid")) == 19
    with pytest.raises(InputError, match=r"timesteps must be an integer >= 11 for pedalme \(lags=3: each part of the default"):
        generate("pedalme", tmp_path, timesteps=10, progress=False)
    (path,) = generate("pedalme", tmp_path, progress=False)  # the real size is accepted
    assert np.array(json.loads(path.read_text())["X"]).shape == (35, 15)


@pytest.mark.parametrize("name", list(PGT_JSON))
def test_pgt_json_synthetic_is_deterministic(tmp_path, name):
    a = generate(name, tmp_path / "a", seed=4, progress=False, **PGT_JSON[name])[0]
    b = generate(name, tmp_path / "b", seed=4, progress=False, **PGT_JSON[name])[0]
    c = generate(name, tmp_path / "c", seed=5, progress=False, **PGT_JSON[name])[0]
    assert _sha(a) == _sha(b) != _sha(c)


def test_cli_writes_a_pgt_json_dataset(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_synthetic.py"), "--dataset", "england-covid",
         "--nodes", "5", "--timesteps", "19", "--data-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "england_covid.json" in proc.stdout and "19 time steps x 5 nodes" in proc.stdout
    raw = load_raw("england-covid", tmp_path)
    assert (raw.num_timesteps, raw.num_nodes) == (19, 5)


# --- one generator per format, bytes fixed ----------------------------------------------------------

# sha256 (first 16 hex digits) of each file generate(name, nodes=8, timesteps=min_timesteps(spec),
# seed=5) writes, as the generator wrote them before it was split by concern; for the HDF5
# series, of the bytes of /df/axis0, axis1, block0_items and block0_values (the file's object
# headers carry creation times). Under constraints.txt's numpy and torch. Published results rest
# on this data: a change here is a change of every synthetic dataset.
GOLDEN = {
    "chickenpox": ("7de75f436ceec477",),
    "montevideo-bus": ("9555103bd6fbd9f3",),
    "pedalme": ("82bb44e75b995690",),
    "england-covid": ("b2d7acf7e27112bf",),
    "windmill-large": ("f88e00c11670c9eb",),
    "metr-la": ("1add6912ee5c2faf", "f7b3eb7b2b9faf46"),
    "pems-bay": ("e8f16da82b0db24c", "f45d111ec9133f33"),
    "pems-all-la": ("c7452527729908a5", "225a9de0954be8d1"),
    "pems": ("c728b40ebdba72fb", "8ada43d905ff2a56"),
}


def _content_sha(path: Path) -> str:
    if path.suffix != ".h5":
        return _sha(path)[:16]
    with h5py.File(path, "r") as f:
        data = b"".join(f["df"][k][()].tobytes() for k in ("axis0", "axis1", "block0_items", "block0_values"))
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.mark.parametrize("name", list(GOLDEN))
def test_generated_files_are_byte_for_byte_those_of_the_published_generator(tmp_path, name):
    from pgti.datasets.synthetic import min_timesteps

    paths = generate(name, tmp_path, nodes=8, timesteps=min_timesteps(get_spec(name)), seed=5, progress=False)
    assert tuple(_content_sha(p) for p in paths) == GOLDEN[name]


def test_every_dataset_format_has_a_simulator():
    from pgti.datasets.registry import DATASETS

    assert {spec.format for spec in DATASETS.values()} <= set(synthetic.SYNTHESIZERS)
