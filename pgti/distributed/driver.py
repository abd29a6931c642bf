"""The distributed drivers (``ddp_testing/*.py``): cluster, data in the cluster, one DDP rank per
Dask worker, CSVs. :func:`run_distributed` runs a config (the command line is
:func:`pgti.engine.cli.ddp_main`; the benchmark calls it too).

The client (this process) checks the config, opens the run directory (config.json), computes
the normalisation statistics (``read_dataset``), puts the data where the mode's storage wants it
(its ``publish``), starts one
training task per worker and watches them. Rank 0 writes per_epoch_stats.csv as epochs end;
each rank writes its own system_stats_rank<r>.csv; the client writes stats.csv and
dask_transfers.csv at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pgti.config import RunConfig
from pgti.data.loader import PreparedData, read_dataset
from pgti.data.modes import MODE_NAMES, Mode
from pgti.data.storages import get_storage
from pgti.data.windows import SPLITS
from pgti.distributed.cluster import (
    open_cluster,
    read_scheduler_address,
    place_ranks,
    running_workers,
    transfer_totals,
)
from pgti.distributed.rank import RankJob, train_rank
from pgti.distributed.storage import RowShape
from pgti.engine.checkpoint import fingerprint
from pgti.engine.run import open_run, stats_row, summary_line, validate_config
from pgti.errors import InputError
from pgti.nn.baselines import training_statistics
from pgti.observability.outputs import STATS_FILE, CsvAppender, write_stats

TRANSFERS_FILE = "dask_transfers.csv"
TRANSFER_COLUMNS = ("phase", "epoch", "bytes", "train_batches", "val_batches")


@dataclass(frozen=True)
class Driver:
    name: str
    prefix: str  # run label = <prefix>-<mode>, the mode column of stats.csv
    description: str

    @property
    def modes(self) -> dict[str, Mode]:
        """This driver's mode names (pgti.data.modes.MODE_NAMES)."""
        return MODE_NAMES[self.name]


DRIVERS: dict[str, Driver] = {
    d.name: d
    for d in (
        Driver("pems_ddp.py", "ddp", "Distributed training (DDP on Dask workers)"),
        Driver("opt_baseline.py", "opt-baseline", "Baseline for opt_pems_ddp.py: standard DDP with global shuffling"),
        Driver("opt_pems_ddp.py", "opt", "Generalised distributed index-batching with batch-level shuffling"),
    )
}


class TrainingFailed(RuntimeError):
    """A rank failed or its worker left the cluster; the message says which and why."""


def check_distributed(config: RunConfig) -> None:
    validate_config(config)
    d = config.distributed
    if d.dist and not d.cluster_file:
        raise InputError("a multi-node run needs the scheduler file the launch script writes "
                         "(distributed.cluster_file)", field="distributed.dist")
    if d.cluster_file:
        read_scheduler_address(Path(d.cluster_file))


@dataclass
class RankMemory:
    """stats.csv's memory columns for a distributed run: the largest value over the ranks
    (each rank's own numbers are in system_stats_rank<r>.csv)."""

    fields: dict

    @classmethod
    def of(cls, ranks: list[dict]) -> "RankMemory":
        keys = ranks[0]["memory"].keys()
        values = {k: [r["memory"][k] for r in ranks if r["memory"][k] is not None] for k in keys}
        return cls({k: max(v) if v else None for k, v in values.items()})

    def stats_fields(self) -> dict:
        return dict(self.fields)


@dataclass
class DistributedRun:
    """What a finished distributed run measured (the CSVs hold the same)."""

    run_dir: Path
    label: str
    world: int
    ranks: list[dict]  # train_rank's result per rank, by rank
    transfers: list[dict]  # TRANSFER_COLUMNS rows
    preprocessing: float
    training: float
    total: float
    split_sizes: dict[str, int]  # windows per split


