"""Distributed training (DDP ranks on Dask workers), on CPU with gloo and two workers.

The mode tests share one Dask cluster started from a scheduler file (the path the launch
scripts take); the launch scripts, the local-cluster path and a killed worker get their own.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from fixtures import write_traffic
from pgti.data.loader import prepare
from pgti.data.windows import Split
from pgti.distributed.cluster import Slot, select_gpu
from pgti.distributed.driver import DRIVERS, run_distributed
from pgti.engine.cli import build_ddp_parser, config_from_args
from pgti.engine.cli import ddp_main as main
from pgti.data.plan import Sharding
from pgti.data.samplers import BatchShuffledSampler, partition_bounds, rank_share
from pgti.engine.metrics import TargetUnits
from pgti.engine.session import seed_everything
from pgti.engine.trainer import Trainer
from pgti.nn import build_model
from pgti.observability.outputs import EPOCH_COLUMNS, STATS_COLUMNS

DATASET = "metr-la"
# 297 steps, L = 12: 274 windows, 192 for training = 2 ranks x 24 full batches of 4, so every
# per-rank batch is full and DDP's gradient average equals the mean over the global batch.
TIMESTEPS, NODES, BATCH, WORLD = 297, 6, 4, 2
STEPS, EPOCHS = 3, 2
MODEL = "dcrnn-cell"
MODES = [(driver, mode) for driver in DRIVERS for mode in DRIVERS[driver].modes]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    write_traffic(d, DATASET, nodes=NODES, timesteps=TIMESTEPS, missing=0.0)  # no masking
    return d


def _dask(module: str, *args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False"}  # as the launch scripts
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env)


@pytest.fixture(scope="module")
def scheduler_file(tmp_path_factory):
    """A scheduler and two single-threaded workers, joined through a scheduler file."""
    d = tmp_path_factory.mktemp("dask")
    path = d / "scheduler.json"
    procs = [_dask("distributed.cli.dask_scheduler", "--scheduler-file", str(path), "--host", "127.0.0.1",
                   "--port", "0", "--no-dashboard", log=d / "scheduler.log")]
    try:
        deadline = time.monotonic() + 60
        while not path.is_file():
            assert time.monotonic() < deadline, (d / "scheduler.log").read_text()
            time.sleep(0.2)
        for i in range(WORLD):
            procs.append(_dask("distributed.cli.dask_worker", "--scheduler-file", str(path), "--nthreads", "1",
                               "--nworkers", "1", "--no-dashboard", "--name", f"test-{i}",
                               "--local-directory", str(d), log=d / f"worker-{i}.log"))
        from distributed import Client

        with Client(scheduler_file=str(path), timeout=30) as client:
            client.wait_for_workers(WORLD, timeout=120)
        yield path
    finally:  # workers first: a worker that loses its scheduler while closing waits for it
        for group in (procs[1:], procs[:1]):
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


def ddp_args(driver: str, mode: str, data_dir: Path, out: Path, *extra: str):
    argv = ["--dataset", DATASET, "-m", mode, "--data-dir", str(data_dir), "--output-dir", str(out),
            "-e", str(EPOCHS), "-bs", str(BATCH), "--max-batches", str(STEPS), "--model", MODEL,
            "-np", str(WORLD), "--quiet", *extra]
    return config_from_args(build_ddp_parser(DRIVERS[driver]).parse_args(argv), set())


def reference_parameters(data_dir: Path, policy: str) -> dict[str, torch.Tensor]:
    """One process, pgti's Trainer, each step on the concatenation of the ranks' batches."""
    data = prepare(DATASET, data_dir, "index")
    seed_everything(0)
    model = build_model(MODEL, num_nodes=data.num_nodes, num_features=data.num_features,
                        edge_index=data.edge_index, edge_weight=data.edge_weight)
    trainer = Trainer(model, TargetUnits.of(data), data.lags)
    shards = [Sharding(policy, data.split, WORLD, r, BATCH, 0, STEPS) for r in range(WORLD)]
    for epoch in range(EPOCHS):
        per_rank = [s.starts("train", epoch) for s in shards]
        batches = [data.storage.gather(torch.from_numpy(np.concatenate(step))) for step in zip(*per_rank)]
        assert len(batches) == STEPS and all(len(x) == WORLD * BATCH for x, _ in batches)
        trainer.train_epoch(batches, len(batches))
    data.close()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --- samplers (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (7, 2), (3, 5)])
def test_rank_share_pads_and_strides_like_torch_distributed_sampler(n, world):
    from torch.utils.data.distributed import DistributedSampler

    for rank in range(world):
        expected = list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False))
        assert rank_share(n, world, rank, shuffle=False).tolist() == expected


def test_rank_share_shuffles_per_epoch_and_covers_every_window():
    n, world = 103, 4
    epochs = [np.concatenate([rank_share(n, world, r, shuffle=True, seed=7, epoch=e) for r in range(world)])
              for e in range(2)]
    for shares in epochs:
        assert len(shares) == 104 and set(shares.tolist()) == set(range(n))
    assert not np.array_equal(epochs[0], epochs[1])
    one = rank_share(n, 1, 0, shuffle=True, seed=7, epoch=0, pad=False)
    assert np.array_equal(np.sort(one), np.arange(n))  # one rank: the single-node permutation


def test_batch_shuffled_sampler_gives_equal_batch_counts_over_uneven_partitions():
    bounds = np.array([0, 37, 100, 101, 130])  # partitions of 37, 63, 1 and 29 windows
    samplers = [BatchShuffledSampler(bounds, r, 8, seed=3) for r in range(4)]
    for epoch in range(3):
        batches = [s.batches(epoch) for s in samplers]
        assert {len(b) for b in batches} == {8}  # ceil(63 / 8) for everyone
        for r, own in enumerate(batches):
            flat = np.concatenate(own)
            assert flat.min() >= bounds[r] and flat.max() < bounds[r + 1]  # only its own partition
            assert set(flat.tolist()) == set(range(bounds[r], bounds[r + 1]))  # all of it
            assert all(np.array_equal(b, np.arange(b[0], b[0] + len(b))) for b in own)  # consecutive
    assert [b[0] for b in samplers[1].batches(0)] != [b[0] for b in samplers[1].batches(1)]
    assert all(np.array_equal(a, b) for a, b in zip(samplers[1].batches(2), samplers[1].batches(2)))
    capped = [BatchShuffledSampler(bounds, r, 8, max_batches=3).batches(0) for r in range(4)]
    assert {len(b) for b in capped} == {3}
    assert np.array_equal(partition_bounds(10, 3), [0, 4, 7, 10])


def test_batch_shuffle_sharding_partitions_evaluation_splits_exactly():
    split = Split((0, 50), (50, 61), (61, 90))
    for name in ("val", "test"):
        starts = np.concatenate([np.concatenate(Sharding("batch-shuffle", split, 3, r, 4).starts(name, 0))
                                 for r in range(3)])
        lo, hi = getattr(split, name)
        assert sorted(starts.tolist()) == list(range(lo, hi))


def test_gpu_is_chosen_by_local_rank_or_by_the_devices_a_worker_sees():
    def slot(local_rank, visible):
        return Slot(5, "tcp://h:1", "h", local_rank, len(visible), tuple(visible))

    assert select_gpu(slot(2, [None] * 4), 4) == 2  # all see all GPUs: the local rank
    assert select_gpu(slot(2, ["0,1,2,3"] * 4), 4) == 2
    assert select_gpu(slot(2, ["0,1,2,3", "1,2,3,0", "2,3,0,1", "3,0,1,2"]), 4) == 0  # dask-cuda rotation
    assert select_gpu(slot(3, ["3"] * 4), 1) == 0  # pinned to one GPU
    with pytest.raises(RuntimeError, match="only 2 GPUs"):
        select_gpu(slot(3, [None] * 4), 2)


# --- every mode, on a cluster joined by scheduler file -------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("driver,mode", MODES)
def test_each_mode_trains_and_matches_one_process_on_the_same_global_batches(
        driver, mode, data_dir, scheduler_file, tmp_path):
    out = tmp_path / "run"
    args = ddp_args(driver, mode, data_dir, out, "--dask-cluster-file", str(scheduler_file), "--dist")
    result = run_distributed(args, DRIVERS[driver])

    stats = read_csv(out / "stats.csv")
    assert len(stats) == 1 and list(stats[0]) == list(STATS_COLUMNS)
    s = stats[0]
    assert s["world_size"] == str(WORLD) and s["mode"] == result.label
    assert all(math.isfinite(float(s[k])) for k in ("t_mae", "v_mae", "test_mae"))
    epochs = read_csv(out / "per_epoch_stats.csv")
    assert list(epochs[0]) == list(EPOCH_COLUMNS) and [r["epoch"] for r in epochs] == ["0", "1"]
    assert all(r["train_batches"] == str(STEPS) and math.isfinite(float(r["t_mae"])) for r in epochs)
    for rank in range(WORLD):
        rows = read_csv(out / f"system_stats_rank{rank}.csv")
        assert {"preprocessing", "training"} <= {r["Phase"] for r in rows}
    assert len({r["pid"] for r in result.ranks}) == WORLD

    # The replicas agree with each other and with one process on the concatenated batches.
    assert len({r["parameters"] for r in result.ranks}) == 1
    trained = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    reference = reference_parameters(data_dir, DRIVERS[driver].modes[mode].sharding)
    for name, value in reference.items():
        assert torch.allclose(trained[name], value, rtol=0, atol=1e-5), name

    epoch_bytes = [t["bytes"] for t in result.transfers if t["phase"] == "epoch"]
    if DRIVERS[driver].modes[mode].storage in ("dask-windows", "dask-series"):
        assert all(b > 0 for b in epoch_bytes)  # batches come from the cluster
    else:
        assert epoch_bytes == [0, 0]  # each rank's batches are local


def test_resume_continues_a_distributed_run_as_if_uninterrupted(data_dir, scheduler_file, tmp_path):
    cluster = ("--dask-cluster-file", str(scheduler_file), "--dist")
    full, part = tmp_path / "full", tmp_path / "part"
    run_distributed(ddp_args("pems_ddp.py", "index", data_dir, full, *cluster), DRIVERS["pems_ddp.py"])
    run_distributed(ddp_args("pems_ddp.py", "index", data_dir, part, *cluster, "-e", "1"), DRIVERS["pems_ddp.py"])
    resumed = ddp_args("pems_ddp.py", "index", data_dir, part, *cluster, "--resume", str(part))
    run_distributed(resumed, DRIVERS["pems_ddp.py"])

    def rows(run):
        return [(r["epoch"], r["t_mae"], r["v_mae"]) for r in read_csv(run / "per_epoch_stats.csv")]

    assert rows(part) == rows(full) and len(rows(part)) == EPOCHS
    config = __import__("json").loads((part / "config.json").read_text())
    assert [(r["from_epoch"], r["to_epochs"]) for r in config["resumes"]] == [(1, EPOCHS)]


def test_a_checkpoint_of_another_dataset_is_refused_before_a_cluster_starts(data_dir, tmp_path, capsys):
    from pgti.engine import cli as run_module

    other = tmp_path / "chickenpox"
    assert run_module.main("chickenpox", ["-e", "1", "--max-batches", "1", "--model", MODEL, "--quiet",
                                          "--output-dir", str(other)]) == 0
    capsys.readouterr()
    status = main("pems_ddp.py", ["--dataset", DATASET, "--data-dir", str(data_dir), "--resume", str(other),
                                  "-e", "3", "-bs", str(BATCH), "--model", MODEL, "--output-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "was made by a different run" in err[0] and "dataset: checkpoint 'chickenpox'" in err[0]
    assert not (tmp_path / "r").exists()


# --- launch scripts: the scheduler-file path for real ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("script", ["submit.sh", "submit_slurm.sh"])
def test_launch_script_runs_locally_through_a_scheduler_file(script, data_dir, tmp_path):
    out, logs = tmp_path / "run", tmp_path / "logs"
    env = {**os.environ, "LOCAL": "1", "PYTHON": sys.executable, "DATASET": DATASET, "DATA_DIR": str(data_dir),
           "DRIVER": "opt_pems_ddp.py", "MODE": "dask-index", "EPOCHS": "1", "OUTPUT_DIR": str(out),
           "LOG_DIR": str(logs), "EXTRA_ARGS": f"--model {MODEL} -bs {BATCH} --max-batches 2"}
    proc = subprocess.run(["bash", str(REPO / script)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--dask-cluster-file" in proc.stderr and "2 Dask workers ready" in proc.stderr
    assert read_csv(out / "stats.csv")[0]["world_size"] == "2"
    assert (out / "system_stats_rank0.csv").is_file() and (out / "system_stats_rank1.csv").is_file()
    assert not (logs / "scheduler.json").exists()  # the trap cleaned up


# --- failure: a worker dies mid-training ------------------------------------------------------


@pytest.mark.slow
def test_killed_worker_makes_the_client_exit_nonzero_quickly_keeping_csv_rows(data_dir, tmp_path):
    """Rank 1's process ends abruptly after 1 batch of the second epoch (a local cluster, the
    default path). The client must report it and exit non-zero, not hang in the collective."""
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "ddp_testing" / "pems_ddp.py"), "--dataset", DATASET, "-m", "index",
           "--data-dir", str(data_dir), "--output-dir", str(out), "-e", "3", "-bs", str(BATCH),
           "--max-batches", str(STEPS), "-np", "2", "--model", "faulty_model:DiesAfter",
           "--model-option", "die_rank=1", "--model-option", f"die_after={STEPS + 1}"]  # batch 2 of epoch 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    epochs_csv = out / "per_epoch_stats.csv"
    try:
        deadline = time.monotonic() + 180
        while not (epochs_csv.is_file() and len(read_csv(epochs_csv)) >= 1):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the first epoch never finished"
            time.sleep(0.2)
        first_epoch_done = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        assert time.monotonic() - first_epoch_done < 60
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rank 1" in errors[0] and "left the cluster" in errors[0], stderr
    assert "Traceback" not in stderr, stderr  # the workers' tracebacks go to worker_rank<r>.log
    rows = read_csv(epochs_csv)
    assert [r["epoch"] for r in rows] == ["0"] and math.isfinite(float(rows[0]["t_mae"]))
    for rank in range(2):
        assert len(read_csv(out / f"system_stats_rank{rank}.csv")) >= 2
    assert not (out / "stats.csv").exists()


@pytest.mark.slow
def test_ctrl_c_ends_with_one_line_and_status_130_keeping_csv_rows(data_dir, tmp_path):
    """Ctrl-C reaches the whole process group (client and local workers): the client alone
    handles it, so the terminal shows one line, not every worker's traceback."""
    import signal

    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "ddp_testing" / "pems_ddp.py"), "--dataset", DATASET, "-m", "dask-index",
           "--data-dir", str(data_dir), "--output-dir", str(out), "-e", "50", "-bs", str(BATCH),
           "--max-batches", str(STEPS), "--model", MODEL, "-np", "2"]
    # As a terminal starts it: SIGINT at its default. A test run started in the background (`&`
    # in a script) ignores SIGINT, and a child would inherit that and never see the Ctrl-C.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    epochs_csv = out / "per_epoch_stats.csv"
    try:
        deadline = time.monotonic() + 180
        while not (epochs_csv.is_file() and len(read_csv(epochs_csv)) >= 2):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "two epochs never finished"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr, stderr
    assert "terminate called" not in stderr and "Fatal Python error" not in stderr, stderr
    rows = read_csv(epochs_csv)
    assert len(rows) >= 2 and [r["epoch"] for r in rows] == [str(i) for i in range(len(rows))]
    assert not (out / ".pgti.lock").exists()


