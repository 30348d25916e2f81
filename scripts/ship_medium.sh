#!/usr/bin/env bash
# Copies the finished medium masked ViT from its run folder ($SMG_DATA_DIR/runs/maskgit-medium,
# written by scripts/train_medium.sh) into data/checkpoints/maskgit-medium: weights as f16
# (`smg half`), maskgit.json, metrics.jsonl and the accuracy curve as PNG, then prints the
# final held-out accuracies and the summed step times for its TRAINING.md. Refuses a run that
# has not reached its last step. Once the folder exists, `smg generate`, the notebooks in full
# mode and the studio use the medium models (quick mode keeps the small ones).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
smg="$(smg_bin)"
run="$SMG_DATA_DIR/runs/maskgit-medium"
out="$SMG_ROOT/data/checkpoints/maskgit-medium"
[[ -f "$run/state.json" ]] || die "no run in $run (scripts/train_medium.sh trains it)"
read -r step steps < <(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['step'], s['train']['steps'])" "$run/state.json")
((step >= steps)) || die "the run in $run is at step $step of $steps: let scripts/train_medium.sh finish it"
[[ -f "$run/maskgit.safetensors" ]] || die "$run has no exported generator (maskgit.safetensors)"
mkdir -p "$out"
"$smg" half "$run/maskgit.safetensors" "$out/maskgit.safetensors"
cp "$run/maskgit.json" "$run/metrics.jsonl" "$out/"
"$smg" plot metrics "$out/metrics.jsonl" --y val.0.accuracy --y val.1.accuracy --y val.2.accuracy --y accuracy \
  -o "$out/curve.png" --title "maskgit-medium: masked-token accuracy (held-out at ratios 0.1 / 0.5 / 0.9; train batch)"
python3 - "$out/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = [r for r in rows if r.get("val")][-1]
print("held-out accuracy at step", last["step"] + 1, ":", ", ".join(f"{v['ratio']}: {v['accuracy']:.3f}" for v in last["val"]))
# One row is logged every few steps: scale the logged step times to the whole run.
per = sum(r["seconds"] for r in rows) / len(rows)
print(f"≈ {per:.2f} s per step, ≈ {per * (last['step'] + 1) / 3600:.1f} h of training steps (validation not counted)")
PY
du -sh "$out"
