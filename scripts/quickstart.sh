#!/usr/bin/env bash
# Set up, then train DCRNN on the shipped Hungary Chickenpox data with base and with index
# batching, and compare them: CSVs under results/quickstart/, plots and a summary table.
#   EPOCHS=20 bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=${PGTI_VENV:-.venv}/bin/python
OUT=results/quickstart
EPOCHS=${EPOCHS:-20}
rm -rf "$OUT"
for mode in base index; do
    echo "== chickenpox, --mode $mode, $EPOCHS epochs"
    "$PY" single_gpu_testing/chicken_pox_main.py --mode "$mode" --epochs "$EPOCHS" --output-dir "$OUT/$mode"
done
"$PY" scripts/plot_results.py "$OUT/base" "$OUT/index" --out "$OUT"
"$PY" scripts/summarize.py "$OUT" --out "$OUT/summary"
