#!/usr/bin/env bash
# One call that runs every GPU path of the harness and measures GPU-index-batching, for a CUDA
# machine (sized for under 8 minutes on an H100/H200). See README.md, "GPU check".
#
#   bash scripts/gpu_check.sh OUTDIR              # on a CUDA machine
#   bash scripts/gpu_check.sh --dry-run OUTDIR    # anywhere: each check's CPU stand-in, tiny sizes
#
# Options:
#   --wheels DIR          wheels to install offline (default .whl; made by scripts/fetch_gpu_wheels.sh)
#   --budget-s S          time for everything (default 450; dry run 600)
#   --pems-timesteps T    length of the PeMS series (default 105120, the full size)
#   --keep-work           keep the scratch folder (data, run directories) and print where it is
#
# What it installs: dask, distributed and torch-geometric-temporal when the interpreter lacks them,
# into a scratch folder put first on PYTHONPATH (with this repository, so pgti needs no install);
# the machine's own torch is never replaced. From the wheels folder when there is one (no network
# needed: pip --no-index --no-deps); otherwise the same pinned wheels are fetched from the package
# index for this interpreter. The dry run makes or checks the wheels folder first.
#
# OUTDIR (new or empty) receives report.md, checks.csv, results.csv, log.txt and runs.tar.gz.
# It prints one PASS/FAIL (or SKIP) line per check and goes on when a check fails.
# Exit status: 0 every check passed, 1 a check failed, 2 bad arguments.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STARTED=$(date +%s.%N)
COMMAND="scripts/gpu_check.sh $*"

die() { echo "gpu_check: $*" >&2; exit 2; }
usage="usage: scripts/gpu_check.sh [--dry-run] [--wheels DIR] [--budget-s S] [--pems-timesteps T] [--keep-work] OUTDIR"

DRY=0
KEEP=0
WHEELS=""
BUDGET=""
PEMS_STEPS=""
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1; shift ;;
        --keep-work) KEEP=1; shift ;;
        --wheels|--budget-s|--pems-timesteps)
            [ $# -ge 2 ] || die "$1 needs a value ($usage)"
            case "$1" in
                --wheels) WHEELS=$2 ;;
                --budget-s) BUDGET=$2 ;;
                --pems-timesteps) PEMS_STEPS=$2 ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 ($usage)" ;;
        *) [ -z "$OUT" ] || die "one OUTDIR only, got $OUT and $1 ($usage)"
           OUT=$1; shift ;;
    esac
done
[ -n "$OUT" ] || die "missing OUTDIR ($usage)"
if [ -n "$BUDGET" ]; then
    [[ "$BUDGET" =~ ^[0-9]+$ ]] && [ "$BUDGET" -ge 60 ] || die "--budget-s must be a whole number of seconds >= 60, got $BUDGET"
else
    BUDGET=$([ "$DRY" = 1 ] && echo 600 || echo 450)
fi
if [ -n "$PEMS_STEPS" ]; then
    [[ "$PEMS_STEPS" =~ ^[0-9]+$ ]] && [ "$PEMS_STEPS" -ge 240 ] || die "--pems-timesteps must be a whole number >= 240, got $PEMS_STEPS"
