#!/usr/bin/env bash
# Installs what compiling candle's CUDA backend needs (nvcc with cicc and ptxas, the CUDA runtime,
# CRT and CCCL headers, cuBLAS, cuRAND, NVRTC) from NVIDIA's CUDA 13.0 wheels on PyPI into
# $SMG_CACHE/cuda-13.0, laid out as a CUDA toolkit (bin/, include/, lib/, nvvm/). No root needed.
# The wheels carry no driver: lib/stubs/libcuda.so is a link-time stub generated from cuda.h's
# function names (like the toolkit's own stubs); at run time the real driver's libcuda.so.1 is used.
#
# Then `cargo build --release --features cuda` works in this checkout: the script writes the
# toolkit's location into the checkout's (git-ignored) `.cargo/config.toml` `[env]` table, which
# cargo hands to candle's and cudarc's build scripts. Elsewhere, `source $SMG_CACHE/cuda-13.0/env.sh`.
# Idempotent; wheels are verified against scripts/cuda.lock.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

root="$SMG_CACHE/cuda-13.0"
wheels="$SMG_CACHE/cuda-wheels"
lock="$SMG_ROOT/scripts/cuda.lock"
stamp="$root/.installed-$(sha256sum "$lock" | cut -c1-16)"

# The checkout's cargo configuration: where the toolkit is, for builds with `--features cuda`.
write_cargo_config() {
  mkdir -p "$SMG_ROOT/.cargo"
  cat >"$SMG_ROOT/.cargo/config.toml" <<EOF
# Written by scripts/cuda-toolchain.sh (git-ignored): the CUDA 13.0 toolkit it installed, for
# \`cargo build --features cuda\`. Variables set in the shell take precedence.
[env]
CUDA_ROOT = { value = "$root", force = false }
CUDA_PATH = { value = "$root", force = false }
CUDA_HOME = { value = "$root", force = false }
NVCC = { value = "$root/bin/nvcc", force = false }
CUDARC_CUDA_VERSION = { value = "13000", force = false }
# No GPU at build time: kernels for compute capability 8.0 (A100; newer GPUs run them too).
CUDA_COMPUTE_CAP = { value = "80", force = false }
EOF
}

if [[ -f "$stamp" ]]; then
  write_cargo_config
  log "CUDA toolchain up to date in $root (cargo settings in $SMG_ROOT/.cargo/config.toml)"
  exit 0
fi

command -v unzip >/dev/null || die "unzip is needed (apt-get install unzip)"
command -v gcc >/dev/null || die "gcc is needed as nvcc's host compiler (apt-get install build-essential)"
mkdir -p "$wheels"
rm -rf "$root.partial"
mkdir -p "$root.partial"
while IFS=$'\t' read -r kind name version sha _what; do
  [[ -z "$kind" || "$kind" == \#* ]] && continue
  file=$(ls "$wheels"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z "$file" ]] || [[ "$(sha256sum "$file" | cut -c1-64)" != "$sha" ]]; then
    log "fetching $name $version"
    rm -f "$wheels"/"${name//-/_}"-"$version"-*.whl
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux2010_x86_64 --platform manylinux_2_12_x86_64 \
      -d "$wheels" "$name==$version" >/dev/null 2>&1 || die "cannot download $name==$version from PyPI"
    file=$(ls "$wheels"/"${name//-/_}"-"$version"-*.whl | head -n1)
    [[ "$(sha256sum "$file" | cut -c1-64)" == "$sha" ]] || die "$name==$version: sha256 mismatch (expected $sha)"
  fi
  unzip -qq -o "$file" 'nvidia/cu13/*' -d "$root.partial/unpacked" || die "cannot unpack $file"
done < "$lock"

cuda="$root.partial/unpacked/nvidia/cu13"
[[ -x "$cuda/bin/nvcc" && -x "$cuda/nvvm/bin/cicc" && -f "$cuda/include/cuda.h" ]] || die "the wheels did not give nvcc, cicc and cuda.h"
chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true

# Unversioned names for the linker (libcublas.so -> libcublas.so.13, …) and lib64 -> lib.
(cd "$cuda/lib" && for f in lib*.so.*; do base="${f%%.so.*}.so"; [[ -e "$base" ]] || ln -s "$f" "$base"; done)
ln -sfn lib "$cuda/lib64"

# Link-time stub of the driver library: every cu* function name cuda.h declares or maps to.
mkdir -p "$cuda/lib/stubs"
grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$cuda/include/cuda.h" | sort -u | sed 's/.*/void &(void) {}/' >"$cuda/lib/stubs/libcuda_stub.c"
gcc -shared -fPIC -o "$cuda/lib/stubs/libcuda.so" -Wl,-soname,libcuda.so.1 "$cuda/lib/stubs/libcuda_stub.c" || die "cannot build the libcuda stub"

cat >"$cuda/env.sh" <<EOF
# Source this to build with the CUDA toolchain of scripts/cuda-toolchain.sh.
export CUDA_ROOT="$root"
export CUDA_PATH="$root"
export PATH="$root/bin:\$PATH"
export LIBRARY_PATH="$root/lib:$root/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$root/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# No GPU at build time: compile the kernels for this compute capability (8.0 = A100; 9.0 = H100/H200).
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-80}"
EOF
mv "$cuda" "$root.new"
rm -rf "$root" "$root.partial"
mv "$root.new" "$root"
sed -i "s|$root.new|$root|g; s|$root.partial/unpacked/nvidia/cu13|$root|g" "$root/env.sh"
touch "$root/.installed-$(sha256sum "$lock" | cut -c1-16)"
write_cargo_config
"$root/bin/nvcc" --version | tail -n 2 >&2
log "CUDA toolchain installed in $root; \`cargo build --release --features cuda\` now works here (elsewhere: source $root/env.sh)"
