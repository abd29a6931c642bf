"""One DDP rank, run as a Dask task on its worker: :func:`train_rank`.

The task secedes from the worker's thread pool first: training runs for the whole job, and the
worker's thread must stay free for the cluster's own tasks (serving the chunks of the series or
of the windows that this worker holds to the other ranks).

Then: join the process group (gloo on CPU, NCCL on GPUs) through a TCPStore that rank 0 opens
on a free port of its own host, and whose port reaches the other ranks through a Dask
``Variable``; build this rank's session with the one session builder
(:func:`pgti.engine.session.build_session`: the mode's storage, this rank's shard of the
windows, the model wrapped in DDP, metric sums all-reduced); train with ``fit``; evaluate;
leave the process group on every way out.
"""

from __future__ import annotations

import datetime
import faulthandler
import gc
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from pgti.config import RunConfig
from pgti.data.loader import PreparedData
from pgti.data.modes import Mode
from pgti.data.windows import SPLITS
from pgti.distributed.cluster import Slot, select_gpu, worker_outgoing_bytes
from pgti.engine.checkpoint import CHECKPOINT, fingerprint, read_checkpoint
from pgti.engine.run import baseline_models, metric_columns
from pgti.engine.session import build_session
from pgti.engine.trainer import fit
from pgti.nn.baselines import TrainingStatistics
from pgti.observability.monitor import MemoryMonitor
from pgti.observability.outputs import EPOCH_COLUMNS, EPOCHS_FILE, CsvAppender


@dataclass
class RankJob:
    """Everything a rank needs; pickled once per rank into its Dask task."""

    job_id: str
    config: RunConfig
    label: str  # e.g. "opt-dask-index": the mode as written to stats.csv
    mode: Mode  # storage, device and sharding
    data: PreparedData  # no storage; no file reader where the series is in the cluster
    run_dir: str
    world: int
    master_host: str  # rank 0's host: its TCPStore listens there
    datasets: dict[str, str]  # published Dask datasets: "x"/"y" (windows) or "series"
    stats: TrainingStatistics  # the baselines' training statistics, computed by the client
    resume: str | None = None
    own_stderr: bool = False  # local cluster: the worker's stderr is the user's terminal; log to a file

    @property
    def topic(self) -> str:
        return f"pgti-log-{self.job_id}"


def system_stats_file(rank: int) -> str:
    return f"system_stats_rank{rank}.csv"


def worker_log_file(rank: int) -> str:
    return f"worker_rank{rank}.log"


