"""What a fresh benchmark process does (run by :mod:`pgti.bench.child`, started by
:func:`pgti.bench.runner.run_task`). Each task returns a JSON-serialisable dict.

- ``generate``: write a synthetic dataset (so the parent never holds its arrays).
- ``memory``: peak RSS above the idle interpreter over preprocessing plus a pass over training
  batches (batch assembly only, or forward/backward of a model), the time of each part, and
  the time spent producing the batches (the data share of the pass).
- ``rates``: batch-assembly rates side by side in one process: our index batching, the peer's
  ``IndexDataset`` + default ``DataLoader`` collate (on our float32 series, and on the array
  its loader builds), and plain tensor copies of the same bytes out of the series.
"""

from __future__ import annotations

import itertools
import statistics
import time

import torch

from pgti.bench.rss import PeakRss
from pgti.config import BatchingConfig, ModelConfig, RunConfig, TrainingConfig
from pgti.data.loader import check_device, prepare, read_dataset
from pgti.data.modes import MODE_NAMES
from pgti.data.windows import num_windows, split_windows
from pgti.datasets.formats import load_raw

# The benchmarks' mode names (pgti.data.modes.MODE_NAMES["bench"]) and the peer's workflow. The
# model trains on the GPU in gpu-index (the series on the GPU: GPU-index-batching), base-gpu and
# lazy-index-gpu (each batch copied over, as the standard workflow does).
PEER = "peer"
MEMORY_MODES = (*MODE_NAMES["bench"], PEER)
GPU_MODES = tuple(name for name, mode in MODE_NAMES["bench"].items() if mode.device == "cuda")


def task_generate(name: str, data_dir: str, nodes: int | None, timesteps: int | None, seed: int = 0) -> dict:
    from pgti.datasets.synthetic import generate

    t0 = time.perf_counter()
    paths = generate(name, data_dir, nodes=nodes, timesteps=timesteps, seed=seed, progress=False)
    return {"paths": [str(p) for p in paths], "seconds": time.perf_counter() - t0}


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


class _PeerData:
    """The peer's training batches and what a training step needs, with our split and graph."""

    def __init__(self, dataset: str, data_dir: str, batch_size: int, seed: int):
        from pgti.bench.peer import peer_loader, peer_series

        self.raw = raw = load_raw(dataset, data_dir)
        self.lags = raw.spec.lags
        split = split_windows(num_windows(raw.num_timesteps, self.lags, raw.rows.source))
        self.series = peer_series(raw)
        self.loader = peer_loader(self.series, split.starts("train"), self.lags, batch_size, seed=seed)
        self.num_nodes = raw.num_nodes
        self.num_features = self.series.shape[-1]

    @property
    def nbytes(self) -> int:
        return int(self.series.nbytes)


