"""Code paths that differ between CPU and GPU only by the device, tested on the CPU through the
branch a GPU takes, and on CUDA as well where torch sees a GPU (those cases are marked ``gpu``;
``scripts/gpu_check.sh`` runs them on a GPU machine, and they skip elsewhere).

- ``IndexStorage`` fills a series held off the host chunk by chunk from small host buffers:
  ``build_in_place=False`` takes that branch on the CPU, and the "meta" device (shapes without
  data) takes it by default.
- ``PreparedData.batches`` copies base and lazy-index batches to the model's device, and gathers
  GPU-index batches where the series is.
- The trainer trains the same on any device.
- The benchmark's data timing drains the device queue around each batch.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import requires_gpu
from pgti.bench.tasks import _counting, task_memory
from pgti.data.loader import prepare
from pgti.data.storages.index import IndexStorage
from pgti.datasets.synthetic import generate
from pgti.engine.metrics import TargetUnits
from pgti.engine.trainer import Trainer
from pgti.errors import InputError
from pgti.nn import build_model

GPU = [pytest.mark.gpu, requires_gpu]
CHUNK_ROWS = 37  # forces several chunks, the last one ragged, on the small series below
BATCH = 8


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("metr-la")
    generate("metr-la", data_dir, nodes=7, timesteps=400, seed=3, progress=False)
    return data_dir


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr("pgti.data.storages.index.chunk_rows", lambda num_nodes: CHUNK_ROWS)


def index_storage(data, device="cpu", **kwargs) -> IndexStorage:
    return IndexStorage(data.raw.rows, data.features, data.lags, device, **kwargs)


# --- IndexStorage -------------------------------------------------------------------------------


@pytest.mark.parametrize("device, build_in_place", [("cpu", False), pytest.param("cuda", None, marks=GPU)])
def test_series_copied_chunk_by_chunk_has_the_bits_of_the_series_built_in_place(
        traffic, small_chunks, device, build_in_place):
    data = prepare("metr-la", traffic, "index")
    reference = index_storage(data, build_in_place=True)
    copied = index_storage(data, device, build_in_place=build_in_place)
    assert copied.series.device.type == device
    assert torch.equal(copied.series.cpu(), reference.series)
    starts = torch.tensor([0, 5, 100, data.split.starts("train")[-1]])
    for got, expected in zip(copied.gather(starts), reference.gather(starts)):
        assert got.device.type == device and torch.equal(got.cpu(), expected)
    data.close()


def test_series_off_the_host_is_read_in_chunks_never_whole(traffic, small_chunks, monkeypatch):
    data = prepare("metr-la", traffic, "index")
    rows = data.raw.rows
    reads = []
    read = rows.read
    monkeypatch.setattr(rows, "read", lambda t0, t1: reads.append((t0, t1)) or read(t0, t1))
    storage = index_storage(data, "meta")  # the default branch for any device but the CPU
    t, n = rows.num_timesteps, rows.num_nodes
    assert storage.series.device.type == "meta" and storage.series.shape == (t, n, data.num_features)
    assert reads[0][0] == 0 and reads[-1][1] == t
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(reads, reads[1:]))  # contiguous, in order
    assert max(t1 - t0 for t0, t1 in reads) == CHUNK_ROWS < t
    x, y = storage.gather(torch.tensor([3, 50]).to("meta"))
    assert x.shape == y.shape == (2, data.lags, n, data.num_features) and x.device.type == "meta"
    data.close()


def test_building_in_place_needs_host_memory(traffic):
    data = prepare("metr-la", traffic, "index")
    with pytest.raises(ValueError, match="build_in_place needs host memory"):
        index_storage(data, "meta", build_in_place=True)
    data.close()


# --- batches on the model's device --------------------------------------------------------------


def on_device(data_dir, mode: str, device: str):
    """``mode``'s data with the model on ``device``: through --gpu for CUDA; for "meta", the
    same fields a GPU run gets (index storage on the device, batches expected there)."""
    if device == "cuda":
        return prepare("metr-la", data_dir, mode, gpu=True)
    data = prepare("metr-la", data_dir, mode)
    storage = index_storage(data, device) if mode == "index" else data.storage
    return dataclasses.replace(data, storage=storage, device=torch.device(device))


@pytest.mark.parametrize("mode", ["base", "index", "lazy-index"])
@pytest.mark.parametrize("device", ["meta", pytest.param("cuda", marks=GPU)])
def test_batches_arrive_on_the_model_device(traffic, mode, device):
    host = prepare("metr-la", traffic, mode)
    moved = on_device(traffic, mode, device)
    # GPU-index keeps the series on the device (no per-batch copy); the others copy each batch.
    assert moved.storage.device.type == (device if mode == "index" else "cpu")
    pairs = list(zip(host.batches("train", BATCH, shuffle=True, seed=2, epoch=1),
                     moved.batches("train", BATCH, shuffle=True, seed=2, epoch=1)))
    assert len(pairs) == -(-host.split.size("train") // BATCH)
    for (xa, ya), (xb, yb) in pairs:
        assert xb.device.type == yb.device.type == device
        assert xb.shape == xa.shape and yb.shape == ya.shape and xb.dtype == torch.float32
        if device != "meta":
            assert torch.equal(xb.cpu(), xa) and torch.equal(yb.cpu(), ya)
    host.close()
    moved.close()


# --- training on a device -----------------------------------------------------------------------


STEPS, LR = 3, 1e-3


def train_steps(data, device):
    torch.manual_seed(0)
    model = build_model("dcrnn-cell", num_nodes=data.num_nodes, num_features=data.num_features,
                        edge_index=data.edge_index, edge_weight=data.edge_weight)
    trainer = Trainer(model.to(device), TargetUnits.of(data), data.lags, lr=LR, device=device)
    sums = trainer.train_epoch(data.batches("train", BATCH, shuffle=True, seed=1, max_batches=STEPS), STEPS)
    return sums.mae(), [p.detach().cpu() for p in model.parameters()]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=GPU)])
def test_index_training_on_a_device_matches_base_training_on_the_cpu(traffic, device):
    base = prepare("metr-la", traffic, "base")
    expected_mae, expected = train_steps(base, torch.device("cpu"))
    if device == "cuda":
        data = prepare("metr-la", traffic, "index", gpu=True)
    else:  # the series filled as on a GPU
        data = prepare("metr-la", traffic, "index")
        data = dataclasses.replace(data, storage=index_storage(data, build_in_place=False))
    mae, params = train_steps(data, data.device)
    if device == "cpu":  # identical batches, identical arithmetic
        assert mae == expected_mae
        assert all(torch.equal(a, b) for a, b in zip(params, expected))
    else:  # float32 kernels differ in rounding; Adam moves a parameter by at most lr a step
        assert mae == pytest.approx(expected_mae, rel=1e-3)
        diff = torch.cat([(a - b).abs().flatten() for a, b in zip(params, expected)])
        assert diff.max() <= 2 * STEPS * LR and (diff <= 1e-4).float().mean() >= 0.99
    base.close()
    data.close()


# --- the benchmark's data timing ----------------------------------------------------------------


def test_data_timing_drains_the_queue_before_and_after_each_batch():
    events = []

    def batches():
        for i in range(3):
            events.append(f"make {i}")
            yield i

    counted = _counting(batches(), sync=lambda: events.append("sync"))
    for i in counted:
        events.append(f"step {i}")
    assert counted.count == 3 and counted.data_s > 0
    assert events == ["sync", "make 0", "sync", "step 0", "sync", "make 1", "sync", "step 1",
                      "sync", "make 2", "sync", "step 2", "sync"]


@pytest.mark.parametrize("mode", ["index", pytest.param("gpu-index", marks=GPU),
                                  pytest.param("base-gpu", marks=GPU), pytest.param("lazy-index-gpu", marks=GPU)])
def test_benchmark_task_times_the_data_share_of_a_training_pass(traffic, mode):
    r = task_memory("metr-la", str(traffic), mode, batch_size=BATCH, max_batches=3, train=True, passes=2)
    assert r["batches"] == 3 and len(r["pass_s"]) == len(r["data_s"]) == 2
    assert all(0 < d < p for d, p in zip(r["data_s"], r["pass_s"]))
    if mode == "index":
        assert r["gpu_peak_allocated_bytes"] is None
    else:
        assert r["gpu_peak_allocated_bytes"] > 0
        if mode == "gpu-index":  # the series itself is on the GPU
            assert r["gpu_peak_allocated_bytes"] >= r["series_bytes"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_benchmark_gpu_modes_refuse_to_run_without_a_gpu(traffic):
    with pytest.raises(InputError, match="no usable CUDA GPU"):
        task_memory("metr-la", str(traffic), "base-gpu", batch_size=BATCH, max_batches=1)
