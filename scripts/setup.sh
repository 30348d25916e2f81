#!/usr/bin/env bash
# Idempotent set-up of everything the project needs on a fresh machine:
#   Debian tools, a Python venv with (pinned) Jupyter pieces, evcxr_jupyter (pinned) and its
#   kernel registration, and the fetched, checksum-verified data assets.
# Usage: scripts/setup.sh [--ci]   (--ci: only what headless tests need, no JupyterLab)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mode=full
[[ "${1:-}" == "--ci" ]] && mode=ci

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs) first"
command -v python3 >/dev/null || die "python3 not found: install Python 3.9+ first"
mkdir -p "$SMG_CACHE"

# --- Debian tools: dpkg-deb (asset fetch); fluidsynth, abcmidi, mma (music rendering); ----------
# chromium and chromium-driver (the studio's browser test)
need_apt=()
for pkg in dpkg ca-certificates fluidsynth abcmidi mma chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" \
    || die "apt-get could not install ${need_apt[*]}"
fi

# --- Python venv with Jupyter pieces --------------------------------------------------------
req="$SMG_ROOT/scripts/requirements-ci.txt"
[[ $mode == full ]] && req="$SMG_ROOT/scripts/requirements-notebooks.txt"
stamp="$SMG_VENV/.smg-$(cat "$SMG_ROOT"/scripts/requirements-*.txt "$req" | sha256sum | cut -c1-16)-$mode"
if [[ ! -f "$stamp" ]]; then
  log "creating Python environment $SMG_VENV ($mode)"
  [[ -x "$SMG_VENV/bin/python" ]] || python3 -m venv "$SMG_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$SMG_VENV/bin/pip" install -q --disable-pip-version-check -r "$req" || die "pip could not install $req (no network to PyPI?)"
  rm -f "$SMG_VENV"/.smg-*; touch "$stamp"
else
  log "Python environment up to date"
fi

# --- evcxr_jupyter (Rust kernel), pinned -----------------------------------------------------
if ! cargo install --list 2>/dev/null | grep -q "^evcxr_jupyter v$EVCXR_JUPYTER_VERSION:"; then
  log "installing evcxr_jupyter $EVCXR_JUPYTER_VERSION (about 10 minutes on 2 cores, once)"
  cargo install --locked --quiet evcxr_jupyter --version "$EVCXR_JUPYTER_VERSION" \
    || die "cargo install evcxr_jupyter failed (no network to crates.io?)"
else
  log "evcxr_jupyter $EVCXR_JUPYTER_VERSION already installed"
fi
kernel_dir="${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}/kernels/rust"
[[ -f "$kernel_dir/kernel.json" ]] || { log "registering the Rust kernel"; evcxr_jupyter --install >/dev/null; }
# The kernel's environment: a persistent evcxr build cache (warm runs in seconds instead of
# minutes); the toolchain's libstd for evcxr's dylibs (rustc writes a wrong relative rpath
# when the cache and the toolchain both live under $HOME, and dlopen then fails); and release
# speed for cells: evcxr writes `debug-assertions = true` and `overflow-checks = true` into the
# [profile.dev] of the crate it builds, which made HiFi-GAN 5.6x slower in a notebook than in
# the command line; cargo's CARGO_PROFILE_DEV_* variables override the manifest, and with
# incremental compilation off (and opt_level 3 in notebooks/evcxr.toml) cells run the models at
# the command line's speed (environment.md).
mkdir -p "$EVCXR_TMPDIR"
"$SMG_VENV/bin/python" - "$kernel_dir/kernel.json" "$EVCXR_TMPDIR" "$(rustc --print target-libdir)" <<'PY'
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

# --- data assets, converted weights, the small sound-event corpus -----------------------------
"$SMG_ROOT/scripts/fetch_assets.sh"
"$SMG_ROOT/scripts/convert_weights.sh"
log "building the smg command line"
cargo build --release --quiet -p smg-cli || die "cargo build -p smg-cli failed"
"$CARGO_TARGET_DIR/release/smg" data build --config small
log "setup complete"
