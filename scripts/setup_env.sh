#!/usr/bin/env bash
# Create .venv (or use $PGTI_VENV) and install pgti with the versions in constraints.txt.
# Idempotent: a second run only checks. Takes about 2 minutes on a fresh machine.
#   PGTI_PYTHON  interpreter to build the venv from (default python3)
#   PGTI_VENV    venv directory (default .venv in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PGTI_VENV:-.venv}
PY=${PGTI_PYTHON:-python3}
STAMP="$VENV/.pgti-installed"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi
if [ -f "$STAMP" ] && cmp -s "$STAMP" <(cat constraints.txt pyproject.toml); then
    exit 0
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
echo "setup: installing torch (CPU) and pgti's dependencies (pinned by constraints.txt)"
"${PIP[@]}" -c constraints.txt torch
"${PIP[@]}" -c constraints.txt -e ".[test]"
# Its PyPI metadata asks for torch-sparse/torch-scatter, which don't build in pip's isolated
# builds; pgti.compat provides what it imports (see pgti/compat.py).
"${PIP[@]}" --no-deps "torch-geometric-temporal==$(sed -n 's/^torch-geometric-temporal==//p' constraints.txt)"
"$VENV/bin/python" -c "from pgti.compat import import_torch_geometric_temporal as t; t(); import pgti.nn"
cat constraints.txt pyproject.toml > "$STAMP"
echo "setup: done ($VENV)"