fi
WHEELS_GIVEN=$([ -n "$WHEELS" ] && echo 1 || echo 0)
WHEELS=${WHEELS:-$REPO/.whl}
case "$WHEELS" in /*) ;; *) WHEELS=$PWD/$WHEELS ;; esac
if [ "$WHEELS_GIVEN" = 1 ] && [ "$DRY" = 0 ] && [ ! -d "$WHEELS" ]; then die "--wheels $WHEELS is not a folder"; fi
if [ -e "$OUT" ] && [ ! -d "$OUT" ]; then die "OUTDIR $OUT exists and is not a folder"; fi
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then die "OUTDIR $OUT is not empty; give a new or empty folder"; fi
mkdir -p "$OUT" 2>/dev/null && [ -w "$OUT" ] || die "cannot write to OUTDIR $OUT"
OUT=$(cd "$OUT" && pwd)

cd "$REPO" || die "cannot enter $REPO"
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=$REPO/.venv/bin/python
else PY=python3
fi
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter $PY (set PYTHON)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || die "$PY is not Python >= 3.10"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgti-gpu-check-XXXXXX") || die "cannot create a scratch folder"
cleanup() {
    if [ "$KEEP" = 1 ]; then echo "gpu_check: scratch folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- install: what this interpreter lacks, into $SITE, never touching its own packages ----------
SITE=$WORK/site
INSTALL_LOG=$WORK/install.log
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
install_start=$(date +%s)
install_result=PASS
install_detail=""

has_all() { "$PY" -c 'import dask.array, distributed, torch_geometric_temporal' >/dev/null 2>&1; }
from_folder() {  # install every wheel of $1 into $SITE with no index, no dependencies
    timeout 180 "$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$SITE" "$1"/*.whl
}
{
    if [ "$DRY" = 1 ]; then  # make (or check) the folder a GPU machine without network gets
        if ! timeout 120 bash scripts/fetch_gpu_wheels.sh --dest "$WHEELS"; then
            install_result=FAIL
            install_detail="could not prepare $WHEELS with scripts/fetch_gpu_wheels.sh (no network?); "
        fi
    fi
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        origin="$(find "$WHEELS" -maxdepth 1 -type f -name "*.whl" | wc -l) wheels from $WHEELS"
        from_folder "$WHEELS" || { install_result=FAIL; install_detail+="pip could not install $origin; "; }
    elif has_all; then
        origin="none needed: this interpreter has dask, distributed and torch-geometric-temporal"
    else  # a GPU node with network: the same pinned wheels, for this interpreter
        origin="the pinned wheels fetched for this interpreter"
        if PYTHON=$PY timeout 180 bash scripts/fetch_gpu_wheels.sh --native --dest "$WORK/wheels"; then
            from_folder "$WORK/wheels" || { install_result=FAIL; install_detail+="pip could not install $origin; "; }
        else
            install_result=FAIL
            install_detail+="no wheels folder ($WHEELS) and the package index is out of reach; make one with scripts/fetch_gpu_wheels.sh; "
        fi
    fi
    if [ -d "$SITE" ]; then
        export PYTHONPATH="$SITE:$PYTHONPATH"
        deps=$(timeout 120 "$PY" -m pgti.bench.gpu_check deps --site "$SITE" 2>&1)
        status=$?
        echo "$deps"
        if [ $status != 0 ] && [ ! -d "$WHEELS" ] && grep -q '^unmet' <<<"$deps"; then
            # A node with network but an older image: fetch what is missing too, once.
            mapfile -t reqs < <(grep '^unmet' <<<"$deps" | cut -f2)
            echo "fetching unmet requirements: ${reqs[*]}"
            if timeout 120 "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$WORK/wheels" "${reqs[@]}" \
                && from_folder "$WORK/wheels"; then
                deps=$(timeout 120 "$PY" -m pgti.bench.gpu_check deps --site "$SITE" 2>&1)
                status=$?
                echo "$deps"
            fi
        fi
        if [ $status != 0 ]; then
            install_result=FAIL
            install_detail+="$(grep -v '^ok' <<<"$deps" | tr '\t\n' ' ;' | cut -c1-400)"
        else
            install_detail+="$origin into $SITE; $(grep '^ok' <<<"$deps" | cut -f2)"
        fi
    else
        install_detail+="$origin"
    fi
} >"$INSTALL_LOG" 2>&1
install_seconds=$(( $(date +%s) - install_start ))

code=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
args=(run --out "$OUT" --work "$WORK" --python "$PY" --budget-s "$BUDGET" --started "$STARTED"
      --install-result "$install_result" --install-detail "$install_detail" --install-seconds "$install_seconds"
      --install-log "$INSTALL_LOG" --command "$COMMAND" --code "$code")
[ "$DRY" = 1 ] && args+=(--dry-run)
[ -n "$PEMS_STEPS" ] && args+=(--pems-timesteps "$PEMS_STEPS")
PYTHONUNBUFFERED=1 "$PY" -m pgti.bench.gpu_check "${args[@]}"
