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
