#!/usr/bin/env bash
# Type-checks the whole workspace (tests, benches and examples included) for 64-bit ARM Linux,
# where the AVX-512 / AMX kernels compile out and the portable paths run.
#
#   scripts/check_aarch64.sh
#
# Installs what the check needs when it is missing: the Rust standard library for
# aarch64-unknown-linux-gnu (rustup) and Debian's gcc-aarch64-linux-gnu (a C dependency of the
# text tokenizer is compiled by its build script, which wants the cross compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -q gcc-aarch64-linux-gnu
fi
cargo check --workspace --all-targets --target "$target"
echo "aarch64: the workspace type-checks"
