#!/usr/bin/env bash
# Stop the one-node SLURM cluster ci/slurm/start_local.sh started: slurmd, slurmctld, and munged
# when that script started it (not with --keep-munge). Only the processes named in its pid files
# under $CKPTGATE_SLURM_DIR (default /var/tmp/ckptgate-slurm) are stopped; state and logs stay.
set -uo pipefail

BASE=${CKPTGATE_SLURM_DIR:-/var/tmp/ckptgate-slurm}
keep_munge=no
[ "${1:-}" = "--keep-munge" ] && keep_munge=yes

stop() {  # stop NAME PIDFILE: SIGTERM, then SIGKILL after 15 s
    local name=$1 pidfile=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        echo "+ kill $pid  # $name"
        kill "$pid"
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "+ kill -KILL $pid  # $name did not stop"
            kill -KILL "$pid"
        fi
    fi
    rm -f "$pidfile"
}

stop slurmd "$BASE/run/slurmd.pid"
stop slurmctld "$BASE/run/slurmctld.pid"
if [ "$keep_munge" = no ]; then
    stop munged "$BASE/run/munged.pid"
fi
exit 0
