#!/usr/bin/env bash
# Idempotent set-up of everything the project needs on a fresh machine:
#   Debian tools, a Python venv with (pinned) Jupyter pieces, evcxr_jupyter (pinned) and its
#   kernel registration, the fetched, checksum-verified data assets and converted weights, the
#   `smg` command line and the small sound-event corpus.
# Independent stages run side by side (downloads beside builds); each prints one line when it
# starts and one when it ends, and keeps the tools' output in $SMG_LOG_DIR (shown on failure).
# Usage: scripts/setup.sh [--ci]   (--ci: only what headless tests need, no JupyterLab)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mode=full
[[ "${1:-}" == "--ci" ]] && mode=ci

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs) first"
command -v python3 >/dev/null || die "python3 not found: install Python 3.9+ first"
mkdir -p "$SMG_CACHE"
log "[$(clock)] set-up ($mode); each stage's output goes to $SMG_LOG_DIR"

# Debian tools: dpkg-deb (asset fetch); fluidsynth, abcmidi, mma (music rendering); chromium
# and chromium-driver (the studio's browser test).
debian_packages() {
  local need=() pkg
  for pkg in dpkg ca-certificates fluidsynth abcmidi mma chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  ((${#need[@]})) || { echo "all present"; return 0; }
  echo "installing ${need[*]}"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" \
    || die "apt-get could not install ${need[*]}"
}

# A Python venv with the Jupyter pieces (pinned).
python_env() {
  local req="$SMG_ROOT/scripts/requirements-ci.txt" stamp
  [[ $mode == full ]] && req="$SMG_ROOT/scripts/requirements-notebooks.txt"
  stamp="$SMG_VENV/.smg-$(cat "$SMG_ROOT"/scripts/requirements-*.txt "$req" | sha256sum | cut -c1-16)-$mode"
  [[ -f "$stamp" ]] && { echo "up to date"; return 0; }
  [[ -x "$SMG_VENV/bin/python" ]] || python3 -m venv "$SMG_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$SMG_VENV/bin/pip" install --disable-pip-version-check -r "$req" || die "pip could not install $req (no network to PyPI?)"
  rm -f "$SMG_VENV"/.smg-*
  touch "$stamp"
}

# evcxr_jupyter (the Rust kernel), pinned: about 10 minutes on 2 cores, once.
evcxr_kernel() {
  if cargo install --list 2>/dev/null | grep -q "^evcxr_jupyter v$EVCXR_JUPYTER_VERSION:"; then
    echo "evcxr_jupyter $EVCXR_JUPYTER_VERSION already installed"
  else
    cargo install --locked evcxr_jupyter --version "$EVCXR_JUPYTER_VERSION" \
      || die "cargo install evcxr_jupyter failed (no network to crates.io?)"
  fi
}

# The kernel's registration and environment: a persistent evcxr build cache (warm runs in
# seconds instead of minutes); the toolchain's libstd for evcxr's dylibs (rustc writes a wrong
# relative rpath when the cache and the toolchain both live under $HOME, and dlopen then fails);
# and release speed for cells: evcxr writes `debug-assertions = true` and `overflow-checks =
# true` into the [profile.dev] of the crate it builds, which made HiFi-GAN 5.6x slower in a
# notebook than in the command line; cargo's CARGO_PROFILE_DEV_* variables override the
# manifest, and with incremental compilation off (and opt_level 3 in notebooks/evcxr.toml) cells
# run the models at the command line's speed (environment.md).
register_kernel() {
  # evcxr_jupyter --install writes to the user's Jupyter folder whatever JUPYTER_DATA_DIR says;
  # Jupyter's own lookup finds the spec wherever it is.
  local find_spec='from jupyter_client.kernelspec import KernelSpecManager as M; print(M().get_kernel_spec("rust").resource_dir)'
  "$SMG_VENV/bin/python" -c "$find_spec" >/dev/null 2>&1 || evcxr_jupyter --install
  mkdir -p "$EVCXR_TMPDIR"
  "$SMG_VENV/bin/python" - "$("$SMG_VENV/bin/python" -c "$find_spec")/kernel.json" "$EVCXR_TMPDIR" "$(rustc --print target-libdir)" <<'PY'
import json, sys
path, tmpdir, libdir = sys.argv[1:4]
spec = json.load(open(path))
env = {"EVCXR_TMPDIR": tmpdir, "LD_LIBRARY_PATH": libdir,
       "CARGO_PROFILE_DEV_DEBUG_ASSERTIONS": "false", "CARGO_PROFILE_DEV_OVERFLOW_CHECKS": "false",
       "CARGO_PROFILE_DEV_INCREMENTAL": "false"}
if spec.get("env") != env:
    spec["env"] = env
    json.dump(spec, open(path, "w"), indent=2)
PY
}

build_smg() { cargo build --release -p smg-cli || die "cargo build -p smg-cli failed"; }

# Data: the Debian packages come first (asset fetching uses apt-get and dpkg-deb).
data_assets() {
  run_stage "Debian packages" debian_packages &&
    run_stage "data assets (download and verify)" "$SMG_ROOT/scripts/fetch_assets.sh" &&
    run_stage "weights (convert to safetensors)" "$SMG_ROOT/scripts/convert_weights.sh"
}

# The corpus needs the data assets and the smg command line, not the kernel: it is built while
# evcxr_jupyter (the longest stage) still compiles.
corpus() {
  data_assets &
  local assets=$!
  run_stage "smg command line (cargo build --release)" build_smg || return 1
  wait "$assets" || return 1
  run_stage "small sound-event corpus" "$CARGO_TARGET_DIR/release/smg" data build --config small
}

corpus &
SMG_STAGE_PIDS+=($!)
run_stage_bg "Python environment ($mode)" python_env
run_stage_bg "evcxr_jupyter $EVCXR_JUPYTER_VERSION (Rust kernel)" evcxr_kernel
wait_stages
run_stage "Rust kernel registration" register_kernel
log "[$(clock)] set-up complete"
