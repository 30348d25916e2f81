#!/usr/bin/env bash
# Trains the medium models on the broad corpus `sound-medium`, stage by stage, across as many
# sittings as it takes: every stage resumes exactly from its last checkpoint (written every 50
# steps into $SMG_DATA_DIR/runs/<model>-medium, outside git), and finished stages are skipped.
# Run it in the background and run it again after an interruption:
#
#   nohup scripts/low_priority.sh scripts/train_medium.sh > "$SMG_CACHE/train_medium.log" 2>&1 &
#
# Stages, with steps sized from `cargo bench --bench train` on 2 idle cores (benches/SPEED.md,
# 2026-12-04 with the fused training ops: tokenizer 1.8–2.0 s/step, 2.1–2.3 with the
# discriminator; audio branch 1.0; ViT 1.3–1.6):
#   1. the corpus (`smg data fetch --set medium`, `smg data build --config medium`)
#   2. tokenizer (≈3 h, validating every 250 steps): 128-frame crops (batch 16) to step 3000,
#      whole clips (batch 8) to 4000, then whole clips with the learning rate decaying (half
#      cosine) to 0 by 5000; then a wider decoder on the same codes, the encoder and codebook
#      frozen so every clip keeps its codes: (a, ≈40 min) on reconstruction alone, 3000 steps
#      decaying from 2000 (runs/tokenizer-medium-wide-l1); (b, ≈25 min) against a discriminator
#      (hinge weight 0.01, feature matching 1) from (a)'s f16 copy, 825 steps at a constant rate,
#      then a half-cosine decay to 1600 (runs/tokenizer-medium-wide-gan)
#   3. CLAP audio branch (`AudioEncoderConfig::medium()`, ≈1 h): 3000 steps
#   4. masked ViT (`Config::medium()`, ≈2.5 h): 8000 steps on the medium tokenizer's tokens,
#      conditioned through the medium audio branch (audio and caption embeddings mixed), with
#      bf16 products where the CPU has them (VIT_PRECISION=f32 for the reference arithmetic;
#      benches/curves/maskgit-bf16.png compares the two)
#   5. masked ViT fine-tuned (≈0.5 h): 2000 more steps from stage 4's weights (learning rate
#      3e-4, fresh warm-up and cosine) with short recordings of ongoing sounds repeated through
#      their training windows (`--fill-sustained`), so that "a dog barking" or "a man speaking"
#      goes on through the clip instead of stopping after one event
#   6. the same fine-tuning continued (≈20 min): 1500 more steps from stage 5's weights, fresh
#      warm-up and cosine, on the corpus with its dog recordings (stages 2-5 of the shipped models
#      ran before those were added: their recordings had been three single barks, folded into
#      "animal")
# Finished models are exported into their run folders; committing them (f16) with their
# TRAINING.md is a separate, deliberate step (scripts/ship_medium.sh copies the finished ViT
# into data/checkpoints/maskgit-medium).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

smg="$(smg_bin)"
runs="$SMG_DATA_DIR/runs"
t0=$SECONDS
stage() { log "[$(((SECONDS - t0) / 60)) min] $*"; }

