#!/usr/bin/env bash
# Executes notebooks in full mode and writes each one that passes over its source with its
# outputs (figures, audio players, tables), its first cell stating how long the run took, so the
# notebooks read as documents before anyone runs them. CI still executes them in quick mode.
# Then checks the size budget (scripts/notebook_budget.py).
# Usage: scripts/render_notebooks.sh [notebooks/NN_name.ipynb ...]   (default: all of them)
# Needs scripts/setup.sh first. Full mode takes a while on 2 cores: each notebook's first
# cell says how long.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SMG_ROOT"
unset SMG_QUICK
if (($# == 0)); then set -- notebooks/*.ipynb; fi
# Writing back stores the audio players as MP3 (soundfile), which a venv set up with --ci lacks:
# install it before hours of notebooks, not after.
if ! "$SMG_VENV/bin/python" -c "import soundfile" 2>/dev/null; then
  "$SMG_VENV/bin/pip" install -q "$(grep '^soundfile==' scripts/requirements-notebooks.txt)" || die "could not install soundfile into $SMG_VENV"
fi
log "rendering $# notebook(s) in full mode (data: $SMG_DATA_DIR)"
"$SMG_VENV/bin/python" scripts/run_notebooks.py --write-back "$@"
"$SMG_VENV/bin/python" scripts/notebook_budget.py
