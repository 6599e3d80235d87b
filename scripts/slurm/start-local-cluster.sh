#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine, on 127.0.0.1, for tests/cluster (pytest -m slurm).
#
# Idempotent: a second call with the cluster already up only checks it and prints "ready".
# It installs Debian's packages if missing (slurmctld slurmd slurm-client munge), writes
# /etc/slurm/slurm.conf (refusing to overwrite one it did not write), starts munged, slurmctld and
# slurmd as plain daemons (no systemd), waits until `sinfo` shows the node idle and prints one
# line starting with "ready". Needs root, or sudo without a password. Stop it with
# scripts/slurm/stop-local-cluster.sh.
#
# Where things are (every path and port can be changed through the variables below):
#   config      /etc/slurm/slurm.conf (the default path, so sbatch/srun/submitit find it unaided)
#   state       $GM_SLURM_DIR (default /var/spool/genmeasures-slurm): ctld/ (StateSaveLocation),
#               slurmd/ (SlurmdSpoolDir), log/slurmctld.log, log/slurmd.log, run/*.pid
#   munge       /run/munge/munge.socket.2 (a unix socket; munge never opens a TCP port)
#   listening   slurmctld 127.0.0.1:$GM_SLURM_CTLD_PORT (6817), slurmd 127.0.0.1:$GM_SLURMD_PORT
#               (6818), each srun of a job step on 127.0.0.1 within $GM_SLURM_SRUN_PORTS
#               (60001-60100) -- as long as the hostname resolves to 127.0.0.x (see NoInAddrAny)
#
# Tuned for tests, not throughput: a requeued job waits cred_expire seconds before it may start
# again (SLURM's default 120 s; here $GM_SLURM_CRED_EXPIRE, 5, the smallest SLURM accepts: slurmctld
# logs "AuthInfo=cred_expire=N invalid" for less), and the scheduler looks every
# 2 s instead of every minute: a requeued job starts again about 7 s after its requeue.
set -euo pipefail

GM_SLURM_DIR=${GM_SLURM_DIR:-/var/spool/genmeasures-slurm}
GM_SLURM_CTLD_PORT=${GM_SLURM_CTLD_PORT:-6817}
GM_SLURMD_PORT=${GM_SLURMD_PORT:-6818}
GM_SLURM_SRUN_PORTS=${GM_SLURM_SRUN_PORTS:-60001-60100}
GM_SLURM_CRED_EXPIRE=${GM_SLURM_CRED_EXPIRE:-5}
GM_SLURM_WAIT_S=${GM_SLURM_WAIT_S:-120}
CONF=/etc/slurm/slurm.conf
[ "$GM_SLURM_CRED_EXPIRE" -ge 5 ] 2>/dev/null || { echo "GM_SLURM_CRED_EXPIRE must be >= 5" >&2; exit 2; }
MARKER="# Written by genmeasures scripts/slurm/start-local-cluster.sh"

say() { echo "start-local-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "needs root or sudo for: $*"; fi
}
alive() { [ -r "$1" ] && as_root kill -0 "$(cat "$1")" 2>/dev/null; }

started=$(date +%s.%N)

# --- packages ---------------------------------------------------------------------------------
missing=()
for pkg in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    # policy-rc.d denies the packages' own service starts in containers; we start the daemons below
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# --- munge ------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then   # Debian's postinst makes one; make sure anyway
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then as_root mungekey --create --force
    else as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    as_root chown munge:munge /etc/munge/munge.key
    as_root chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    as_root install -d -o munge -g munge -m 0755 /run/munge
    as_root install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    as_root runuser -u munge -- /usr/sbin/munged
    # so that stop-local-cluster.sh stops only a munged this script started
    as_root install -d -m 0755 "$GM_SLURM_DIR" "$GM_SLURM_DIR/run"
    as_root touch "$GM_SLURM_DIR/run/munged.started-here"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- slurm.conf -------------------------------------------------------------------------------
node=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)   # below the real total
slurm_user=slurm
getent passwd slurm >/dev/null || slurm_user=root
new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
cat >"$new_conf" <<EOF
$MARKER
# (a one-node test cluster on 127.0.0.1; rewritten on each start, removed by stop --purge)
ClusterName=genmeasures-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$GM_SLURM_CTLD_PORT
SlurmdPort=$GM_SLURMD_PORT
SrunPortRange=$GM_SLURM_SRUN_PORTS
# bind to what the names resolve to (127.0.0.1), not to every address of the machine
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=$slurm_user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=$GM_SLURM_CRED_EXPIRE
StateSaveLocation=$GM_SLURM_DIR/ctld
SlurmdSpoolDir=$GM_SLURM_DIR/slurmd
SlurmctldPidFile=$GM_SLURM_DIR/run/slurmctld.pid
SlurmdPidFile=$GM_SLURM_DIR/run/slurmd.pid
SlurmctldLogFile=$GM_SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$GM_SLURM_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: process tracking through the process tree, no task containment or accounting
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# jobs may be requeued (submitit requeues itself with scontrol requeue on the time-limit signal)
JobRequeue=1
MailProg=/bin/true
ReturnToService=2
KillWait=10
MinJobAge=300
InactiveLimit=0
Waittime=0
NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=7-00:00:00 State=UP
EOF

if [ -e "$CONF" ] && ! grep -qxF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real cluster's config"
fi
ctld_pid=$GM_SLURM_DIR/run/slurmctld.pid
d_pid=$GM_SLURM_DIR/run/slurmd.pid
if [ -e "$CONF" ] && cmp -s "$new_conf" "$CONF" && alive "$ctld_pid" && alive "$d_pid"; then
    say "already running with this configuration"
else
    if alive "$ctld_pid" || alive "$d_pid"; then
        say "configuration changed or a daemon is down: restarting"
        "$(dirname "$0")/stop-local-cluster.sh" --keep-munge
    fi
    as_root install -d -m 0755 /etc/slurm "$GM_SLURM_DIR" "$GM_SLURM_DIR/slurmd" "$GM_SLURM_DIR/run"
    as_root install -d -o "$slurm_user" -m 0755 "$GM_SLURM_DIR/ctld" "$GM_SLURM_DIR/log"
    as_root chown "$slurm_user" "$GM_SLURM_DIR/run"
    as_root install -m 0644 "$new_conf" "$CONF"
    # -i: ignore job state saved by an earlier run (a clean cluster each start)
    as_root /usr/sbin/slurmctld -i
    as_root /usr/sbin/slurmd -N "$node"
fi

# --- wait for the node ------------------------------------------------------------------------
deadline=$(( $(date +%s) + GM_SLURM_WAIT_S ))
state=""
while :; do
    state=$(timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        drain*|down*)
            as_root scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        say "node $node is '${state:-no answer}' after ${GM_SLURM_WAIT_S}s; logs in $GM_SLURM_DIR/log"
        as_root tail -n 20 "$GM_SLURM_DIR/log/slurmctld.log" "$GM_SLURM_DIR/log/slurmd.log" >&2 || true
        exit 1
    fi
    sleep 0.5
done
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
echo "ready: SLURM $(sinfo -V | awk '{print $2}') node $node ($cpus CPUs, ${mem_mb} MB) partition debug on 127.0.0.1:$GM_SLURM_CTLD_PORT, $state, in ${took}s"
