"""The data core, as a specification: formats, safety, normalisation, storage equivalence."""

import json
import os
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, requires_gpu
from fixtures import write_traffic, write_windmill
from pgti.data import prepare
from pgti.data.features import compute_normaliser
from pgti.data.windows import num_windows, split_windows, validate_ratios
from pgti.datasets.formats import load_raw, read_adjacency
from pgti.datasets.registry import get_spec
from pgti.errors import InputError


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["us", "ns"])
@pytest.mark.parametrize("key", ["df", "speed"])
def test_pandas_written_hdf5_is_read_exactly(tmp_path, unit, key):
    h5, _ = write_traffic(tmp_path, unit=unit, key=key, timesteps=100)
    raw = load_raw("metr-la", tmp_path)
    frame = pd.read_hdf(h5, key)
    assert (raw.num_timesteps, raw.num_nodes) == frame.shape
    np.testing.assert_array_equal(raw.rows.read(0, 100), frame.to_numpy())
    np.testing.assert_array_equal(raw.rows.read(17, 23), frame.to_numpy()[17:23])
    assert raw.node_ids == list(frame.columns)
    expected_ns = frame.index.as_unit("ns").asi8
    np.testing.assert_array_equal(raw.timestamps_ns, expected_ns)
    raw.close()


def test_py2_pickle_with_latin1_strings_is_read(tmp_path):
    _, pkl = write_traffic(tmp_path)
    # it really is a Python-2-style pickle: plain pickle.load cannot decode it as text
    assert b"U\x06773869" in pkl.read_bytes()
    ids, id_to_ind, adj = read_adjacency(pkl)
    assert ids[0] == "773869" and id_to_ind["773869"] == 0
    assert adj.dtype == np.float32 and adj.shape == (6, 6)


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(pickle.dumps([["a"], {"a": 0}, Evil()], protocol=2))
    with pytest.raises(InputError, match=r"refusing to load .*adj_mx\.pkl.*(posix|os)\.system"):
        read_adjacency(path)
    assert not (tmp_path / "pwned").exists()


def test_dcrnn_original_file_names_are_accepted(tmp_path):
    write_traffic(tmp_path, "pems-bay", pkl_name="adj_mx_bay.pkl")
    raw = load_raw("pems-bay", tmp_path)
    assert raw.paths[1].name == "adj_mx_bay.pkl"
    raw.close()


def test_edges_follow_the_adjacency_with_weights(tmp_path):
    rng = np.random.default_rng(3)
    from fixtures import random_adjacency

    adj = random_adjacency(6, rng)
    write_traffic(tmp_path, adj=adj)
    raw = load_raw("metr-la", tmp_path)
    dense = np.zeros_like(adj)
    dense[raw.edge_index[0], raw.edge_index[1]] = raw.edge_weight
    np.testing.assert_array_equal(dense, adj)
    raw.close()


def test_shipped_chickenpox_is_the_real_data():
    raw = load_raw("chickenpox", REPO / "data")
    assert (raw.num_timesteps, raw.num_nodes) == (521, 20)
    assert raw.edge_index.shape == (2, 102)


# --- windows, splits, normalisation --------------------------------------------------------


def test_window_starts_and_default_split():
    n = num_windows(100, 4)
    assert n == 93  # starts 0 .. T - 2L
    s = split_windows(n)
    assert s.size("train") + s.size("val") + s.size("test") == n
    assert s.train == (0, 65) and s.test[1] == n


@pytest.mark.parametrize("ratios, match", [
    ((0.7, 0.2, 0.2), "sum to 1"),
    ((0.8, 0.3, -0.1), "positive"),
    ((0.5, 0.5), "three ratios"),
])
def test_bad_ratios_are_refused(ratios, match):
    with pytest.raises(InputError, match=match):
        validate_ratios(ratios)


def test_every_split_must_be_non_empty():
    with pytest.raises(InputError, match="split .* is empty"):
        split_windows(4, (0.7, 0.1, 0.2))


def _materialised_train_inputs(raw, lags):
    n = num_windows(raw.num_timesteps, lags)
    n_train = split_windows(n).size("train")
    values = raw.rows.read(0, raw.num_timesteps)
    return np.stack([values[s : s + lags] for s in range(n_train)]), n_train


