#!/usr/bin/env bash
# Copies the finished medium masked ViT from its run folders ($SMG_DATA_DIR/runs/maskgit-medium,
# the fine-tuning on filled windows, runs/maskgit-medium-filled, and its continuation,
# runs/maskgit-medium-refilled, written by scripts/train_medium.sh) into
# data/checkpoints/maskgit-medium: the last stage's weights as f16 (`smg half`), maskgit.json,
# every stage's metrics (metrics.jsonl, metrics-filled.jsonl, metrics-refilled.jsonl) and
# accuracy curves as PNG, then prints the final held-out accuracies and the summed step times
# for its TRAINING.md. Refuses a run that has not reached its last step. Once the folder exists, `smg generate`, the notebooks in full
# mode and the studio use the medium models (quick mode keeps the small ones).
#
#   scripts/ship_medium.sh          # maskgit-medium
#   scripts/ship_medium.sh nocm     # the Table 1 ablation: runs/maskgit-medium-nocm(-filled)
#                                   # (no continuation: its last stage is -filled)
#                                   # → data/checkpoints/maskgit-medium-nocm
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
smg="$(smg_bin)"
name="maskgit-medium${1:+-$1}"
run="$SMG_DATA_DIR/runs/$name"
filled="$SMG_DATA_DIR/runs/$name-filled"
out="$SMG_ROOT/data/checkpoints/$name"
stages=("$run" "$filled")
[[ -z "${1:-}" ]] && stages+=("$SMG_DATA_DIR/runs/$name-refilled")
last="${stages[-1]}"
for r in "${stages[@]}"; do
  [[ -f "$r/state.json" ]] || die "no run in $r (scripts/train_medium.sh trains it)"
  read -r step steps < <(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['step'], s['train']['steps'])" "$r/state.json")
  ((step >= steps)) || die "the run in $r is at step $step of $steps: let scripts/train_medium.sh finish it"
  [[ -f "$r/maskgit.safetensors" ]] || die "$r has no exported generator (maskgit.safetensors)"
done
mkdir -p "$out"
"$smg" half "$last/maskgit.safetensors" "$out/maskgit.safetensors"
cp "$last/maskgit.json" "$run/metrics.jsonl" "$out/"
cp "$filled/metrics.jsonl" "$out/metrics-filled.jsonl"
metrics=("$out/metrics.jsonl" "$out/metrics-filled.jsonl")
if [[ "$last" != "$filled" ]]; then
  cp "$last/metrics.jsonl" "$out/metrics-refilled.jsonl"
  metrics+=("$out/metrics-refilled.jsonl")
  "$smg" plot metrics "$out/metrics-refilled.jsonl" --y val.0.accuracy --y val.1.accuracy --y val.2.accuracy --y accuracy \
    -o "$out/curve-refilled.png" --title "$name, fine-tuning continued: masked-token accuracy (held-out; train batch)"
fi
"$smg" plot metrics "$out/metrics.jsonl" --y val.0.accuracy --y val.1.accuracy --y val.2.accuracy --y accuracy \
  -o "$out/curve.png" --title "$name: masked-token accuracy (held-out at ratios 0.1 / 0.5 / 0.9; train batch)"
"$smg" plot metrics "$out/metrics-filled.jsonl" --y val.0.accuracy --y val.1.accuracy --y val.2.accuracy --y accuracy \
  -o "$out/curve-filled.png" --title "$name fine-tuned on filled windows: masked-token accuracy (held-out; train batch)"
for m in "${metrics[@]}"; do
  python3 - "$m" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = [r for r in rows if r.get("val")][-1]
print(sys.argv[1].rsplit("/", 1)[-1], "held-out accuracy at step", last["step"] + 1, ":", ", ".join(f"{v['ratio']}: {v['accuracy']:.3f}" for v in last["val"]))
# One row is logged every few steps: scale the logged step times to the whole run.
per = sum(r["seconds"] for r in rows) / len(rows)
print(f"≈ {per:.2f} s per step, ≈ {per * (last['step'] + 1) / 3600:.1f} h of training steps (validation not counted)")
PY
done
du -sh "$out"
