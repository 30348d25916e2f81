#!/usr/bin/env bash
# The project's test command (README; .ci/run calls exactly this):
#   1. set-up for headless runs (idempotent: venv, evcxr_jupyter, kernel, verified assets),
#   2. the text check (scripts/check_text.sh), cargo fmt --check, cargo clippy -D warnings and
#      cargo test --workspace,
#   3. the spectrogram studio driven in headless Chromium (tests/browser/studio_browser.py),
#   4. the notebook harness must fail every deliberately failing notebook in tests/notebooks,
#   5. every notebook in notebooks/ executes headless in quick mode without a
#      cell error and with the images and audio players its metadata promises.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SMG_ROOT"
# Tests keep fetched and built data in the cache, so fresh clones (CI) reuse it.
export SMG_DATA_DIR="${SMG_DATA_DIR_FOR_TESTS:-$SMG_CACHE/data}"
# Quick mode for everything: notebooks with tiny counts, and `auto` (smg generate, the studio,
# the notebooks) on the small models even where the medium ones are shipped.
export SMG_QUICK=1
t0=$SECONDS
stage() { log "[$((SECONDS - t0)) s] $*"; }

stage "set-up"
scripts/setup.sh --ci

stage "text check, notebook size budget, rustfmt, clippy"
bash scripts/check_text.sh
python3 scripts/notebook_budget.py
# rustfmt and clippy ship with rustup's default profile; a toolchain without them skips the check.
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check >/dev/null || die "formatting differs from rustfmt.toml (run cargo fmt --all)"
else
  log "rustfmt is not installed with this toolchain: format check skipped"
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --quiet -- -D warnings || die "cargo clippy found warnings"
else
  log "clippy is not installed with this toolchain: lint check skipped"
fi

stage "python tests (checkpoint converter)"
python3 -m unittest discover -s tests/python

stage "cargo test --workspace"
cargo test --workspace --quiet 2>&1 | grep -v '^running 0 tests$' | grep -v '^test result: ok. 0 passed' | grep -v '^$'
test "${PIPESTATUS[0]}" -eq 0 || die "cargo test failed"

stage "spectrogram studio in a real browser (headless Chromium)"
"$SMG_VENV/bin/python" tests/browser/studio_browser.py || die "the studio browser test failed"

stage "notebook harness self-test (these must fail)"
"$SMG_VENV/bin/python" scripts/run_notebooks.py --expect-failure tests/notebooks/*.ipynb

stage "notebooks (quick mode)"
"$SMG_VENV/bin/python" scripts/run_notebooks.py notebooks/*.ipynb

stage "all tests passed"