# Steps of a run so far (0 when it has not started).
steps_done() { [[ -f "$1/state.json" ]] && python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$1/state.json" || echo 0; }

stage "corpus"
"$smg" data fetch --set medium
"$smg" data build --config medium --set sound

# A finished model shipped in data/checkpoints stands in for a stage whose run folder is absent
# (a fresh machine): the stage is skipped and the later stages load the shipped weights.
shipped() { [[ ! -f "$runs/$1/state.json" && -f "$SMG_ROOT/data/checkpoints/$1/$2" ]]; }

# An f16 copy of a finished run (its config and weights) that a later stage starts from.
half_copy() { # from to config weights
  mkdir -p "$2" && cp "$1/$3" "$2/"
  "$smg" half "$1/$4" "$2/$4"
}

tok="$runs/tokenizer-medium"
if shipped tokenizer-medium tokenizer.safetensors; then
  tok="$SMG_ROOT/data/checkpoints/tokenizer-medium"
  stage "tokenizer: the shipped $tok"
else
  TOK_P1=${TOK_P1:-3000} TOK_P2=${TOK_P2:-4000} TOK_P3=${TOK_P3:-5000}
  stage "tokenizer at step $(steps_done "$tok") of $TOK_P3"
  if (($(steps_done "$tok") < TOK_P1)); then
    "$smg" train tokenizer --config medium --steps "$TOK_P1" --batch 16 --crop 128 --seed 0 --val-every 250 --ckpt-every 50 --out "$tok" --resume
  fi
  if (($(steps_done "$tok") < TOK_P2)); then
    "$smg" train tokenizer --config medium --steps "$TOK_P2" --batch 8 --crop 0 --seed 0 --val-every 250 --ckpt-every 50 --out "$tok" --resume
  fi
  # TOK_DISC_START=N turns the discriminator on from step N (off by default: SpecVQGAN's fixed hinge
  # weight drags the L1 up step after step; the decoder meets the discriminator in the next stage).
  disc=()
  [[ -n "${TOK_DISC_START:-}" ]] && disc=(--disc-start "$TOK_DISC_START")
  "$smg" train tokenizer --config medium --steps "$TOK_P3" --batch 8 --crop 0 --seed 0 --val-every 250 --ckpt-every 50 --out "$tok" --resume \
    --lr-decay-from "$TOK_P2" "${disc[@]}"
  # The decoder, retrained on the same codes: the encoder and codebook of phase 3 are frozen, so
  # the ViT below trains on the same codes either way. It starts from phase 3's f16 copy (as shipped
  # in data/checkpoints/tokenizer-medium-l1) with a wider decoder (32-32-64-128-128 channels, three
  # res blocks per level): (a) on reconstruction alone, then (b) against a discriminator.
  l1="$runs/tokenizer-medium-l1" wl1="$runs/tokenizer-medium-wide-l1" wl1h="$runs/tokenizer-medium-wide-l1-f16"
  gan="$runs/tokenizer-medium-wide-gan"
  half_copy "$tok" "$l1" config.json tokenizer.safetensors
  wide=(--config medium --precision bf16 --decoder-only --decoder-width 2,2,4,8,8 --decoder-blocks 2 --seed 0)
  WIDE_L1_STEPS=${WIDE_L1_STEPS:-3000} WIDE_L1_DECAY=${WIDE_L1_DECAY:-2000}
  stage "wider decoder on reconstruction at step $(steps_done "$wl1") of $WIDE_L1_STEPS"
  "$smg" train tokenizer "${wide[@]}" --init "$l1" --lr 1e-3 --batch 8 --crop 0 --val-every 500 --ckpt-every 50 \
    --steps "$WIDE_L1_STEPS" --lr-decay-from "$WIDE_L1_DECAY" --out "$wl1" --resume
  half_copy "$wl1" "$wl1h" config.json tokenizer.safetensors
  GAN_P1=${GAN_P1:-825} GAN_P2=${GAN_P2:-1600}
  stage "wider decoder against the discriminator at step $(steps_done "$gan") of $GAN_P2"
  common=("${wide[@]}" --init "$wl1h" --disc-start 0 --disc-weight 0.01 --feature-matching 1 --lr 2e-4 --batch 16 --crop 128
    --val-every 250 --ckpt-every 25 --out "$gan" --resume)
  if (($(steps_done "$gan") < GAN_P1)); then
    "$smg" train tokenizer "${common[@]}" --steps "$GAN_P1"
  fi
  "$smg" train tokenizer "${common[@]}" --steps "$GAN_P2" --lr-decay-from "$GAN_P1"
fi

clap="$runs/clap-medium"
if shipped clap-medium audio_encoder.safetensors; then
  clap="$SMG_ROOT/data/checkpoints/clap-medium"
  stage "CLAP audio branch: the shipped $clap"
else
  CLAP_STEPS=${CLAP_STEPS:-3000}
  stage "CLAP audio branch at step $(steps_done "$clap") of $CLAP_STEPS"
  "$smg" train clap --config medium --steps "$CLAP_STEPS" --val-every 100 --out "$clap" --resume
fi

vit="$runs/maskgit-medium"
# Validation (every held-out row at three masking ratios) costs ≈ 2/3 of 100 training steps, so
# the ViT validates (and checkpoints) every 500 steps.
VIT_STEPS=${VIT_STEPS:-8000} VIT_PRECISION=${VIT_PRECISION:-bf16} VIT_VAL_EVERY=${VIT_VAL_EVERY:-500}
stage "masked ViT at step $(steps_done "$vit") of $VIT_STEPS"
"$smg" train --precision "$VIT_PRECISION" maskgit --config medium --steps "$VIT_STEPS" --val-every "$VIT_VAL_EVERY" --tokenizer "$tok" --clap "$clap" --cond mix \
  --out "$vit" --resume

filled="$runs/maskgit-medium-filled"
FILL_STEPS=${FILL_STEPS:-2000}
stage "masked ViT fine-tuning on filled windows at step $(steps_done "$filled") of $FILL_STEPS"
"$smg" train --precision "$VIT_PRECISION" maskgit --config medium --steps "$FILL_STEPS" --lr 3e-4 --val-every "$VIT_VAL_EVERY" --tokenizer "$tok" --clap "$clap" \
  --cond mix --fill-sustained --init "$vit" --out "$filled" --resume

# Stage 6 starts from stage 5's f16 copy, as it ran (from the generator then shipped).
refilled="$runs/maskgit-medium-refilled" half5="$runs/maskgit-medium-filled-f16"
REFILL_STEPS=${REFILL_STEPS:-1500}
stage "masked ViT, fine-tuning continued at step $(steps_done "$refilled") of $REFILL_STEPS"
half_copy "$filled" "$half5" maskgit.json maskgit.safetensors
"$smg" train --precision "$VIT_PRECISION" maskgit --config medium --steps "$REFILL_STEPS" --lr 3e-4 --val-every "$VIT_VAL_EVERY" --tokenizer "$tok" --clap "$clap" \
  --cond mix --fill-sustained --init "$half5" --out "$refilled" --resume

stage "all stages done: $tok, $clap, $vit, $filled, $refilled"
