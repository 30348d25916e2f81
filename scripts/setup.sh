#!/usr/bin/env bash
# Idempotent set-up of everything the project needs on a fresh machine:
#   Debian tools, a Python venv with (pinned) Jupyter pieces, evcxr_jupyter (pinned) and its
#   kernel registration, the fetched, checksum-verified data assets and converted weights, the
#   `smg` command line and the small sound-event corpus (and the medium one where the medium
#   models are shipped and SMG_QUICK is not set).
# Independent stages run side by side (downloads beside builds); each prints one line when it
# starts and one when it ends, and keeps the tools' output in $SMG_LOG_DIR (shown on failure).
# Usage: scripts/setup.sh [--ci | --kernel-first]
#   --ci            only what headless tests need, no JupyterLab
#   --kernel-first  return as soon as the quickstart can run (data assets, Python, the kernel);
#                   the `smg` build and the corpus go on in the background at low priority
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mode=full
case "${1:-}" in
  "") ;;
  --ci) mode=ci ;;
  --kernel-first) mode=kernel-first ;;
  --deferred) mode=deferred ;; # internal: the background half of --kernel-first
  *) die "unknown option $1 (use --ci or --kernel-first)" ;;
esac

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs) first"
command -v python3 >/dev/null || die "python3 not found: install Python 3.9+ first"
mkdir -p "$SMG_CACHE"
[[ $mode == deferred ]] || log "[$(clock)] set-up ($mode); each stage's output goes to $SMG_LOG_DIR"

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
  local env=full
  [[ $mode == ci ]] && env=ci
  [[ $env == full ]] && req="$SMG_ROOT/scripts/requirements-notebooks.txt"
  stamp="$SMG_VENV/.smg-$(cat "$SMG_ROOT"/scripts/requirements-*.txt "$req" | sha256sum | cut -c1-16)-$env"
  [[ -f "$stamp" ]] && { echo "up to date"; return 0; }
  [[ -x "$SMG_VENV/bin/python" ]] || python3 -m venv "$SMG_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$SMG_VENV/bin/pip" install --disable-pip-version-check -r "$req" || die "pip could not install $req (no network to PyPI?)"
  rm -f "$SMG_VENV"/.smg-*
  touch "$stamp"
}

# evcxr_jupyter (the Rust kernel), pinned: the longest stage (minutes on 2 cores), once.
evcxr_kernel() {
  if cargo install --list 2>/dev/null | grep -q "^evcxr_jupyter v$EVCXR_JUPYTER_VERSION:"; then
    echo "evcxr_jupyter $EVCXR_JUPYTER_VERSION already installed"
  else
    # In a build folder of its own (cargo's temporary one): sharing $CARGO_TARGET_DIR would make
    # it wait for the `smg` build's lock instead of compiling beside it.
    env -u CARGO_TARGET_DIR cargo install --locked evcxr_jupyter --version "$EVCXR_JUPYTER_VERSION" \
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

# Outside CI and quick mode, where the medium models are shipped, the notebooks' full mode and
# the studio use them and their corpus (`sound-medium`: ≈ 2.8 GB of packages, minutes to unpack and build).
corpus_size=small
[[ $mode == ci ]] || corpus_size="$(models_size)"
medium_corpus() {
  [[ $corpus_size == medium ]] || return 0
  run_stage "medium sound-event corpus" "$CARGO_TARGET_DIR/release/smg" data build --config medium --set sound
}

# Data: the Debian packages come first (asset fetching uses apt-get and dpkg-deb). The flag
# files tell a deferred corpus build (below) that the assets are ready, or will not be.
assets_flag="$SMG_CACHE/.assets-${SMG_ASSETS_RUN:-$$}"
data_assets() {
  if run_stage "Debian packages" debian_packages &&
    run_stage "data assets (download and verify)" "$SMG_ROOT/scripts/fetch_assets.sh" "$corpus_size" &&
    run_stage "weights (convert to safetensors)" "$SMG_ROOT/scripts/convert_weights.sh"; then
    if [[ $mode == kernel-first ]]; then touch "$assets_flag.ok"; fi
  else
    if [[ $mode == kernel-first ]]; then touch "$assets_flag.failed"; fi
    return 1
  fi
}

# The corpus needs the data assets and the smg command line, not the kernel: it is built while
# evcxr_jupyter (the longest stage) still compiles.
corpus() {
  data_assets &
  local assets=$!
  run_stage "smg command line (cargo build --release)" build_smg || return 1
  wait "$assets" || return 1
  run_stage "small sound-event corpus" "$CARGO_TARGET_DIR/release/smg" data build --config small
  medium_corpus
}

# --deferred (started by --kernel-first through low_priority.sh): the `smg` build, then, once the
# main set-up has the assets, the corpus; at the lowest priority, so that the kernel's build and
# its first compilation of the prelude keep the cores.
if [[ $mode == deferred ]]; then
  run_stage "smg command line (cargo build --release, in the background)" build_smg
  while [[ ! -e "$assets_flag.ok" && ! -e "$assets_flag.failed" ]]; do
    kill -0 "$SMG_ASSETS_RUN" 2>/dev/null || break
    sleep 2
  done
  [[ -e "$assets_flag.ok" ]] || die "the data assets did not arrive; run scripts/setup.sh again"
  rm -f "$assets_flag".*
  run_stage "small sound-event corpus (in the background)" "$CARGO_TARGET_DIR/release/smg" data build --config small
  medium_corpus
  log "[$(clock)] smg and the $corpus_size corpus are ready"
  exit 0
fi

if [[ $mode == kernel-first ]]; then
  rm -f "$assets_flag".*
  SMG_ASSETS_RUN=$$ "$SMG_ROOT/scripts/low_priority.sh" "$SMG_ROOT/scripts/setup.sh" --deferred </dev/null &
  log "[$(clock)] smg and the small corpus build in the background at low priority (stages below; logs in $SMG_LOG_DIR)"
  data_assets &
  SMG_STAGE_PIDS+=($!)
else
  corpus &
  SMG_STAGE_PIDS+=($!)
fi
run_stage_bg "Python environment ($([[ $mode == ci ]] && echo ci || echo full))" python_env
run_stage_bg "evcxr_jupyter $EVCXR_JUPYTER_VERSION (Rust kernel)" evcxr_kernel
wait_stages
run_stage "Rust kernel registration" register_kernel
log "[$(clock)] set-up complete"
