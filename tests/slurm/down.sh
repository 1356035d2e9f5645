#!/usr/bin/env bash
# Stop exactly the daemons tests/slurm/up.sh started (make slurm-down), newest first; the
# packages, configuration and accounting database stay, so the next up.sh takes seconds.
set -uo pipefail
STATE=${NC_SLURM_STATE:-/var/lib/nc-repro-slurm}
[ -s "$STATE/started" ] || { echo "slurm-down: nothing started by up.sh"; exit 0; }
for entry in $(tac "$STATE/started"); do
    name=${entry%%:*} pidfile=${entry#*:}
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "slurm-down: stopped $name ($pid)"
    fi
done
: > "$STATE/started"