def run_distributed(config: RunConfig, driver: Driver, *, log: Callable[[str], None] | None = None,
                    args: dict | None = None) -> DistributedRun:
    """Run ``config`` (its ``distributed`` section set) with ``driver``'s mode of that name."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    check_distributed(config)
    name, ranks_wanted = config.batching.mode, config.distributed.npar
    if name not in driver.modes:
        raise InputError(f"{driver.name} has no mode {name!r}; choose one of {', '.join(driver.modes)}",
                         field="batching.mode")
    mode = driver.modes[name].on(config.batching.gpu)
    kind = get_storage(mode.storage)
    label = f"{driver.prefix}-{name}"
    with open_run(config, config.data.dataset, label=label, args=args, extra={
            "driver": driver.name, "label": label, "world_size": ranks_wanted, "storage": mode.storage,
            "sharding": mode.sharding}) as run:
        t0 = time.perf_counter()
        data = read_dataset(config.data.dataset, config.data.data_dir, gpu=False, ratios=config.data.split,
                            day_of_week=config.data.day_of_week)
        with contextlib.closing(data):
            data.check_batch_size(config.batching.batch_size)
            if data.split.size("train") < ranks_wanted:
                raise InputError(f"{ranks_wanted} ranks but only {data.split.size('train')} training windows",
                                 field="distributed.npar")
            data_fingerprint = fingerprint(data, config.model.name)
            stats = training_statistics(data)  # read here, where the rows are: the ranks get the table
            if run.checkpoint is not None:
                run.checkpoint.check_matches(data_fingerprint)  # before a cluster is started
            d = config.distributed
            with open_cluster(ranks_wanted, gpu=config.batching.gpu, scheduler_file=d.cluster_file,
                              debug=config.output.debug, worker_timeout=d.worker_timeout) as client:
                slots = place_ranks(client, ranks_wanted)
                run.begin(data_fingerprint)
                job_id = uuid.uuid4().hex[:12]
                before = sum(transfer_totals(client).values())
                datasets = kind.publish(client, data, slots, job_id) if kind.publish is not None else {}
                setup_bytes = sum(transfer_totals(client).values()) - before
                client_preprocessing = time.perf_counter() - t0
                job = RankJob(job_id, config, label, mode, _for_ranks(data, reads_file=kind.publish is None),
                              str(run.run_dir), ranks_wanted, slots[0].host, datasets, stats,
                              resume=str(run.checkpoint.path) if run.checkpoint else None,
                              own_stderr=not d.cluster_file)
                log(f"{label}: {ranks_wanted} ranks on {len({s.host for s in slots})} host(s); data ready in "
                    f"{client_preprocessing:.1f} s -> {run.run_dir}")
                ranks = _train_on_workers(client, job, slots, log)
        return _finish(run, label, ranks, setup_bytes, client_preprocessing,
                       {s: data.split.size(s) for s in SPLITS}, log)


def _train_on_workers(client, job: RankJob, slots: list, log) -> list[dict]:
    """One ``train_rank`` task per slot, pinned to its worker; rank 0's messages are relayed."""
    client.subscribe_topic(job.topic, lambda event: log(str(event[1])))
    futures = [
        client.submit(train_rank, job, slot, key=f"pgti-rank{slot.rank}-{job.job_id}", workers=[slot.address],
                      allow_other_workers=False, pure=False)
        for slot in slots
    ]
    try:
        return _supervise(client, futures, slots)
    finally:
        client.cancel([f for f in futures if not f.done()], force=True)
        client.unsubscribe_topic(job.topic)
        for name in job.datasets.values():
            if name in client.list_datasets():  # the slab layout's ranks drop theirs early
                client.unpublish_dataset(name)