def task_memory(
    dataset: str,
    data_dir: str,
    mode: str,
    batch_size: int = 64,
    max_batches: int | None = None,
    train: bool = False,
    model: str = "dcrnn-cell",
    seed: int = 0,
    threads: int | None = None,
    passes: int = 1,
) -> dict:
    """Peak memory of ``mode`` over preprocessing + ``passes`` passes of ``max_batches`` training
    batches each (all if None), the time of preprocessing and of each pass, and of each pass the
    seconds spent producing its batches (``data_s``; on a GPU, the queue is drained before each
    batch is asked for and after it arrives, so neither the step before nor the batch's own
    GPU work is misattributed).

    The first pass can be slower than the next for reasons outside the batching: glibc's malloc
    returns freed batch-sized buffers to the kernel until a large enough free raises its
    thresholds, and page faults are costly (in a VM especially). A second pass shows the
    steady state."""
    if mode not in MEMORY_MODES:
        raise ValueError(f"unknown mode {mode!r}")
    _set_threads(threads)
    gpu = mode in GPU_MODES
    if gpu:
        check_device(True)  # one clear line, before CUDA is touched
    if mode == PEER:
        import pandas  # noqa: F401 - PGT's traffic loaders import it with the module

        try:  # pandas imports PyTables on the first read_hdf: an import, not the loader's data
            import tables  # noqa: F401
        except ImportError:
            pass
        from pgti.bench.peer import index_dataset_class

        index_dataset_class()  # import PGT before the baseline, as the other modes import pgti
    if train:
        from pgti.engine.metrics import TargetUnits
        from pgti.engine.trainer import Trainer
        from pgti.engine.session import fit_model
        from pgti.nn import build_model
        from pgti.nn.baselines import TrainingStatistics

        _warm_up_training(model)
    if mode != PEER:
        from pgti.engine.session import build_plan, build_session
        from pgti.nn.baselines import training_statistics
    torch.manual_seed(seed)

    with PeakRss(gpu=gpu) as rss:
        t0 = time.perf_counter()
        if mode == PEER:
            data = _PeerData(dataset, data_dir, batch_size, seed)
            storage_bytes, lags = data.nbytes, data.lags
            edge_index = torch.from_numpy(data.raw.edge_index)
            edge_weight = torch.from_numpy(data.raw.edge_weight)

            def epoch_batches(epoch):  # the DataLoader reshuffles on each pass
                batches = itertools.islice(data.loader, max_batches)
                if train:  # the model is float32; PGT's traffic loaders give float64
                    return ((x.float(), y.float()) for x, y in batches)
                return batches

            if train:
                units = TargetUnits(torch.tensor(0.0), torch.tensor(1.0), None)
        else:  # the run's own session: storage, plan, model and trainer, as training builds them
            config = RunConfig(batching=BatchingConfig(mode=mode, gpu=gpu, batch_size=batch_size,
                                                       max_batches=max_batches),
                               model=ModelConfig(name=model), training=TrainingConfig(seed=seed))
            data = read_dataset(dataset, data_dir, gpu=gpu)
            storage = MODE_NAMES["bench"][mode].storage
            if train:  # the training statistics too, as a run reads them (models with fit use them)
                session = build_session(config, data, storage=storage, device=data.device,
                                        stats=training_statistics(data))
                plan = session.plan
            else:  # batch assembly alone: no model
                plan = build_plan(config, data, storage=storage, device=data.device)
            storage_bytes, lags = plan.storages["train"].nbytes, data.lags

            def epoch_batches(epoch):
                return plan.batches("train", epoch)

        if gpu:
            torch.cuda.synchronize()
        prep_s = time.perf_counter() - t0

        trainer = None
        if train and mode == PEER:
            net = build_model(model, num_nodes=data.num_nodes, num_features=data.num_features, lags=lags,
                              edge_index=edge_index, edge_weight=edge_weight)
            # the peer's loader has no training statistics: flat ones cost the same to use
            trainer = Trainer(fit_model(net, TrainingStatistics.flat(data.num_nodes)), units, lags)
        elif train:
            trainer = session.trainer
        pass_s, data_s, step_s, n_batches = [], [], [], 0
        for epoch in range(passes):
            t1 = time.perf_counter()
            counted = _counting(epoch_batches(epoch), sync=torch.cuda.synchronize if gpu else None)
            if trainer is not None:
                trainer.train_epoch(counted, total=max_batches or 0)
            else:
                for _ in counted:
                    pass
            if gpu:
                torch.cuda.synchronize()
            pass_s.append(time.perf_counter() - t1)
            data_s.append(counted.data_s)
            step_s.append(counted.step_s)
            n_batches = counted.count
        shape = (data.raw.num_timesteps, data.num_nodes, data.num_features)
        if mode != PEER:
            plan.close()
        data.raw.close()
    return {
        "dataset": dataset,
        "mode": mode,
        "num_timesteps": shape[0],
        "num_nodes": shape[1],
        "num_features": shape[2],
        "lags": lags,
        "series_bytes": shape[0] * shape[1] * shape[2] * 4,
        "storage_bytes": storage_bytes,
        "batch_size": batch_size,
        "batches": n_batches,
        "train": train,
        "model": model if train else None,
        "prep_s": prep_s,
        "batches_s": pass_s[0],
        "pass_s": pass_s,
        "data_s": data_s,
        "step_s": step_s,
        "params": None if trainer is None else sum(p.numel() for p in trainer.model.parameters()),
        "threads": torch.get_num_threads(),
        **rss.as_dict(),
    }


def _warm_up_training(model: str) -> None:
    """One training step of ``model`` on a 3-node ring, before the baseline: the first step
    imports ~800 modules lazily (TorchScript, sympy, ...; ~90 MiB), which are imports, not
    memory the data or the model at size need."""
    from pgti.engine.metrics import TargetUnits
    from pgti.engine.session import fit_model
    from pgti.engine.trainer import Trainer
    from pgti.nn import build_model
    from pgti.nn.baselines import TrainingStatistics

    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    net = build_model(model, num_nodes=3, num_features=1, lags=4, edge_index=edge_index, edge_weight=torch.ones(3))
    fit_model(net, TrainingStatistics.flat(3))  # a model that needs training statistics gets flat ones
    units = TargetUnits(torch.tensor(0.0), torch.tensor(1.0), None)
    x = torch.randn(2, 4, 3, 1)
    Trainer(net, units, 4).train_epoch([(x, x)], total=1)


