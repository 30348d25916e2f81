# Shared settings of the project's scripts (sourced, not run). Every path can be overridden
# from the environment; environment.md lists them.
SMG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SMG_ROOT
export SMG_CACHE="${SMG_CACHE:-$HOME/.cache/specmaskgit}"
# Cargo and evcxr build caches live outside the checkout so fresh clones (CI) start warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SMG_CACHE/target}"
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$SMG_CACHE/evcxr}"
export SMG_VENV="${SMG_VENV:-$SMG_CACHE/venv}"
export SMG_DATA_DIR="${SMG_DATA_DIR:-$SMG_ROOT/data}"
export SMG_OUTPUT_DIR="${SMG_OUTPUT_DIR:-$SMG_ROOT/notebooks/output}"
export PATH="$HOME/.cargo/bin:$PATH"
# evcxr loads its cells as dylibs linked against the toolchain's libstd (see setup.sh).
if command -v rustc >/dev/null; then
  export LD_LIBRARY_PATH="$(rustc --print target-libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
EVCXR_JUPYTER_VERSION="0.22.0"

log() { echo "[smg] $*" >&2; }
die() { echo "[smg] error: $*" >&2; exit 1; }

# The release `smg` of the long-running scripts: $SMG_BIN, else the build folder's, built first
# when it is missing. Usage: smg="$(smg_bin)".
smg_bin() {
  local bin="${SMG_BIN:-$CARGO_TARGET_DIR/release/smg}"
  if [[ ! -x "$bin" ]]; then
    log "building smg"
    cargo build --release -p smg-cli --manifest-path "$SMG_ROOT/Cargo.toml" >/dev/null || die "could not build smg"
  fi
  echo "$bin"
}

# The model size the notebooks' full mode and `smg generate` load (`smg_pipeline::resolve_size`):
# `medium` where the medium tokenizer and generator are shipped and quick mode is off, else
# `small`. Set-up fetches and builds that size's corpus too.
models_size() {
  local ck="$SMG_ROOT/data/checkpoints" quick="${SMG_QUICK:-}"
  if [[ (-z "$quick" || "$quick" == 0) && -d "$ck/tokenizer-medium" && -d "$ck/maskgit-medium" ]]; then
    echo medium
  else
    echo small
  fi
}

# --- stages: one line when a stage starts and one when it ends, with the time since the run
# began; the tools' own output (apt, pip, cargo) goes to $SMG_LOG_DIR/<stage>.log, whose last
# lines are shown, with its path, when the stage fails.
export SMG_LOG_DIR="${SMG_LOG_DIR:-$SMG_CACHE/logs}"
export SMG_T0="${SMG_T0:-$(date +%s)}"
SMG_STAGE_PIDS=()
clock() {
  local s=$(($(date +%s) - SMG_T0))
  printf '%d:%02d' $((s / 60)) $((s % 60))
}
# run_stage NAME COMMAND...: runs COMMAND (a program or a shell function) as one stage.
run_stage() {
  local name="$1" t rc
  shift
  local file
  file="$SMG_LOG_DIR/$(echo "$name" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9.]\{1,\}/-/g; s/^-//; s/-$//').log"
  mkdir -p "$SMG_LOG_DIR"
  t=$(date +%s)
  log "[$(clock)] $name"
  # A background subshell keeps `set -e` in force inside the stage (an `if` would switch it off).
  ("$@") >"$file" 2>&1 &
  if wait $!; then
    log "[$(clock)] $name: done in $(($(date +%s) - t)) s"
  else
    rc=$?
    tail -n 15 "$file" | sed 's/^/    | /' >&2
    log "error: $name failed (exit $rc); its whole output is in $file"
    return "$rc"
  fi
}
# run_stage_bg NAME COMMAND...: the same, alongside the stages that follow; wait_stages joins them.
run_stage_bg() {
  run_stage "$@" &
  SMG_STAGE_PIDS+=($!)
}
wait_stages() {
  local pid failed=0
  for pid in "${SMG_STAGE_PIDS[@]}"; do wait "$pid" || failed=1; done
  SMG_STAGE_PIDS=()
  ((failed == 0)) || die "a set-up stage failed (see above)"
}
