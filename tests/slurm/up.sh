#!/usr/bin/env bash
# A single-node SLURM cluster on this machine for the tests (make slurm-up; root, Debian/Ubuntu):
# installs slurm-wlm, slurmdbd, munge and mariadb-server when missing, writes /etc/slurm/slurm.conf
# and slurmdbd.conf for one node with this machine's CPUs and memory (accounting through
# slurmdbd, so sacct answers), starts munged, MariaDB, slurmdbd, slurmctld and slurmd, and waits
# until sinfo shows the node idle. Memory limits are enforced without cgroups: slurmstepd samples each
# step's memory every second (jobacct_gather/linux, proportional set size so that shared pages count once)
# and kills a step over its --mem (OverMemoryKill),
# which sacct then shows as OUT_OF_MEMORY. Running it again is harmless: what runs is left running,
# except slurmctld and slurmd when this script changed slurm.conf (they are restarted to read it).
# tests/slurm/down.sh stops exactly the daemons this script started (listed in $STATE/started).
set -euo pipefail

STATE=${NC_SLURM_STATE:-/var/lib/nc-repro-slurm}
CLUSTER=nctest
MARK="# written by nc-repro tests/slurm/up.sh"
say() { echo "slurm-up: $*"; }

if [ "$(id -u)" != 0 ]; then
    echo "slurm-up: needs root (sudo make slurm-up): it installs packages and starts daemons" >&2
    exit 1
fi
start=$(date +%s)

# ---- packages
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server sinfo:slurm-client; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing slurm-wlm slurmdbd munge mariadb-server (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # no service starts from package scripts (no systemd in containers; we start them below)
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null; }
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
    say "installed in $(( $(date +%s) - start )) s"
fi

mkdir -p "$STATE" /etc/slurm /run/munge /var/log/munge
touch "$STATE/started"
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
started() { grep -qx "$1" "$STATE/started" || echo "$1" >> "$STATE/started"; }

# ---- configuration (a file that this script did not write is never overwritten)
write_conf() {   # path mode content
    if [ -e "$1" ] && ! grep -qF "$MARK" "$1"; then
        say "$1 exists and was not written by this script: left as it is"
        return
    fi
    printf '%s\n%s\n' "$MARK" "$3" > "$1.new" && chmod "$2" "$1.new"
    if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv "$1.new" "$1"; CHANGED="$CHANGED $1"; fi
}
CHANGED=""
HOST=$(hostname -s)
NODE=$(/usr/sbin/slurmd -C 2>/dev/null | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST/")
[ -n "$NODE" ] || NODE="NodeName=$HOST CPUs=$(nproc) RealMemory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))"
write_conf /etc/slurm/slurm.conf 644 "ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill,UsePss
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=600
SlurmdTimeout=60
$NODE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
write_conf /etc/slurm/slurmdbd.conf 600 "AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log"
mkdir -p "$STATE/ctld" "$STATE/d"

# ---- munge
if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    started munged:/run/munge/munged.pid
fi

# ---- MariaDB and the accounting database
if ! mysqladmin ping >/dev/null 2>&1; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null 2>&1
    (cd / && nohup mysqld_safe --pid-file=/run/mysqld/mysqld.pid >/dev/null 2>&1 &)
    for _ in $(seq 1 100); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.2; done
    started mariadb:/run/mysqld/mysqld.pid
fi
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# ---- SLURM daemons (restarted when slurm.conf changed above: they read it only when they start)
if [[ "$CHANGED" == *slurm.conf* ]]; then
    for daemon in slurmd slurmctld; do
        if alive "$STATE/$daemon.pid"; then
            say "slurm.conf changed: restarting $daemon"
            pid=$(cat "$STATE/$daemon.pid"); kill "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
fi
if ! alive "$STATE/slurmdbd.pid"; then
    /usr/sbin/slurmdbd
    started slurmdbd:$STATE/slurmdbd.pid
    for _ in $(seq 1 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
fi
sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
if ! alive "$STATE/slurmctld.pid"; then
    /usr/sbin/slurmctld
    started slurmctld:$STATE/slurmctld.pid
fi
if ! alive "$STATE/slurmd.pid"; then
    /usr/sbin/slurmd
    started slurmd:$STATE/slurmd.pid
fi
for _ in $(seq 1 150); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
    if [[ "$state" =~ ^(idle|mix|alloc)$ ]]; then break; fi
    sleep 0.2
done
if ! [[ "$state" =~ ^(idle|mix|alloc)$ ]]; then
    echo "slurm-up: the node is '$state', not idle; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
    exit 1
fi
say "cluster $CLUSTER up: node $HOST $state ($(sinfo -h -N -o '%c CPUs, %m MB')) in $(( $(date +%s) - start )) s"