def _finish(run, label: str, ranks: list[dict], setup_bytes: int, client_preprocessing: float,
            split_sizes: dict[str, int], log) -> DistributedRun:
    """dask_transfers.csv and stats.csv (from rank 0's history and test metrics)."""
    rank0 = ranks[0]
    if len({r["parameters"] for r in ranks}) != 1:
        log("warning: the ranks' final parameters differ (replicas out of sync): "
            + ", ".join(f"rank {r['rank']} {r['parameters']}" for r in ranks))
    transfers = _transfer_rows(setup_bytes, ranks)
    with CsvAppender(run.path(TRANSFERS_FILE), TRANSFER_COLUMNS) as out:
        for row in transfers:
            out.append(row)
    preprocessing = client_preprocessing + rank0["preprocessing"]
    memory = RankMemory.of(ranks)
    write_stats(run.path(STATS_FILE), stats_row(run, rank0["history"], rank0["test"], memory,
                                                preprocessing=preprocessing, training=rank0["training"],
                                                world_size=len(ranks), mode=label,
                                                best_epoch=rank0["best_epoch"]))
    total = time.perf_counter() - run.t_start
    epoch_bytes = [t["bytes"] for t in transfers if t["phase"] == "epoch"]
    log(f"{run.dataset} {label} x{len(ranks)}: {summary_line(rank0['test'])}, peak worker memory "
        f"{memory.fields['max_process_mem'] or 0:.0f} MB, Dask transfers "
        f"{sum(epoch_bytes) / max(1, len(epoch_bytes)) / 2**20:.1f} MiB/epoch, total {total:.1f} s -> {run.run_dir}")
    return DistributedRun(run.run_dir, label, len(ranks), ranks, transfers, preprocessing, rank0["training"],
                          total, split_sizes)


def _for_ranks(data: PreparedData, *, reads_file: bool) -> PreparedData:
    """What the ranks get of the prepared data: never a storage, and no file reader where the
    series is in the cluster (so an in-memory series is not shipped to every rank)."""
    raw = data.raw if reads_file else dataclasses.replace(data.raw, rows=RowShape(data.raw.rows))
    return dataclasses.replace(data, raw=raw, storage=None)


def _supervise(client, futures, slots, poll: float = 0.2) -> list[dict]:
    """Wait for every rank; fail fast, naming the rank, if one fails or its worker disappears."""
    while True:
        failed = [(slot, f) for slot, f in zip(slots, futures) if f.status in ("error", "cancelled", "lost")]
        lost = _lost(client, slots)
        if failed and not lost:  # a dead peer makes the others fail; give the scheduler a moment to notice
            deadline = time.monotonic() + 3.0
            while not lost and time.monotonic() < deadline:
                time.sleep(0.2)
                lost = _lost(client, slots)
        if lost:
            slot = lost[0]
            detail = ""
            if failed:
                exc = _exception(failed[0][1])
                detail = f"; rank {failed[0][0].rank} then failed with {type(exc).__name__}: {_first_line(exc)}"
            raise TrainingFailed(
                f"Dask worker {slot.address} (rank {slot.rank}) left the cluster during training "
                f"(its process died or was killed){detail}")
        if failed:
            slot, future = failed[0]
            exc = _exception(future)
            if isinstance(exc, InputError):
                raise exc
            raise TrainingFailed(f"rank {slot.rank} on Dask worker {slot.address} failed: "
                                 f"{type(exc).__name__}: {_first_line(exc)}") from exc
        if all(f.status == "finished" for f in futures):
            return client.gather(futures)
        time.sleep(poll)


def _lost(client, slots) -> list:
    alive = running_workers(client)
    return [s for s in slots if s.address not in alive]


def _exception(future) -> BaseException:
    try:
        return future.exception(timeout=10)
    except Exception as exc:  # noqa: BLE001 - cancelled or unreachable: report that instead
        return exc


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else "(no message)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _transfer_rows(setup_bytes: int, ranks: list[dict]) -> list[dict]:
    """Dask bytes moved per phase, summed over the ranks' workers (each counts what it sent)."""
    rows = [{"phase": "setup", "epoch": None, "bytes": setup_bytes}]
    batches = ranks[0]["batches"]
    for i, entry in enumerate(ranks[0]["transfers"]):
        row = {"phase": entry["phase"], "epoch": entry["epoch"],
               "bytes": sum(r["transfers"][i]["bytes"] for r in ranks)}
        if entry["phase"] == "epoch":
            row.update(train_batches=batches["train"], val_batches=batches["val"])
        rows.append(row)
    return rows
