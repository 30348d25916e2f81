#!/usr/bin/env bash
# Evaluates the medium models side by side with the small ones on the same held-out clips and
# seeds, and writes the JSON reports into data/checkpoints/medium-eval/ (the tables print too):
#   0. the audio branches (`smg embed eval`): text→audio recall and zero-shot accuracy;
#   1. tokenizers: held-out mel L1, codebook use, judge accuracy on reconstructions against the
#      real clips (`smg eval tokenizer`), on sound-medium and on sound-small;
#   2. generators on sound-medium's held-out captions: the mel-statistics judge (balanced over
#      categories, per category, with CFG 3 and without), Fréchet distances, sustain; then the
#      aiSFX judge and FAD-aisfx to the real held-out clips (one held-out-mix prompt per clip);
#   3. sustain and span of four everyday prompts ("a dog barking", …) over 32 seeds
#      (`smg eval sustain`);
#   4. the medium generator again with the small generator's sampler preset (rescaled CFG,
#      softmax temperature 0.8; the reports above draw as the paper does), at the paper's Gumbel
#      temperature 1.5 and at 3: the aiSFX judge and the four prompts' sustain.
# Runs ≈4 h on 2 cores; each report is skipped when it exists (delete it to re-run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
smg="$(smg_bin)"
ck="$SMG_ROOT/data/checkpoints"
out="$ck/medium-eval"
mkdir -p "$out"
for d in tokenizer-medium clap-medium maskgit-medium; do
  [[ -d "$ck/$d" ]] || die "$ck/$d is missing: train and export the medium models first (scripts/train_medium.sh)"
done
run() { # report-file command...
  local report="$out/$1"
  shift
  if [[ -f "$report" ]]; then log "$report exists, skipped"; return; fi
  log "$*"
  "$@" --out "$report.part" | tee "${report%.json}.md" && mv "$report.part" "$report"
}
for corpus in medium small; do
  run "tokenizer_$corpus.json" "$smg" eval tokenizer "$ck/tokenizer-small" "$ck/tokenizer-medium-l1" "$ck/tokenizer-medium" --corpus "$corpus"
done
for size in small medium; do # the audio branch: retrieval and zero-shot accuracy on sound-medium
  f="$out/clap_$size.txt"
  [[ -f "$f" ]] || { "$smg" embed eval --corpus medium --split test --checkpoint "$ck/clap-$size" | tee "$f.part" && mv "$f.part" "$f"; }
done
for features in mel aisfx; do
  per_clip=4
  [[ $features == aisfx ]] && per_clip=1
  for size in small medium; do
    run "generation_${size}_$features.json" "$smg" eval generation --corpus medium --generator "$ck/maskgit-$size" \
      --tokenizer "$ck/tokenizer-$size" --cfg 3 --cfg-schedule constant --seed 0 --features "$features" --fd-per-clip "$per_clip"
  done
done
# Do four everyday prompts give sound that lasts the clip? (32 seeds each; the medium generator
# also through the reconstruction-only decoder, tokenizer-medium-l1.)
for run in small:small medium:medium medium-l1:medium; do
  tok="${run%%:*}" size="${run##*:}"
  run "sustain_$tok.json" "$smg" eval sustain --seeds 32 --cfg 3 --generator "$ck/maskgit-$size" --tokenizer "$ck/tokenizer-$tok"
done
# The small generator's sampler preset on the medium generator, at two re-masking temperatures.
for g in 1.5 3; do
  sampler=(--cfg 3 --cfg-rescale 1 --draw temperature:0.8 --temperature "$g" --generator "$ck/maskgit-medium" --tokenizer "$ck/tokenizer-medium")
  run "generation_medium-generate-g${g}_aisfx.json" "$smg" eval generation --corpus medium --cfg-schedule constant --seed 0 \
    --features aisfx --fd-per-clip 1 "${sampler[@]}"
  run "sustain_medium-generate-g$g.json" "$smg" eval sustain --seeds 32 "${sampler[@]}"
done
log "reports in $out"
