#!/usr/bin/env bash
# The project's main command (README): sets everything up on a fresh machine (tools, Jupyter,
# the Rust kernel, verified data), builds the `smg` command line, then
#   * with a browser and a display: builds the notebook kernel once and opens JupyterLab on
#     notebooks/00_quickstart.ipynb as soon as it can run; the `smg` build and the small corpus
#     (which the other notebooks need) go on in the background at low priority;
#   * headless (no DISPLAY, CI=true, or --headless): executes every notebook in full mode and
#     leaves the executed copies (with plots and players) in notebooks/output/executed/.
# Each stage prints when it starts and ends, with the time since the start; the tools' own
# output is kept in $SMG_LOG_DIR and shown when a stage fails.
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

case $ui in
  headless)
    scripts/setup.sh
    log "smg is at $CARGO_TARGET_DIR/release/smg"
    log "[$(clock)] executing the notebooks headless (mode: $([[ -n "${SMG_QUICK:-}" ]] && echo quick || echo full))"
    "$SMG_VENV/bin/python" scripts/run_notebooks.py notebooks/*.ipynb
    log "[$(clock)] done; executed notebooks with their outputs: $SMG_OUTPUT_DIR/executed/"
    ;;
  lab | browser)
    scripts/setup.sh --kernel-first
    # The kernel compiles the prelude and candle the first time (minutes on 2 cores); doing it
    # here means the notebook's first cell answers in seconds.
    run_stage "notebook kernel (first build of the prelude)" "$SMG_VENV/bin/python" scripts/run_notebooks.py --warm-up notebooks/00_quickstart.ipynb
    log "[$(clock)] ready: opening JupyterLab on the quickstart (the other notebooks need the corpus: wait for \"smg and the small corpus are ready\" above)"
    lab=("$SMG_VENV/bin/jupyter" lab --notebook-dir "$SMG_ROOT/notebooks")
    # Jupyter refuses to start as root (containers, fresh cloud machines) without this flag.
    if [[ $(id -u) == 0 ]]; then lab+=(--allow-root); fi
    if [[ $ui == lab ]]; then exec "${lab[@]}" --no-browser; fi
    exec "${lab[@]}" 00_quickstart.ipynb ;;
esac
