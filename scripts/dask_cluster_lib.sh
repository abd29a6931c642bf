# Launch logic shared by submit.sh (PBS) and submit_slurm.sh (SLURM). Sourced, not run.
#
# The caller sets, then calls pgti_launch:
#   LAUNCHER          pbs | slurm | local (LOCAL=1: background processes on this machine)
#   NODES             nodes in the job
#   WORKERS_PER_NODE  Dask workers (= DDP ranks) per node, one per GPU
#   DRIVER MODE DATASET EPOCHS BATCH_SIZE DATA_DIR OUTPUT_DIR GPU EXTRA_ARGS   the training run
#   PYTHON            the interpreter (modules/conda already set up by the caller)
#   LOG_DIR           where the scheduler file and the Dask logs go
#   INTERFACE         optional network interface for Dask (e.g. hsn0 on Polaris)
#   SCHEDULER_TIMEOUT WORKER_TIMEOUT   seconds to wait for the scheduler file / the workers
#
# The Dask scheduler runs on the first node (where the batch script runs); the workers run on
# every node through mpiexec (PBS) or srun (SLURM), or as local background processes. A trap
# stops everything this script started, by pid, on any exit.

pgti_pids=()

pgti_log() { echo "[pgti $(date +%H:%M:%S)] $*" >&2; }

pgti_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # Newest first: the client, then the workers, the scheduler last (a worker that loses its
    # scheduler while closing waits for it). Each gets 10 s to stop cleanly, then is killed.
    local i pid
    for ((i = ${#pgti_pids[@]} - 1; i >= 0; i--)); do
        pid=${pgti_pids[$i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "${SCHEDULER_FILE:-}"
    exit "$status"
}

pgti_interface_args() {
    if [ -n "${INTERFACE:-}" ]; then echo "--interface $INTERFACE"; fi
}

pgti_start_scheduler() {
    rm -f "$SCHEDULER_FILE"  # a stale file from an earlier job would point at a dead scheduler
    local host_args="--host 127.0.0.1"
    [ "$LAUNCHER" = local ] || host_args="$(pgti_interface_args)"
    # shellcheck disable=SC2086
    "$PYTHON" -m distributed.cli.dask_scheduler --scheduler-file "$SCHEDULER_FILE" --port 0 \
        --no-dashboard $host_args >"$LOG_DIR/scheduler.log" 2>&1 &
    pgti_scheduler_pid=$!
    pgti_pids+=("$pgti_scheduler_pid")
    pgti_log "scheduler (pid $pgti_scheduler_pid) on $(hostname), log $LOG_DIR/scheduler.log"
}

pgti_wait_for_scheduler_file() {
    local waited=0
    while [ ! -s "$SCHEDULER_FILE" ]; do
        if ! kill -0 "$pgti_scheduler_pid" 2>/dev/null; then
            pgti_log "the Dask scheduler exited; see $LOG_DIR/scheduler.log"
            tail -n 20 "$LOG_DIR/scheduler.log" >&2
            return 1
        fi
        if [ "$waited" -ge "$((SCHEDULER_TIMEOUT * 5))" ]; then
            pgti_log "no scheduler file $SCHEDULER_FILE after $SCHEDULER_TIMEOUT s"
            return 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
}

pgti_start_workers() {
    local total=$((NODES * WORKERS_PER_NODE))
    local worker=("$PYTHON" -m distributed.cli.dask_worker --scheduler-file "$SCHEDULER_FILE"
                  --nthreads 1 --nworkers 1 --no-dashboard --local-directory "$LOG_DIR/dask-worker-space")
    # shellcheck disable=SC2207
    worker+=($(pgti_interface_args))
    case "$LAUNCHER" in
        local)
            local i
            for i in $(seq 0 $((total - 1))); do
                "${worker[@]}" --name "local-$i" >"$LOG_DIR/worker-$i.log" 2>&1 &
                pgti_pids+=("$!")
            done
            ;;
        pbs)
            # One worker per GPU on every node; each maps itself to its GPU by its local rank.
            mpiexec -n "$total" --ppn "$WORKERS_PER_NODE" --hostfile "$PBS_NODEFILE" --cpu-bind none \
                "${worker[@]}" >"$LOG_DIR/workers.log" 2>&1 &
            pgti_pids+=("$!")
            ;;
        slurm)
            srun --nodes "$NODES" --ntasks "$total" --ntasks-per-node "$WORKERS_PER_NODE" --overlap \
                "${worker[@]}" >"$LOG_DIR/workers.log" 2>&1 &
            pgti_pids+=("$!")
            ;;
        *)
            pgti_log "unknown LAUNCHER $LAUNCHER"
            return 1
            ;;
    esac
    pgti_log "$total Dask workers ($NODES node(s) x $WORKERS_PER_NODE) starting via $LAUNCHER, logs in $LOG_DIR"
}

pgti_launch() {
    # No work stealing: ranks are pinned, and a stolen batch fetch would move a whole chunk.
    export DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING=${DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING:-False}
    # Workers get glibc's own malloc tuning, not the nanny's MALLOC_TRIM_THRESHOLD_=65536 (see
    # WORKER_CONFIG in pgti/distributed/cluster.py: up to 2x slower training steps with it).
    export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=${DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON:-"{'MALLOC_TRIM_THRESHOLD_': None}"}
    SCHEDULER_FILE=${SCHEDULER_FILE:-$LOG_DIR/scheduler.json}
    SCHEDULER_TIMEOUT=${SCHEDULER_TIMEOUT:-120}
    WORKER_TIMEOUT=${WORKER_TIMEOUT:-300}
    mkdir -p "$LOG_DIR"
    trap pgti_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local total=$((NODES * WORKERS_PER_NODE))
    pgti_start_scheduler
    pgti_wait_for_scheduler_file || return 1
    pgti_start_workers || return 1
    "$PYTHON" -m pgti.distributed.cluster --scheduler-file "$SCHEDULER_FILE" --workers "$total" \
        --timeout "$WORKER_TIMEOUT" || return 1

    local run=("$PYTHON" "ddp_testing/$DRIVER" --dask-cluster-file "$SCHEDULER_FILE" --dist -np "$total"
               --dataset "$DATASET" -m "$MODE" -e "$EPOCHS" -bs "$BATCH_SIZE" --data-dir "$DATA_DIR"
               --worker-timeout "$WORKER_TIMEOUT")
    [ -n "${OUTPUT_DIR:-}" ] && run+=(--output-dir "$OUTPUT_DIR")
    [ "${GPU:-0}" = 1 ] && run+=(--gpu)
    # shellcheck disable=SC2206
    run+=(${EXTRA_ARGS:-})
    pgti_log "client: ${run[*]}"
    # In the background, so that a signal to this script (walltime, scancel) reaches the trap now.
    "${run[@]}" &
    pgti_pids+=("$!")
    wait "$!"
}
