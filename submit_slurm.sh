#!/bin/bash
#SBATCH --job-name=pgti-ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --time=01:00:00
#SBATCH --partition=gpu
#SBATCH --account=YOUR_ACCOUNT
#SBATCH --output=pgti-ddp-%j.out
#
# Distributed training under SLURM: a Dask scheduler on the first node, one Dask worker per GPU on
# every node (srun), then the client `python ddp_testing/$DRIVER --dask-cluster-file ...`.
#
#   sbatch submit_slurm.sh                                        # settings below
#   sbatch --export=ALL,DATASET=pems,MODE=dask-index submit_slurm.sh
#   LOCAL=1 bash submit_slurm.sh                                  # same launch here, 2 CPU workers
#
# Every setting can be overridden from the environment. See docs/distributed.md.

NODES=${NODES:-2}                    # taken from $SLURM_JOB_NUM_NODES inside a job
GPUS_PER_NODE=${GPUS_PER_NODE:-4}    # one worker (= rank) per GPU
DATASET=${DATASET:-pems-bay}
DRIVER=${DRIVER:-opt_pems_ddp.py}    # pems_ddp.py | opt_baseline.py | opt_pems_ddp.py
MODE=${MODE:-dask-index}
EPOCHS=${EPOCHS:-30}
BATCH_SIZE=${BATCH_SIZE:-64}         # per rank
DATA_DIR=${DATA_DIR:-data}
OUTPUT_DIR=${OUTPUT_DIR:-}           # default results/<dataset>/<label>/<timestamp>/
EXTRA_ARGS=${EXTRA_ARGS:-}           # more driver flags, e.g. "--model dcrnn-cell --max-batches 50"
MODULES=${MODULES:-}                 # modules to load, e.g. "cuda/12.4 anaconda3"
CONDA_ENV=${CONDA_ENV:-}             # conda environment to activate (empty: the current one)
INTERFACE=${INTERFACE:-}             # network interface for Dask traffic (e.g. ib0); empty: default
LOCAL=${LOCAL:-0}
WORKERS=${WORKERS:-2}                # LOCAL=1: CPU workers on this machine

REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
cd "$REPO" || exit 1

if [ "$LOCAL" = 1 ]; then
    LAUNCHER=local NODES=1 WORKERS_PER_NODE=$WORKERS GPU=0 INTERFACE=
    if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
    LOG_DIR=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pgti-dask-XXXXXX")}
else
    LAUNCHER=slurm WORKERS_PER_NODE=$GPUS_PER_NODE GPU=${GPU:-1}
    NODES=${SLURM_JOB_NUM_NODES:-$NODES}
    # shellcheck disable=SC2086
    [ -n "$MODULES" ] && module load $MODULES
    if [ -n "$CONDA_ENV" ]; then
        eval "$(conda shell.bash hook)"
        conda activate "$CONDA_ENV"
    fi
    [ -n "$INTERFACE" ] && export GLOO_SOCKET_IFNAME=${GLOO_SOCKET_IFNAME:-$INTERFACE}
    LOG_DIR=${LOG_DIR:-$REPO/dask-logs/${SLURM_JOB_ID:-$$}}
fi
PYTHON=${PYTHON:-python}

# shellcheck source=scripts/dask_cluster_lib.sh
source scripts/dask_cluster_lib.sh
pgti_launch
