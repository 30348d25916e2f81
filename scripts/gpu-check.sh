#!/usr/bin/env bash
# One check for a machine with an NVIDIA GPU: build the workspace with CUDA, run the device tests on
# the GPU (every model's generic path against the CPU), the paper-size pipeline benchmark on the
# GPU, and a short run of each trainer on the GPU; prints one table at the end.
# Exits at once, with a clear message, where no GPU is present.
#
#   scripts/gpu-check.sh            # everything (≈10-20 min on a fresh machine, most of it building)
#   SMG_GPU_QUICK=1 scripts/gpu-check.sh   # skip the trainers
#
# It uses a CUDA toolkit already on the machine (nvcc on PATH, or CUDA_ROOT / /usr/local/cuda);
# otherwise it installs one with scripts/cuda-toolchain.sh (needs PyPI). Logs go to
# $SMG_CACHE/gpu-check/ and are named on failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  die "no GPU: nvidia-smi is not installed, so there is no NVIDIA driver on this machine (this check needs one; the CPU build and tests are scripts/test.sh)"
fi
if ! gpus=$(nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader 2>/dev/null) || [[ -z "$gpus" ]]; then
  die "no GPU: nvidia-smi lists no device (driver not loaded, or no GPU visible to this container)"
fi
log "GPU: $gpus"
cap=$(echo "$gpus" | head -n1 | cut -d, -f2 | tr -d ' .')

logs="$SMG_CACHE/gpu-check"
mkdir -p "$logs"
step() {  # step NAME COMMAND...: runs COMMAND with its output in a log, timing it
  local name="$1"; shift
  local logf="$logs/${name// /_}.log" t0=$SECONDS
  log "$name ..."
  if ! "$@" >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2
    die "$name failed (full log: $logf)"
  fi
  RESULTS+=("$name|$((SECONDS - t0)) s|$logf")
}
RESULTS=()

# A toolkit: the machine's own, else the project's (PyPI wheels).
if ! command -v nvcc >/dev/null 2>&1; then
  for d in "${CUDA_ROOT:-}" /usr/local/cuda /opt/cuda; do
    if [[ -n "$d" && -x "$d/bin/nvcc" ]]; then export CUDA_ROOT="$d" PATH="$d/bin:$PATH"; break; fi
  done
fi
if ! command -v nvcc >/dev/null 2>&1; then
  step "CUDA toolchain" "$SMG_ROOT/scripts/cuda-toolchain.sh"
  source "$SMG_CACHE/cuda-13.0/env.sh"
fi
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-$cap}"
export CARGO_TARGET_DIR="$SMG_CACHE/target-cuda"
cd "$SMG_ROOT"

step "build (release, cuda)" cargo build --release --features cuda --workspace --all-targets
step "device tests on the GPU" cargo test --release --features cuda --test device_generic -- --nocapture
step "pipeline bench on the GPU" env SMG_BENCH_DEVICE=cuda SMG_BENCH_QUICK=1 cargo bench --features cuda --bench pipeline

smg="$CARGO_TARGET_DIR/release/smg"
if [[ "${SMG_GPU_QUICK:-0}" != 1 ]]; then
  runs=$(mktemp -d)
  if [[ -f "$SMG_DATA_DIR/corpus/sound-small/manifest.jsonl" ]]; then
    step "train tokenizer, 20 steps" "$smg" train tokenizer --config small --steps 20 --val-every 20 --out "$runs/tok"
    step "train CLAP audio branch, 20 steps" "$smg" train clap --steps 20 --val-every 20 --out "$runs/clap"
    step "train masked ViT, 20 steps" "$smg" train maskgit --steps 20 --val-every 20 --out "$runs/vit"
  else
    log "no corpus under $SMG_DATA_DIR (scripts/setup.sh builds it): trainers skipped"
  fi
fi

echo
echo "| step | time | log |"
echo "|---|---|---|"
for r in "${RESULTS[@]}"; do echo "| ${r//|/ | } |"; done
echo
grep -hE "CPU vs CUDA|kernels vs generic" "$logs/device_tests_on_the_GPU.log" || true
grep -hE "^\| |^device" "$logs/pipeline_bench_on_the_GPU.log" || true
