#!/usr/bin/env bash
# Loss curves of the fused CPU training ops against candle's own f32 autograd.
#
# Trains the same seeded run twice on the small corpus: once through the project's fused CPU
# ops (LayerNorm, GELU, attention, bias, convolution with hand-written backward passes) and once
# with SMG_FAST=0, where every layer is composed from candle's ops and differentiated by candle
# (the f32 reference). Both runs see the same batches, masks and initial weights, so their curves
# may only drift apart by floating-point rounding. Writes one plot per trainer and the merged
# JSONL next to it.
#
# COMPARE=bf16 instead trains the fused run twice, with bf16 products (`--precision bf16`) and
# with f32 ones, and writes TRAINER-bf16.{jsonl,png}: the bf16 curve against the f32 reference.
#
# Usage: benches/loss_curves.sh [OUT_DIR]   (default benches/curves; STEPS=300, TRAINERS=maskgit,
# CONFIG=small; CONFIG=medium trains the medium models on sound-medium and names the files
# TRAINER-medium…)
# TRAINERS="maskgit tokenizer" adds the tokenizer (TOK_BATCH, default 4): its reference runs
# candle's own conv2d backward, whose memory grows with the image (22 GB at batch 16, and more
# than the 24 GB of a 2-core development machine at batch 4 alongside other work).
# Needs a release `smg` (SMG_BIN, default target/release/smg) and the small corpus (`smg data fetch`).
set -euo pipefail
cd "$(dirname "$0")/.."
smg=${SMG_BIN:-target/release/smg}
out=${1:-benches/curves}
steps=${STEPS:-300}
tok_batch=${TOK_BATCH:-4}
trainers=${TRAINERS:-maskgit}
config=${CONFIG:-small}
compare=${COMPARE:-reference}
case $compare in
  reference) a=fused b=reference suffix="" what="fused CPU ops vs candle f32 autograd" ;;
  bf16) a=bf16 b=fused suffix=-bf16 what="bf16 products vs f32 (fused ops)" ;;
  *) echo "COMPARE must be reference or bf16, not $compare" >&2; exit 2 ;;
esac
case $config in
  small) ;;
  medium) suffix="-medium$suffix" ;;
  *) echo "CONFIG must be small or medium, not $config" >&2; exit 2 ;;
esac
# The medium generator trains on the medium tokenizer's tokens and the medium audio branch.
medium_inputs=()
[ "$config" = medium ] && medium_inputs=(--tokenizer data/checkpoints/tokenizer-medium --clap data/checkpoints/clap-medium)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

train() { # trainer mode
  local fast=1 precision=f32
  [ "$2" = reference ] && fast=0
  [ "$2" = bf16 ] && precision=bf16
  case $1 in
    maskgit) SMG_FAST=$fast "$smg" train --precision $precision maskgit --config "$config" "${medium_inputs[@]}" --steps "$steps" --val-every 100 --seed 0 --out "$tmp/$1-$2" ;;
    tokenizer) SMG_FAST=$fast "$smg" train --precision $precision tokenizer --config "$config" --steps "$steps" --batch "$tok_batch" --crop 128 --val-every 100 --seed 0 --out "$tmp/$1-$2" ;;
  esac
}

for t in $trainers; do
  for mode in $a $b; do
    start=$(date +%s)
    train "$t" "$mode"
    echo "$t $mode: $(( $(date +%s) - start )) s for $steps steps"
  done
  key=loss
  [ "$t" = tokenizer ] && key=rec_l1
  python3 - "$tmp/$t-$a/metrics.jsonl" "$tmp/$t-$b/metrics.jsonl" "$key" "$a" "$b" > "$out/$t$suffix.jsonl" <<'EOF'
import json, sys
fused, ref, key, na, nb = sys.argv[1:6]
def load(p):
    return {r["step"]: r[key] for r in map(json.loads, open(p)) if r.get(key) is not None}
a, b = load(fused), load(ref)
worst = 0.0
for s in sorted(set(a) & set(b)):
    worst = max(worst, abs(a[s] - b[s]) / max(abs(b[s]), 1e-12))
    print(json.dumps({"step": s, f"{key}_{na}": a[s], f"{key}_{nb}": b[s]}))
print(f"largest relative difference of {key} over {len(set(a) & set(b))} logged steps: {worst:.2e}", file=sys.stderr)
EOF
  "$smg" plot metrics "$out/$t$suffix.jsonl" --y "${key}_$a" --y "${key}_$b" \
    --title "$t ($config): $what, seed 0" -o "$out/$t$suffix.png"
  echo "$t: $out/$t$suffix.png"
done
