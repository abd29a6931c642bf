#!/usr/bin/env bash
# The quick start: set up .venv, then show what index-batching is for, in about 3 minutes.
#  1. Hungary Chickenpox (shipped, 20 x 521 weeks): DCRNN trained with base and with index
#     batching. Its series is 41 KB, so both runs peak alike: same losses, same memory.
#  2. A METR-LA-shaped synthetic set (207 sensors x 34,272 five-minute steps, L = 12) made by
#     scripts/make_synthetic.py: base materialises every (input, target) window pair, about
#     2L = 24 times the float32 series (T, N, F=2): 1.36 GB; index keeps the series once (57 MB);
#     lazy-index leaves it on disk. A few capped epochs each (--max-batches), with dcrnn-cell.
# Writes results/quickstart/{chickenpox,metr-la-synthetic}/<mode>/ (each run's CSVs), the three
# plots beside each set's runs, and results/quickstart/summary.{csv,md}. A rerun replaces the runs
# (--overwrite) and regenerates the synthetic data.
#   EPOCHS=20 bash scripts/quickstart.sh     # Chickenpox epochs (default 10)
#   bash scripts/quickstart.sh --dry-run     # print the commands, run nothing
set -euo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=
case "${1:-}" in
    "") ;;
    --dry-run) DRY_RUN=1 ;;
    *) echo "usage: bash scripts/quickstart.sh [--dry-run]" >&2; exit 2 ;;
esac

run() {  # print a command, then run it (only print it with --dry-run)
    echo "+ $*"
    if [ -z "$DRY_RUN" ]; then "$@"; fi
}

PY=${PGTI_VENV:-.venv}/bin/python
OUT=results/quickstart
EPOCHS=${EPOCHS:-10}
METR_LA_NODES=207
METR_LA_STEPS=34272          # METR-LA's real length; base then holds 1.36 GB of windows
METR_LA_EPOCHS=3
METR_LA_BATCHES=10           # --max-batches: batches per epoch and per evaluation
METR_LA_DATA=$OUT/synthetic-data

echo "quick start: started $(date '+%Y-%m-%d %H:%M:%S')"
run bash scripts/setup_env.sh

echo "== 1. chickenpox (shipped), pgt-dcrnn, $EPOCHS epochs: base and index"
for mode in base index; do
    run "$PY" single_gpu_testing/chicken_pox_main.py --mode "$mode" --epochs "$EPOCHS" \
        --output-dir "$OUT/chickenpox/$mode" --overwrite --quiet
done

echo "== 2. metr-la-shaped synthetic data ($METR_LA_NODES sensors x $METR_LA_STEPS steps), dcrnn-cell," \
    "$METR_LA_EPOCHS epochs of $METR_LA_BATCHES batches: base, index and lazy-index"
run "$PY" scripts/make_synthetic.py --dataset metr-la --nodes "$METR_LA_NODES" --timesteps "$METR_LA_STEPS" \
    --data-dir "$METR_LA_DATA" --force --quiet
for mode in base index lazy-index; do
    run "$PY" single_gpu_testing/metr_la_main.py --mode "$mode" --model dcrnn-cell --epochs "$METR_LA_EPOCHS" \
        --max-batches "$METR_LA_BATCHES" --data-dir "$METR_LA_DATA" \
        --output-dir "$OUT/metr-la-synthetic/$mode" --overwrite --quiet
done

echo "== plots and summary"
run "$PY" scripts/plot_results.py "$OUT/chickenpox/base" "$OUT/chickenpox/index" --out "$OUT/chickenpox"
run "$PY" scripts/plot_results.py "$OUT/metr-la-synthetic/base" "$OUT/metr-la-synthetic/index" \
    "$OUT/metr-la-synthetic/lazy-index" --out "$OUT/metr-la-synthetic"
run "$PY" scripts/summarize.py "$OUT" --out "$OUT/summary"
echo "quick start: finished $(date '+%Y-%m-%d %H:%M:%S') after ${SECONDS} s." \
    "Look at $OUT/metr-la-synthetic/peak_memory_runtime.png (memory) and mae_per_epoch.png (equal losses)."