def _stderr_to(path: Path) -> None:
    """Send this worker process's stderr (Python and C++ alike: fd 2) to ``path``, so that a
    worker torn down mid-collective (Ctrl-C, a dead peer) writes its dying words to its own log
    rather than over the client's one-line message."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)


def train_rank(job: RankJob, slot: Slot) -> dict:
    from distributed import get_client, secede

    secede()
    if job.own_stderr:
        _stderr_to(Path(job.run_dir) / worker_log_file(slot.rank))
    faulthandler.enable()  # a hard crash (abort, segfault) still leaves Python stacks in the worker's log
    client = get_client()
    log = _logger(job, slot.rank)
    with MemoryMonitor(Path(job.run_dir) / system_stats_file(slot.rank), phase="preprocessing") as monitor:
        t0 = time.perf_counter()
        sent = _Counter()
        device = _device(job.config.batching.gpu, slot)
        try:
            _join_process_group(job, slot, device, client)
            result = _train(job, slot, device, client, monitor, log, sent, t0)
        finally:
            # The model, DDP and the plan are gone with _train's frame; collect them before the
            # group goes, so that no gloo/NCCL object outlives it (or is torn down at exit).
            gc.collect()
            if dist.is_initialized():
                dist.destroy_process_group()
    result["memory"] = monitor.stats_fields()
    return result


def _train(job: RankJob, slot: Slot, device: torch.device, client, monitor: MemoryMonitor, log,
           sent: "_Counter", t0: float) -> dict:
    config, rank, run_dir = job.config, slot.rank, Path(job.run_dir)
    data = job.data
    session = build_session(config, data, storage=job.mode.storage, device=device, world=job.world, rank=rank,
                            sharding=job.mode.sharding, client=client, datasets=job.datasets, stats=job.stats,
                            wrap=lambda model: _wrap_ddp(model, device), reduce=_all_reduce_sum)
    trainer, plan, model = session.trainer, session.plan, session.model
    start_epoch, history = 0, []
    if job.resume:  # the client has checked it against this run's data and model
        start_epoch, history = read_checkpoint(job.resume).restore(trainer)
    dist.barrier()
    if job.mode.storage == "slab" and rank == 0:
        # Every rank holds its slab now: the cluster's copy of the series can go.
        for name in job.datasets.values():
            client.unpublish_dataset(name)
    preprocessing = time.perf_counter() - t0
    transfers = [{"phase": "preprocessing", "epoch": None, "bytes": sent.take()}]
    log(f"ready on {slot.host} ({device}) after {preprocessing:.1f} s; "
        f"{plan.num_batches('train')} training batches per epoch per rank")

    monitor.set_phase("training")
    epochs_csv = CsvAppender(run_dir / EPOCHS_FILE, EPOCH_COLUMNS) if rank == 0 else None

    def on_epoch(row: dict) -> None:
        dist.barrier()  # every rank has finished the epoch's transfers
        transfers.append({"phase": "epoch", "epoch": row["epoch"], "bytes": sent.take()})
        if epochs_csv is not None:
            epochs_csv.append(row)

    t1 = time.perf_counter()
    try:
        history = fit(trainer, plan, epochs=config.training.epochs, start_epoch=start_epoch, history=history,
                      annotate=lambda row: {"max_process_mem": monitor.peak_process_mb}, on_epoch=on_epoch,
                      checkpoint=run_dir / CHECKPOINT if rank == 0 else None,
                      fingerprint=fingerprint(data, config.model.name), log=log, patience=config.training.patience)
    finally:
        if epochs_csv is not None:
            epochs_csv.close()
        plan.close()
    training = time.perf_counter() - t1

    monitor.set_phase("evaluation")
    trainer.use_best()  # every rank kept the same best epoch: the validation MAE is all-reduced
    test = metric_columns(trainer.evaluate_with(baseline_models(data, job.stats, device), plan.batches("test", 0),
                                                plan.num_batches("test"), "test"))
    dist.barrier()
    transfers.append({"phase": "evaluation", "epoch": None, "bytes": sent.take()})
    return {
        "rank": rank,
        "address": slot.address,
        "host": slot.host,
        "local_rank": slot.local_rank,
        "pid": os.getpid(),
        "device": str(device),
        "preprocessing": preprocessing,
        "training": training,
        "history": history if rank == 0 else None,
        "test": test,
        "best_epoch": trainer.best_epoch,
        "transfers": transfers,
        "batches": {s: plan.num_batches(s) for s in SPLITS},
        "parameters": _parameter_digest(model),
    }


# --- pieces ------------------------------------------------------------------------------------


class _Counter:
    """Bytes this worker has sent (Dask's counter) since the last ``take``."""

    def __init__(self):
        self.mark = worker_outgoing_bytes()

    def take(self) -> int:
        now = worker_outgoing_bytes()
        delta, self.mark = now - self.mark, now
        return delta


def _logger(job: RankJob, rank: int):
    """Rank 0's messages go to the client through a Dask event topic (they reach it from any
    node); the other ranks stay silent."""
    if rank != 0:
        return lambda message: None
    from distributed import get_worker

    worker = get_worker()
    return lambda message: worker.log_event(job.topic, f"[rank 0] {message}")


def _device(gpu: bool, slot: Slot) -> torch.device:
    if not gpu:
        return torch.device("cpu")
    index = select_gpu(slot, torch.cuda.device_count())
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _join_process_group(job: RankJob, slot: Slot, device: torch.device, client) -> None:
    from distributed import Variable

    seconds = float(job.config.distributed.dist_timeout)
    timeout = datetime.timedelta(seconds=seconds)
    port = Variable(f"pgti-store-{job.job_id}", client=client)
    if slot.rank == 0:
        # Port 0: the OS picks a free port on rank 0's host, per job.
        store = dist.TCPStore(job.master_host, 0, job.world, is_master=True, timeout=timeout,
                              wait_for_workers=False)
        port.set(store.port)
    else:
        store = dist.TCPStore(job.master_host, int(port.get(timeout=seconds)), job.world,
                              is_master=False, timeout=timeout)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=store, rank=slot.rank, world_size=job.world, timeout=timeout)
    if slot.rank == 0:
        port.delete()


def _wrap_ddp(model: torch.nn.Module, device: torch.device):
    """DDP without the per-forward buffer broadcast: the buffers (the graph's supports) are
    constants, and without a collective per forward, ranks may evaluate different numbers of
    batches. torch >= 2.13 names the switch ``forward_sync_buffers``; older ones
    ``broadcast_buffers``."""
    import inspect

    ddp = torch.nn.parallel.DistributedDataParallel
    switch = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
              else "broadcast_buffers")
    return ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **{switch: False})


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t)
    return t


def _parameter_digest(model: torch.nn.Module) -> str:
    """Fingerprint of the parameters: replicas that stayed in sync have the same one."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(np.ascontiguousarray(p.detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]
