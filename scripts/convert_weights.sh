#!/usr/bin/env bash
# Converts the fetched PyTorch checkpoints to safetensors (scripts/weights.lock) and checks each
# result's tensor count and sha256; verifies MiniLM, which ships as safetensors. Idempotent.
# Output: $SMG_DATA_DIR/weights/<name>.safetensors (MiniLM: weights/minilm/, a link to its folder).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
out="$SMG_DATA_DIR/weights"
mkdir -p "$out"
did=0
while IFS=$'\t' read -r name src count sha; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -f "$SMG_DATA_DIR/$src" ]] || die "$name: $SMG_DATA_DIR/$src is missing (run scripts/fetch_assets.sh)"
  if [[ "$count" == "-" ]]; then  # shipped as safetensors: verify and link its folder
    [[ "$(sha256sum "$SMG_DATA_DIR/$src" | cut -d' ' -f1)" == "$sha" ]] || die "$name: $src has the wrong sha256"
    ln -sfn "$(dirname "$SMG_DATA_DIR/$src")" "$out/$name"
    continue
  fi
  dst="$out/$name.safetensors"
  if [[ -f "$dst" && "$(sha256sum "$dst" | cut -d' ' -f1)" == "$sha" ]]; then continue; fi
  log "converting $name to safetensors"
  python3 "$SMG_ROOT/scripts/torch2safetensors.py" "$SMG_DATA_DIR/$src" "$dst" \
    --expect-count "$count" --expect-sha256 "$sha" >/dev/null || die "$name: conversion failed"
  did=1
done < "$SMG_ROOT/scripts/weights.lock"
if ((did)); then log "weights converted and verified in $out"; else log "weights up to date"; fi
