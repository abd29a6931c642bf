"""The distributed drivers (``ddp_testing/*.py``): flags, cluster, data in the cluster, one DDP
rank per Dask worker, CSVs. :func:`main` is their entry point, :func:`run_distributed` the
library call (the benchmark uses it).

The client (this process) validates the flags, opens the run directory (config.json), computes
the normalisation statistics (``prepare``), puts the data where the mode wants it, starts one
training task per worker and watches them. Rank 0 writes per_epoch_stats.csv as epochs end;
each rank writes its own system_stats_rank<r>.csv; the client writes stats.csv and
dask_transfers.csv at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from pgti.cli_util import add_bool_flag, positive_float, positive_int, run_cli
from pgti.data.loader import PreparedData, prepare
from pgti.data.windows import SPLITS
from pgti.distributed.cluster import (
    DEFAULT_WORKER_TIMEOUT,
    open_cluster,
    read_scheduler_address,
    place_ranks,
    running_workers,
    transfer_totals,
)
from pgti.distributed.rank import RankJob, train_rank
from pgti.distributed.storage import (
    RowShape,
    feature_series,
    partition_owners,
    placed_series,
    window_arrays,
)
from pgti.engine.checkpoint import fingerprint
from pgti.engine.run import build_parser, open_run, stats_row, summary_line, validate_args
from pgti.errors import InputError
from pgti.nn.baselines import training_statistics
from pgti.observability.outputs import STATS_FILE, CsvAppender, write_stats

TRANSFERS_FILE = "dask_transfers.csv"
TRANSFER_COLUMNS = ("phase", "epoch", "bytes", "train_batches", "val_batches")
DEFAULT_DIST_TIMEOUT = 300.0


@dataclass(frozen=True)
class Mode:
    layout: str  # where the series lives: windows | local-index | series | slab (rank.LAYOUTS)
    policy: str  # which windows each rank takes: global | batch-shuffle (plans.POLICIES)
    summary: str


@dataclass(frozen=True)
class Driver:
    name: str
    prefix: str  # run label = <prefix>-<mode>, the mode column of stats.csv
    description: str
    modes: dict[str, Mode]


_STANDARD = Mode("windows", "global",
                 "standard DDP: every window pair materialised in the cluster's memory, "
                 "DistributedSampler shuffling")
DRIVERS: dict[str, Driver] = {
    d.name: d
    for d in (
        Driver("pems_ddp.py", "ddp", "Distributed DCRNN training (DDP on Dask workers)", {
            "dask": _STANDARD,
            "index": Mode("local-index", "global",
                          "distributed index-batching: each rank holds the whole normalised series"),
            "dask-index": Mode("series", "global",
                               "the series held once in the cluster; each batch fetches only its rows"),
        }),
        Driver("opt_baseline.py", "opt-baseline", "Baseline for opt_pems_ddp.py: standard DDP with global shuffling", {
            "dask": _STANDARD,
        }),
        Driver("opt_pems_ddp.py", "opt", "Generalised distributed index-batching with batch-level shuffling", {
            "dask": Mode("windows", "batch-shuffle",
                         "window pairs in the cluster; each rank takes a contiguous partition, shuffled by batch"),
            "dask-index": Mode("slab", "batch-shuffle",
                               "each rank keeps its partition's slab of the series plus a 2L-1 halo; "
                               "shuffled by batch"),
        }),
    )
}


class TrainingFailed(RuntimeError):
    """A rank failed or its worker left the cluster; the message says which and why."""


def build_ddp_parser(driver: Driver) -> argparse.ArgumentParser:
    p = build_parser(None, prog=driver.name, modes=tuple(driver.modes), description=driver.description,
                     mode_help="; ".join(f"{name}: {m.summary}" for name, m in driver.modes.items()))
    add_bool_flag(p, "--dist", help="multi-node run: join the Dask cluster of --dask-cluster-file "
                                    "(started by submit.sh / submit_slurm.sh)")
    p.add_argument("-np", "--npar", type=positive_int, default=2,
                   help="number of DDP ranks, one per Dask worker (GPU workers with --gpu)")
    p.add_argument("--dask-cluster-file", default=None, metavar="PATH",
                   help="scheduler file of a running Dask cluster; without it a local cluster of "
                        "--npar workers is started")
    p.add_argument("--worker-timeout", type=positive_float, default=DEFAULT_WORKER_TIMEOUT,
                   help="seconds to wait for --npar workers to register")
    p.add_argument("--dist-timeout", type=positive_float, default=DEFAULT_DIST_TIMEOUT,
                   help="seconds a rank waits in a collective (torch.distributed timeout)")
    p.add_argument("--fail-after", default=None, help=argparse.SUPPRESS)  # tests: RANK:EPOCH:BATCHES
    return p


def check_ddp_args(args: argparse.Namespace) -> None:
    validate_args(args)
    if args.dist and not args.dask_cluster_file:
        raise InputError("--dist needs --dask-cluster-file (the scheduler file the launch script writes)")
    if args.dask_cluster_file:
        read_scheduler_address(Path(args.dask_cluster_file))
    if args.fail_after is not None:
        try:
            rank, epoch, count = (int(v) for v in args.fail_after.split(":"))
        except ValueError:
            raise InputError(f"--fail-after takes RANK:EPOCH:BATCHES, got {args.fail_after!r}") from None
        args.fail_after = (rank, epoch, count)


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


def run_distributed(args: argparse.Namespace, driver: Driver, *, log: Callable[[str], None] | None = None
                    ) -> DistributedRun:
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    check_ddp_args(args)
    mode = driver.modes[args.mode]
    label = f"{driver.prefix}-{args.mode}"
    with open_run(args, args.dataset, label=label, extra={
            "driver": driver.name, "label": label, "world_size": args.npar, "layout": mode.layout,
            "sharding": mode.policy}) as run:
        t0 = time.perf_counter()
        data = prepare(args.dataset, args.data_dir, "lazy-index", gpu=False, ratios=args.split,
                       day_of_week=args.day_of_week)
        with contextlib.closing(data):
            data.check_batch_size(args.batch_size)
            if data.split.size("train") < args.npar:
                raise InputError(f"-np {args.npar} ranks but only {data.split.size('train')} training windows")
            data_fingerprint = fingerprint(data, args.model)
            stats = training_statistics(data)  # read here, where the rows are: the ranks get the table
            if run.checkpoint is not None:
                run.checkpoint.check_matches(data_fingerprint)  # before a cluster is started
            with open_cluster(args.npar, gpu=args.gpu, scheduler_file=args.dask_cluster_file, debug=args.debug,
                              worker_timeout=args.worker_timeout) as client:
                slots = place_ranks(client, args.npar)
                run.begin(data_fingerprint)
                job_id = uuid.uuid4().hex[:12]
                before = sum(transfer_totals(client).values())
                datasets = _publish(client, mode.layout, data, job_id, slots)
                setup_bytes = sum(transfer_totals(client).values()) - before
                client_preprocessing = time.perf_counter() - t0
                job = RankJob(job_id, args, label, mode.layout, mode.policy, _for_ranks(data, mode.layout),
                              str(run.run_dir), args.npar, slots[0].host, datasets, stats,
                              resume=str(run.checkpoint.path) if run.checkpoint else None,
                              own_stderr=not args.dask_cluster_file, fail_after=args.fail_after)
                log(f"{label}: {args.npar} ranks on {len({s.host for s in slots})} host(s); data ready in "
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
    args, rank0 = run.args, ranks[0]
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


def _for_ranks(data: PreparedData, layout: str) -> PreparedData:
    """What the ranks get of the prepared data: never a storage, and no file reader where the
    series is in the cluster (so an in-memory series is not shipped to every rank)."""
    raw = data.raw if layout == "local-index" else dataclasses.replace(data.raw, rows=RowShape(data.raw.rows))
    return dataclasses.replace(data, raw=raw, storage=None)


def _publish(client, layout: str, data: PreparedData, job_id: str, slots: list) -> dict[str, str]:
    """Compute the mode's arrays on the workers, keep them there, and name them for the ranks."""
    from distributed import wait

    if layout == "local-index":
        return {}
    workers = len(slots)
    if layout == "slab":  # the raw rows of each rank's partitions, read on its own worker
        owners = partition_owners(data.split, workers, data.raw.num_timesteps)
        series = placed_series(client, data.raw.rows, [(a, b, slots[rank].address) for a, b, rank in owners])
    else:
        series = feature_series(data.raw.rows, data.features, workers)
    if layout == "windows":
        x, y = window_arrays(series, data.lags, data.split.test[1], workers)
        arrays = dict(zip(("x", "y"), client.persist([x, y])))
    else:
        arrays = {"series": client.persist(series)}
    wait(list(arrays.values()))
    names = {role: f"pgti-{job_id}-{role}" for role in arrays}
    client.publish_dataset(**{names[role]: array for role, array in arrays.items()})
    return names


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


def main(driver_name: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddp_testing/<driver>.py``."""
    driver = DRIVERS[driver_name]

    def _main(arguments):
        args = build_ddp_parser(driver).parse_args(arguments)
        run_distributed(args, driver)
        return 0

    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_cli(_main, arguments)
    except TrainingFailed as exc:
        if any(a in ("-d", "--debug") or a.startswith("--debug=") for a in arguments):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
