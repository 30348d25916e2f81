#!/usr/bin/env bash
# Fetches every asset of scripts/assets.lock into $SMG_DATA_DIR, verifying sha256.
# Idempotent (a second run does no work and says so) and resumable (each asset is finished or
# redone as a whole; a corrupted download is detected and fetched again).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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
      rm -rf "$dest.partial" "$dest"
      mkdir -p "$dest.partial"
      dpkg-deb -x "$DEB_FILE" "$dest.partial" || die "$name: dpkg-deb could not unpack $DEB_FILE"
      touch "$dest.partial/.fetched-$sha"
      mv "$dest.partial" "$dest"
      did_work=1
      ;;
    *) die "assets.lock: unknown kind '$kind' for $name" ;;
  esac
done < "$SMG_ROOT/scripts/assets.lock"

if ((did_work)); then log "assets fetched and verified into $SMG_DATA_DIR"; else log "assets up to date (nothing to fetch)"; fi
