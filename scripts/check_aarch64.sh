#!/usr/bin/env bash
# Type-checks the whole workspace (tests, benches and examples included) for 64-bit ARM Linux,
# where the AVX-512 / AMX kernels compile out and the portable paths run.
#
#   scripts/check_aarch64.sh
#
# Installs what the check needs when it is missing: the Rust standard library for
# aarch64-unknown-linux-gnu (rustup; where rustup cannot download it, the standard library is
# built from the toolchain's rust-src component instead) and Debian's gcc-aarch64-linux-gnu (a C
# dependency of the text tokenizer is compiled by its build script, which wants the cross
# compiler). Builds into a target folder of its own, beside the host build.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
build_std=()
if ! rustup target list --installed | grep -qx "$target" && ! rustup target add "$target" 2>/dev/null; then
  echo "aarch64: no prebuilt standard library for $target here; building it from rust-src"
  rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
  build_std=(-Zbuild-std=std,panic_abort)
  export RUSTC_BOOTSTRAP=1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/aarch64-check"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -q gcc-aarch64-linux-gnu
fi
cargo check --workspace --all-targets --target "$target" "${build_std[@]}"
echo "aarch64: the workspace type-checks"
