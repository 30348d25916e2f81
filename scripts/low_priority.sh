#!/usr/bin/env bash
# Runs a command at the lowest CPU priority, in a session of its own, so that it only takes the
# cores nothing else wants: long training runs, or the background half of the first set-up.
#
#   scripts/low_priority.sh scripts/train_medium.sh > train.log 2>&1 &
#
# A plain `nice` is not enough on Linux: with scheduler autogroups on
# (/proc/sys/kernel/sched_autogroup_enabled = 1) every session gets an equal share of the CPU
# whatever the nice values inside it, and Jupyter starts each kernel in a session of its own. So
# the command gets a session of its own (setsid) whose autogroup is set to nice 19 as well. The
# autogroup is set from inside the new session: writing /proc/<pid>/autogroup from the parent
# could land on the parent's own group if setsid has not run yet.
set -euo pipefail
(($#)) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
if [[ "$(ps -o sid= -p $$ | tr -d ' ')" != "$$" ]]; then
  exec setsid "$0" "$@"
fi
if [[ -w /proc/$$/autogroup ]]; then echo 19 >"/proc/$$/autogroup" 2>/dev/null || true; fi
exec nice -n 19 "$@"
