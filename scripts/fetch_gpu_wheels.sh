#!/usr/bin/env bash
# Download the pure-Python wheels that scripts/gpu_check.sh installs on a GPU machine that has no
# network: Dask, distributed, the packages of theirs that such a machine lacks, and
# torch-geometric-temporal (installed with --no-deps, as scripts/setup_env.sh does).
#
#   bash scripts/fetch_gpu_wheels.sh                 # into .whl/, for CPython 3.12 manylinux x86_64
#   bash scripts/fetch_gpu_wheels.sh --dest DIR      # elsewhere
#   bash scripts/fetch_gpu_wheels.sh --native        # for this interpreter ($PYTHON, else python3)
#
# Which packages: the target GPU machine (an H200 node, Python 3.12, no network) already holds torch (CUDA),
# torch-geometric, numpy, pandas, h5py, psutil, nvidia-ml-py, tqdm, matplotlib, click,
# cloudpickle, fsspec, jinja2, msgpack, packaging, pyyaml, sortedcontainers, toolz and urllib3;
# what Dask and distributed need beyond those is partd, locket, zict, tblib and tornado. Versions:
# dask, distributed and torch-geometric-temporal from constraints.txt, the others as tested
# together in the project's environment. gpu_check.sh checks every installed requirement against
# what the machine has and names any that is missing, to be added here.
#
# Idempotent: a folder that already holds exactly these wheels is left as it is, with no
# network access; wheels of other versions in it are removed (two versions stop the install).
# Exit status: 0 done, 1 download failed (no network?), 2 bad arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=.whl
NATIVE=0
PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
        --dest) [ $# -ge 2 ] || { echo "fetch_gpu_wheels: --dest needs a folder" >&2; exit 2; }
                DEST=$2; shift 2 ;;
        --dest=*) DEST=${1#--dest=}; shift ;;
        --native) NATIVE=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fetch_gpu_wheels: unknown argument $1 (usage: fetch_gpu_wheels.sh [--dest DIR] [--native])" >&2
           exit 2 ;;
    esac
done
[ -n "$DEST" ] || { echo "fetch_gpu_wheels: --dest is empty" >&2; exit 2; }

pinned() {  # the version constraints.txt pins for $1
    local version
    version=$(sed -n "s/^$1==//p" constraints.txt)
    [ -n "$version" ] || { echo "fetch_gpu_wheels: constraints.txt pins no version of $1" >&2; exit 2; }
    echo "$version"
}
DASK=$(pinned dask)
DISTRIBUTED=$(pinned distributed)
PGT=$(pinned torch-geometric-temporal)
WANTED=(
    "dask==$DASK"
    "distributed==$DISTRIBUTED"
    "torch-geometric-temporal==$PGT"
    partd==1.4.2
    locket==1.0.0
    zict==3.0.0
    tblib==3.2.2
    tornado==6.6.1
)

# A wheel's file name starts with its normalised name and version: name-version-....whl
wheel_stem() {  # dask==2026.8.0 -> dask-2026.8.0 ; torch-geometric-temporal -> torch_geometric_temporal
    local name=${1%%==*} version=${1#*==}
    echo "${name//-/_}-$version"
}

mkdir -p "$DEST" || { echo "fetch_gpu_wheels: cannot create $DEST" >&2; exit 2; }
keep=()
missing=()
for req in "${WANTED[@]}"; do
    stem=$(wheel_stem "$req")
    found=$(find "$DEST" -maxdepth 1 -type f -name "$stem-*.whl" | head -n 1)
    if [ -n "$found" ]; then keep+=("$(basename "$found")"); else missing+=("$req"); fi
done
# Remove wheels that are not wanted (other versions, leftovers): one version of each.
for whl in "$DEST"/*.whl; do
    [ -e "$whl" ] || continue
    name=$(basename "$whl")
    wanted=0
    for k in "${keep[@]}"; do [ "$k" = "$name" ] && wanted=1; done
    if [ "$wanted" = 0 ]; then
        for req in "${missing[@]}"; do
            case "$name" in "$(wheel_stem "$req")"-*) wanted=1 ;; esac
        done
    fi
    if [ "$wanted" = 0 ]; then
        echo "fetch_gpu_wheels: removing $name (not one of the pinned wheels)"
        rm -f "$whl"
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$NATIVE" = 1 ]; then
        target=()
    else
        target=(--python-version 3.12 --implementation cp
                --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
                --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    fi
    log=$(mktemp)
    if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: "${target[@]}" -d "$DEST" \
            "${missing[@]}" >"$log" 2>&1; then
        echo "fetch_gpu_wheels: could not download ${missing[*]} from the package index" \
             "(no network, or no such wheel): $(grep -v '^WARNING' "$log" | tail -n 1)" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi

count=0
bytes=0
for req in "${WANTED[@]}"; do
    n=$(find "$DEST" -maxdepth 1 -type f -name "$(wheel_stem "$req")-*.whl" | wc -l)
    if [ "$n" != 1 ]; then
        echo "fetch_gpu_wheels: expected one wheel of $req in $DEST, found $n" >&2
        exit 1
    fi
    count=$((count + 1))
done
for whl in "$DEST"/*.whl; do bytes=$((bytes + $(stat -c %s "$whl"))); done
echo "fetch_gpu_wheels: $count wheels in $DEST ($((bytes / 1024)) KiB)" \
     "$([ ${#missing[@]} -gt 0 ] && echo "downloaded: ${missing[*]}" || echo "(already there)")"
