#!/usr/bin/env bash
# rFAD of the vocoders: resynthesise the 139 sound-set test clips with HiFi-GAN universal and
# Griffin-Lim (`smg vocode`), then `smg fad` against the originals with aiSFX and log-mel statistics.
# Usage (SMG_DATA_DIR = the data folder the setup filled): SMG=path/to/smg bash scripts/rfad_vocoders.sh   (numbers: data/checkpoints/maskgit-small/ABLATIONS.md)
set -e
source "$(dirname "$0")/common.sh"
SMG="${SMG:-$CARGO_TARGET_DIR/release/smg}"
R="${RFAD_DIR:-/tmp/smg-rfad}"; rm -rf "$R/real" "$R/hifigan" "$R/griffin-lim"; mkdir -p "$R/real" "$R/hifigan" "$R/griffin-lim"
python3 -c "import json,sys; [print(r['path']) for r in map(json.loads, open(sys.argv[1])) if r['split'] == 'test']" "$SMG_DATA_DIR/corpus/sound-small/manifest.jsonl" > $R/test.txt
while read p; do
  b=$(basename $p)
  cp $SMG_DATA_DIR/$p $R/real/$b
  "$SMG" vocode $SMG_DATA_DIR/$p --vocoder hifigan -o $R/hifigan/$b 2>/dev/null
  "$SMG" vocode $SMG_DATA_DIR/$p --vocoder griffin-lim -o $R/griffin-lim/$b 2>/dev/null
done < $R/test.txt
for v in hifigan griffin-lim; do for e in aisfx mel; do
  "$SMG" fad $R/real $R/$v --embedder $e --out $R/$v-$e.json 2>/dev/null
done; done