class _counting:
    """Passes batches on, counting them, the seconds spent producing them (``data_s``) and the
    seconds from asking for each batch to asking for the next (``step_s``: producing it and
    the training step on it).

    ``sync`` (``torch.cuda.synchronize`` on a GPU) is called before each batch is asked for, so
    the previous step's queued GPU work is not counted as data, and after the batch arrives, so
    its own queued GPU work (a gather, a host-to-device copy) is."""

    def __init__(self, it, sync=None):
        self.it, self.count, self.data_s, self.sync = it, 0, 0.0, sync
        self.step_s: list[float] = []  # batch i asked for -> batch i + 1 asked for: producing and training it

    def __iter__(self):
        it = iter(self.it)
        asked = None
        while True:
            if self.sync is not None:
                self.sync()
            t0 = time.perf_counter()
            if asked is not None:
                self.step_s.append(t0 - asked)
            asked = t0
            try:
                item = next(it)
            except StopIteration:
                return
            if self.sync is not None:
                self.sync()
            self.data_s += time.perf_counter() - t0
            self.count += 1
            yield item


def _time_batches(batches, k: int) -> float:
    t0 = time.perf_counter()
    n = 0
    for _ in itertools.islice(batches, k):
        n += 1
    elapsed = time.perf_counter() - t0
    if n != k:
        raise RuntimeError(f"expected {k} batches, got {n}")
    return elapsed


def task_rates(
    dataset: str,
    data_dir: str,
    batch_size: int = 64,
    batches: int = 200,
    trials: int = 5,
    seed: int = 0,
    threads: int | None = None,
    peer_layout: bool = True,
) -> dict:
    """Batches per second of each way of assembling the same (B, L, N, F) batches, interleaved
    trial by trial (the order rotates) so that a noisy machine affects them alike."""
    from pgti.bench.peer import peer_loader, peer_series

    _set_threads(threads)
    data = prepare(dataset, data_dir, "index")
    series, lags = data.storage.series, data.lags
    starts = data.split.starts("train")
    k = max(1, min(batches, len(starts) // batch_size))
    rows = batch_size * lags
    blocks = _copy_blocks(rows, series.shape[0])
    series_np = series.numpy()

    def index_batches(trial):
        return data.batches("train", batch_size, shuffle=True, seed=seed, epoch=trial)

    def peer_same(trial):
        return iter(peer_loader(series_np, starts, lags, batch_size, seed=seed + trial))

    own = peer_series(data.raw) if peer_layout else None

    def peer_own(trial):
        return iter(peer_loader(own, starts, lags, batch_size, seed=seed + trial))

    def memcpy(trial):
        """X and Y as clones of random contiguous blocks of B x L rows in all (the same bytes)."""
        g = torch.Generator().manual_seed(seed + trial)
        while True:
            out = []
            for _ in range(2):  # X, Y
                parts = []
                for length in blocks:
                    a = int(torch.randint(0, series.shape[0] - length + 1, (1,), generator=g))
                    parts.append(series[a : a + length].clone())
                out.append(parts)
            yield out

    contestants = {"index": index_batches, "peer_same_data": peer_same, "memcpy": memcpy}
    if own is not None:
        contestants["peer_own_layout"] = peer_own
    names = list(contestants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for trial in range(trials):
        order = names[trial % len(names):] + names[: trial % len(names)]
        for name in order:
            it = contestants[name](trial)
            _time_batches(it, min(2, k))  # warm-up: first-touch, allocator, iterator set-up
            it = contestants[name](trial)
            rates[name].append(k / _time_batches(it, k))
    bandwidth = _memcpy_bandwidth()
    batch_bytes = 2 * rows * series.shape[1] * series.shape[2] * 4
    result = {
        "dataset": dataset,
        "num_timesteps": int(series.shape[0]),
        "num_nodes": int(series.shape[1]),
        "num_features": int(series.shape[2]),
        "lags": lags,
        "batch_size": batch_size,
        "batches_per_trial": k,
        "trials": trials,
        "batch_bytes": batch_bytes,
        "peer_own_dtype": None if own is None else str(own.dtype),
        "peer_own_contiguous": None if own is None else bool(own.flags["C_CONTIGUOUS"]),
        "large_copy_bytes_per_s": bandwidth,
        "threads": torch.get_num_threads(),
    }
    for name in names:
        result[f"{name}_batches_per_s"] = statistics.median(rates[name])
        result[f"{name}_all"] = rates[name]
    data.raw.close()
    return result


def _copy_blocks(rows: int, num_timesteps: int) -> list[int]:
    """Lengths of contiguous blocks that add up to ``rows`` rows, none longer than the series."""
    full, rest = divmod(rows, num_timesteps)
    return [num_timesteps] * full + ([rest] if rest else [])


def _memcpy_bandwidth(target_bytes: int = 256 << 20, trials: int = 5) -> float:
    """Bytes per second of a large copy into a preallocated tensor (median): this machine's
    copy bandwidth, without the page faults of fresh allocations."""
    src = torch.ones(target_bytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return target_bytes / statistics.median(times)


TASKS = {"generate": task_generate, "memory": task_memory, "rates": task_rates}
