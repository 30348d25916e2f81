#!/usr/bin/env bash
# The project's main command (README): sets everything up on a fresh machine (tools, Jupyter,
# the Rust kernel, verified data), builds the `smg` command line, then
#   * with a browser and a display: opens JupyterLab on notebooks/00_quickstart.ipynb;
#   * headless (no DISPLAY, CI=true, or --headless): executes every notebook in full mode and
#     leaves the executed copies (with plots and players) in notebooks/output/executed/.
# Options: --headless, --lab (start JupyterLab without opening a browser), --quick (SMG_QUICK=1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SMG_ROOT"

ui=auto
for arg in "$@"; do
  case "$arg" in
    --headless) ui=headless ;;
    --lab) ui=lab ;;
    --quick) export SMG_QUICK=1 ;;
    *) die "unknown option $arg (use --headless, --lab or --quick)" ;;
  esac
done
if [[ $ui == auto ]]; then
  if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" && -z "${CI:-}" ]]; then ui=browser; else ui=headless; fi
fi

scripts/setup.sh
log "smg is at $CARGO_TARGET_DIR/release/smg"

case $ui in
  headless)
    log "executing the notebooks headless (mode: $([[ -n "${SMG_QUICK:-}" ]] && echo quick || echo full))"
    "$SMG_VENV/bin/python" scripts/run_notebooks.py notebooks/*.ipynb
    log "executed notebooks with their outputs: $SMG_OUTPUT_DIR/executed/"
    ;;
  lab)
    exec "$SMG_VENV/bin/jupyter" lab --no-browser --notebook-dir "$SMG_ROOT/notebooks" ;;
  browser)
    exec "$SMG_VENV/bin/jupyter" lab --notebook-dir "$SMG_ROOT/notebooks" 00_quickstart.ipynb ;;
esac
