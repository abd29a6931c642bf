#!/usr/bin/env bash
# The whole benchmark suite behind RESULTS.md, one entry point.
#
#   scripts/bench_all.sh            # full sizes: ~35-40 min on a 2-core machine once the data exist
#                                   # (the model zoo at PeMS-Bay's shape alone ~24 min)
#   scripts/bench_all.sh --quick    # reduced sizes (at most 512 nodes x 8,064 steps): minutes
#
# Results go to results/bench/ (results/bench/quick/ with --quick). Synthetic data are generated
# on first use into $PGTI_BENCH_CACHE (default /work/bench-cache): full-size PeMS is a 9.4 GB file
# that takes ~13 min to write, PeMS-All-LA ~2 min; later runs reuse them.
# Extra arguments after --quick are passed to every script (e.g. --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PGTI_VENV:-.venv}/bin/python"
[ -x "$PY" ] || PY=python

QUICK=()
OUT=results/bench
if [ "${1:-}" = "--quick" ]; then
    QUICK=(--quick)
    OUT=results/bench/quick
    shift
fi
mkdir -p "$OUT"
LOG="$OUT/bench_all.log"

run() {
    echo "==> $*" | tee -a "$LOG"
    "$PY" "$@" 2>&1 | tee -a "$LOG"
}

: > "$LOG"
echo "start: $(date -Is)  quick: ${QUICK[*]:-no}" | tee -a "$LOG"
start=$(date +%s)
run scripts/bench_data.py "${QUICK[@]}" --out "$OUT" "$@"
run scripts/bench_memory.py "${QUICK[@]}" --out "$OUT" "$@"
run scripts/bench_speed.py "${QUICK[@]}" --out "$OUT" "$@"
run scripts/bench_zoo.py "${QUICK[@]}" --out "$OUT" "$@"
echo "end: $(date -Is)  ($(( $(date +%s) - start )) s)" | tee -a "$LOG"