# --- bad input: one line, exit 2 -----------------------------------------------------------------


@pytest.mark.parametrize("driver,argv,message", [
    ("opt_baseline.py", ["-m", "index"], "invalid choice"),
    ("opt_pems_ddp.py", ["-m", "index"], "invalid choice"),
    ("pems_ddp.py", ["--gpu"], "no usable CUDA GPU"),
    ("pems_ddp.py", ["--dist"], "error: --dist: a multi-node run needs the scheduler file the launch script "
                                "writes (--dask-cluster-file)"),
    ("pems_ddp.py", ["--dask-cluster-file", "nowhere.json"], "error: --dask-cluster-file: nowhere.json does not exist"),
    ("pems_ddp.py", ["-np", "0"], "argument -np/--npar: must be a positive integer"),
])
def test_bad_flags_fail_with_one_line_and_status_2(driver, argv, message, data_dir, tmp_path, capsys):
    if argv == ["--gpu"] and torch.cuda.is_available():
        pytest.skip("a GPU is visible, so --gpu is valid input here")
    status = main(driver, ["--dataset", DATASET, "--data-dir", str(data_dir), "--output-dir",
                           str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert status == 2 and message in err


def test_missing_data_file_fails_before_starting_a_cluster(tmp_path, capsys):
    status = main("pems_ddp.py", ["--dataset", DATASET, "--data-dir", str(tmp_path / "nowhere"),
                                  "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: missing dataset file")


def test_workers_not_arriving_is_a_clear_error(data_dir, scheduler_file, tmp_path, capsys):
    status = main("pems_ddp.py", ["--dataset", DATASET, "--data-dir", str(data_dir), "--output-dir",
                                  str(tmp_path / "run"), "--dask-cluster-file", str(scheduler_file),
                                  "-np", "3", "--worker-timeout", "2", "-bs", str(BATCH)])
    err = capsys.readouterr().err
    assert status == 2 and "only 2 of the 3 Dask workers" in err


def _malloc_environment():
    return {key: os.environ.get(key) for key in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


def test_local_workers_get_glibcs_own_malloc_tuning(monkeypatch):
    """Not the nanny's MALLOC_TRIM_THRESHOLD_=65536, which made training steps up to 2x slower
    (pgti.distributed.cluster.WORKER_CONFIG); its one-thread settings stay."""
    from pgti.distributed.cluster import open_cluster

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with open_cluster(1, gpu=False, scheduler_file=None, debug=False) as client:
        seen = list(client.run(_malloc_environment).values())
    assert seen == [{"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}]


def test_launch_scripts_unset_the_nannys_malloc_trim_threshold():
    text = (REPO / "scripts" / "dask_cluster_lib.sh").read_text()
    line = next(line for line in text.splitlines() if "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=" in line)
    value = line.split(":-", 1)[1].rstrip("}").strip('"')
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"] = value
    code = ("import distributed.nanny as n; "
            "print(sorted(n._get_env_variables('distributed.nanny.pre-spawn-environ')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['MKL_NUM_THREADS', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS']"
