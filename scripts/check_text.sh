#!/usr/bin/env bash
# Every tracked text speaks about the software and the paper: no references to how the work was
# organised (numbered work items, tickets). Run by scripts/test.sh; exits 1 listing offenders.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pattern='\b(issues? ?#?[0-9]+|tickets?)\b'
if hits=$(git grep -n -I -i -E "$pattern" -- . ':!Cargo.lock' ':!scripts/check_text.sh'); then
  echo "[smg] error: text that refers to work items instead of the software or the paper:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "[smg] text check: $(git ls-files | wc -l) tracked files, none refers to work items"
