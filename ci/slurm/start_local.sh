#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (node `localhost`, partition `debug`), for
# `ckptgate slurm`'s integration test and for trying job arrays by hand. Idempotent: a second call
# finds the daemons running and only waits for the node. Needs root (apt-get, munged, slurmd).
#
#   bash ci/slurm/start_local.sh          # then: export SLURM_CONF=<printed path>; sinfo
#   bash ci/slurm/stop_local.sh
#
# Everything SLURM writes (slurm.conf, state, spool, logs, pid files) lives under
# $CKPTGATE_SLURM_DIR (default /var/tmp/ckptgate-slurm); the system's /etc/slurm is not touched,
# so clients find the cluster through SLURM_CONF. munge is the system's (its key
# /etc/munge/munge.key, created when missing, and its socket /run/munge/munge.socket.2).
#
# Settings for containers: no cgroups (proctrack/linuxproc, task/none, jobacct_gather/none), since
# a container's cgroup tree is usually read-only or emulated; no accounting database
# (accounting_storage/none), so `sacct` does not work here: ckptgate reads results from the job
# folders and liveness from squeue.
set -euo pipefail

BASE=${CKPTGATE_SLURM_DIR:-/var/tmp/ckptgate-slurm}
CONF="$BASE/slurm.conf"
NODE=localhost
WAIT_S=${CKPTGATE_SLURM_WAIT_S:-60}

run() { echo "+ $*"; "$@"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$(id -u)" -ne 0 ]; then
    echo "start_local.sh: needs root (apt-get, munged, slurmd run as root here)" >&2
    exit 77
fi

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -q
    run apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

# 2. munge: a key, then the daemon (as the munge user, as its service runs it).
if [ ! -s /etc/munge/munge.key ]; then
    run mkdir -p /etc/munge
    run mungekey --create --keyfile=/etc/munge/munge.key
    run chown munge:munge /etc/munge/munge.key
    run chmod 0400 /etc/munge/munge.key
fi
run mkdir -p "$BASE"/{state,spool,log,run}
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    run install -d -o munge -g munge -m 0755 /run/munge
    run install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    run runuser -u munge -- munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    cp /run/munge/munged.pid "$BASE/run/munged.pid"  # started here: stop_local.sh stops it
fi
munge -n | unmunge >/dev/null || { echo "start_local.sh: munge does not work" >&2; exit 1; }

# 3. slurm.conf: the node as slurmd -C sees it, with memory held back for the system.
read -r cpus boards sockets cores threads mem < <(slurmd -C | head -1 | tr ' ' '\n' | awk -F= '
    {v[$1]=$2} END {print v["CPUs"], v["Boards"], v["SocketsPerBoard"], v["CoresPerSocket"], v["ThreadsPerCore"], v["RealMemory"]}')
margin=$(( mem / 10 > 1024 ? mem / 10 : 1024 ))
real_mem=$(( mem - margin ))
new_conf=$(cat <<EOF
# Written by ci/slurm/start_local.sh: a one-node test cluster.
ClusterName=ckptgate-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MailProg=/bin/true
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    if alive "$BASE/run/slurmctld.pid" || alive "$BASE/run/slurmd.pid"; then
        echo "slurm.conf changed: restarting the daemons"
        bash "$(dirname "$0")/stop_local.sh" --keep-munge
    fi
    printf '%s\n' "$new_conf" > "$CONF"
    echo "wrote $CONF (node $NODE: $cpus CPUs, RealMemory $real_mem MB of $mem)"
fi
export SLURM_CONF="$CONF"

# 4. The daemons (each forks into the background and writes its pid file).
if ! alive "$BASE/run/slurmctld.pid"; then
    run slurmctld -f "$CONF"
fi
if ! alive "$BASE/run/slurmd.pid"; then
    run slurmd -f "$CONF" -N "$NODE"
fi

# 5. Wait for the node to be idle (a node left down or drained by an earlier run is resumed).
state=""
for _ in $(seq "$WAIT_S"); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mix|alloc) break ;;
        down*|drain*|drng*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
if [ "$state" != idle ] && [ "$state" != mix ] && [ "$state" != alloc ]; then
    echo "start_local.sh: node $NODE is '${state:-not listed}' after ${WAIT_S}s; logs in $BASE/log" >&2
    tail -n 20 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 || true
    exit 1
fi
run sinfo
echo "export SLURM_CONF=$CONF"
