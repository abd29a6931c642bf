#!/bin/bash
#PBS -N pgti-ddp
#PBS -l select=2:system=polaris
#PBS -l place=scatter
#PBS -l filesystems=home:eagle
#PBS -l walltime=01:00:00
#PBS -q debug-scaling
#PBS -A YOUR_PROJECT
#PBS -j oe
#
# Distributed training on Polaris (PBS): a Dask scheduler on the first node, one Dask worker per
# GPU on every node (mpiexec), then the client `python ddp_testing/$DRIVER --dask-cluster-file ...`.
#
#   qsub submit.sh                                   # settings below
#   qsub -v DATASET=pems,MODE=dask-index submit.sh   # or override them
#   LOCAL=1 bash submit.sh                           # the same launch on this machine, 2 CPU workers
#
# Every setting can be overridden from the environment. See docs/distributed.md.

NODES=${NODES:-2}                    # taken from $PBS_NODEFILE inside a job
GPUS_PER_NODE=${GPUS_PER_NODE:-4}    # Polaris: 4 x A100 per node; one worker (= rank) per GPU
DATASET=${DATASET:-pems-bay}
DRIVER=${DRIVER:-opt_pems_ddp.py}    # pems_ddp.py | opt_baseline.py | opt_pems_ddp.py
MODE=${MODE:-dask-index}
EPOCHS=${EPOCHS:-30}
BATCH_SIZE=${BATCH_SIZE:-64}         # per rank
DATA_DIR=${DATA_DIR:-data}
OUTPUT_DIR=${OUTPUT_DIR:-}           # default results/<dataset>/<label>/<timestamp>/
EXTRA_ARGS=${EXTRA_ARGS:-}           # more driver flags, e.g. "--model dcrnn-cell --max-batches 50"
CONDA_MODULE=${CONDA_MODULE:-conda}  # Polaris: module load conda; conda activate $CONDA_ENV
CONDA_ENV=${CONDA_ENV:-base}
INTERFACE=${INTERFACE:-hsn0}         # Slingshot interface for Dask traffic
LOCAL=${LOCAL:-0}
WORKERS=${WORKERS:-2}                # LOCAL=1: CPU workers on this machine

REPO=${PBS_O_WORKDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
cd "$REPO" || exit 1

if [ "$LOCAL" = 1 ]; then
    LAUNCHER=local NODES=1 WORKERS_PER_NODE=$WORKERS GPU=0 INTERFACE=
    if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
    LOG_DIR=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pgti-dask-XXXXXX")}
else
    LAUNCHER=pbs WORKERS_PER_NODE=$GPUS_PER_NODE GPU=${GPU:-1}
    [ -n "${PBS_NODEFILE:-}" ] && NODES=$(sort -u "$PBS_NODEFILE" | wc -l)
    module use /soft/modulefiles 2>/dev/null
    module load "$CONDA_MODULE"
    conda activate "$CONDA_ENV"
    export NCCL_NET_GDR_LEVEL=PHB NCCL_CROSS_NIC=1 NCCL_COLLNET_ENABLE=1
    export GLOO_SOCKET_IFNAME=${GLOO_SOCKET_IFNAME:-$INTERFACE}
    LOG_DIR=${LOG_DIR:-$REPO/dask-logs/${PBS_JOBID:-$$}}
fi
PYTHON=${PYTHON:-python}

# shellcheck source=scripts/dask_cluster_lib.sh
source scripts/dask_cluster_lib.sh
pgti_launch