def test_global_statistics_equal_those_of_materialised_training_inputs(tmp_path):
    write_traffic(tmp_path, timesteps=400)
    raw = load_raw("metr-la", tmp_path)
    x_train, n_train = _materialised_train_inputs(raw, 12)
    norm = compute_normaliser(raw.rows, n_train, 12, "global")
    assert norm.mean == pytest.approx(np.float32(x_train.mean()), rel=1e-6)
    assert norm.std == pytest.approx(np.float32(x_train.std()), rel=1e-6)
    raw.close()


def test_per_node_statistics_for_windmill(tmp_path):
    write_windmill(tmp_path)
    raw = load_raw("windmill-large", tmp_path)
    x_train, n_train = _materialised_train_inputs(raw, 8)
    norm = compute_normaliser(raw.rows, n_train, 8, "per-node")
    np.testing.assert_allclose(norm.mean, x_train.mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(norm.std, x_train.std(axis=(0, 1)), rtol=1e-6)


def test_features_are_float32_with_time_of_day(tmp_path):
    write_traffic(tmp_path, timesteps=300)
    data = prepare("metr-la", tmp_path, "index")
    series = data.storage.series
    assert series.dtype == torch.float32 and series.shape == (300, 6, 2)
    # 5-minute steps from midnight: time of day is step / 288
    np.testing.assert_allclose(series[:288, 0, 1].numpy(), np.arange(288) / 288, atol=1e-6)
    data.close()


def test_missing_value_marker_is_bit_exact(tmp_path):
    write_traffic(tmp_path, timesteps=300, missing=0.2)
    data = prepare("metr-la", tmp_path, "index")
    raw = data.raw.rows.read(0, 300)
    marker = data.missing_normalised()
    assert torch.equal(data.storage.series[..., 0] == marker, torch.from_numpy(raw == 0.0))
    data.close()


# --- storages ----------------------------------------------------------------------------------


def _epochs(data, epochs=2, batch_size=8):
    return [
        [(x.clone(), y.clone()) for x, y in data.batches(split, batch_size, shuffle=True, seed=5, epoch=e)]
        for e in range(epochs)
        for split in ("train", "val", "test")
    ]


@pytest.mark.parametrize("dataset", ["metr-la", "windmill-large", "chickenpox"])
def test_index_batches_equal_base_and_lazy_batches_bitwise(tmp_path, dataset):
    if dataset == "metr-la":
        write_traffic(tmp_path, timesteps=260)
        data_dir = tmp_path
    elif dataset == "windmill-large":
        write_windmill(tmp_path)
        data_dir = tmp_path
    else:
        data_dir = REPO / "data"
    runs = {m: _epochs(prepare(dataset, data_dir, m)) for m in ("base", "index", "lazy-index")}
    for mode in ("base", "lazy-index"):
        assert len(runs[mode]) == len(runs["index"])
        for batches_a, batches_b in zip(runs["index"], runs[mode]):
            assert len(batches_a) == len(batches_b)
            for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
                assert xa.shape == xb.shape and xa.dtype == xb.dtype == torch.float32
                assert torch.equal(xa.view(torch.int32), xb.view(torch.int32))
                assert torch.equal(ya.view(torch.int32), yb.view(torch.int32))


def test_batches_are_windows_of_the_series(tmp_path):
    write_traffic(tmp_path, timesteps=200)
    data = prepare("metr-la", tmp_path, "index")
    series = data.storage.series
    starts = torch.tensor([0, 5, 100])
    x, y = data.storage.gather(starts)
    for i, s in enumerate(starts.tolist()):
        assert torch.equal(x[i], series[s : s + 12]) and torch.equal(y[i], series[s + 12 : s + 24])


def test_shuffling_is_seeded_and_differs_between_epochs(tmp_path):
    data = prepare("chickenpox", REPO / "data", "index")
    first = lambda seed, epoch: next(data.batches("train", 4, shuffle=True, seed=seed, epoch=epoch))[0]  # noqa: E731
    assert torch.equal(first(1, 0), first(1, 0))
    assert not torch.equal(first(1, 0), first(1, 1))
    assert not torch.equal(first(1, 0), first(2, 0))


def test_lazy_index_keeps_the_series_on_disk(tmp_path):
    write_traffic(tmp_path, timesteps=300)
    data = prepare("metr-la", tmp_path, "lazy-index")
    assert data.storage.nbytes == 0 and not hasattr(data.storage, "series")
    data.close()


@requires_gpu
def test_gpu_index_batches_equal_cpu_batches_bitwise(tmp_path):
    write_traffic(tmp_path, timesteps=260)
    cpu = prepare("metr-la", tmp_path, "index")
    gpu = prepare("metr-la", tmp_path, "index", gpu=True)
    assert gpu.storage.series.is_cuda
    for (xa, ya), (xb, yb) in zip(cpu.batches("train", 8, shuffle=True, seed=1),
                                  gpu.batches("train", 8, shuffle=True, seed=1)):
        assert xb.is_cuda and torch.equal(xa, xb.cpu()) and torch.equal(ya, yb.cpu())


# --- bad input ---------------------------------------------------------------------------------


def test_series_shorter_than_two_windows(tmp_path):
    h5, _ = write_traffic(tmp_path, timesteps=20)
    with pytest.raises(InputError, match=rf"{h5}.*20 time steps, fewer than 2L = 24"):
        prepare("metr-la", tmp_path, "index")


def test_missing_file_names_the_file_and_the_remedy(tmp_path):
    with pytest.raises(InputError, match=rf"missing dataset file {tmp_path}/pems-bay.h5.*download_data.py.*make_synthetic.py"):
        load_raw("pems-bay", tmp_path)


def test_wrong_hdf5_key_names_the_keys_found(tmp_path):
    h5, _ = write_traffic(tmp_path)
    with h5py.File(h5, "a") as f:
        f.move("df", "traffic")
    with pytest.raises(InputError, match=rf"{h5} has no pandas series under the keys \['df', 'speed'\]; keys found: \['traffic'\]"):
        load_raw("metr-la", tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_values_are_refused(tmp_path, bad):
    h5, _ = write_traffic(tmp_path)
    with h5py.File(h5, "a") as f:
        f["df/block0_values"][250, 3] = bad
    with pytest.raises(InputError, match=rf"{h5} contains 1 NaN/inf values.*time step 250, sensor column 3"):
        prepare("metr-la", tmp_path, "index")


def test_adjacency_size_must_match_the_sensors(tmp_path):
    _, pkl = write_traffic(tmp_path, adj=np.eye(5, dtype=np.float32))
    with pytest.raises(InputError, match=rf"{pkl}: adjacency is 5 x 5 but .* has 6 sensors"):
        load_raw("metr-la", tmp_path)


def test_unknown_dataset_name():
    with pytest.raises(InputError, match="unknown dataset 'metr_la'; known datasets: chickenpox"):
        get_spec("metr_la")


def test_unknown_mode():
    with pytest.raises(InputError, match="unknown mode 'fast'"):
        prepare("chickenpox", REPO / "data", "fast")


def test_malformed_json(tmp_path):
    (tmp_path / "chickenpox.json").write_text(json.dumps({"edges": []}))
    with pytest.raises(InputError, match=r"chickenpox.json must be a JSON object with keys"):
        load_raw("chickenpox", tmp_path)


def test_batch_size_larger_than_a_split():
    data = prepare("chickenpox", REPO / "data", "index")
    with pytest.raises(InputError, match="60 is larger than the val split of chickenpox"):
        data.check_batch_size(60)


def test_legacy_timestamp_kind_without_unit_means_nanoseconds(tmp_path):
    h5, _ = write_traffic(tmp_path, unit="ns", timesteps=50)
    with h5py.File(h5, "a") as f:
        f["df/axis1"].attrs["kind"] = np.bytes_(b"datetime64")  # as pandas < 2 wrote it
    raw = load_raw("metr-la", tmp_path)
    expected = pd.date_range("2012-03-01", periods=50, freq="5min").as_unit("ns").asi8
    np.testing.assert_array_equal(raw.timestamps_ns, expected)
    raw.close()
