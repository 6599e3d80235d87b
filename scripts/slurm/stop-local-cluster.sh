#!/usr/bin/env bash
# Stop the one-node test cluster started by scripts/slurm/start-local-cluster.sh.
#
#   stop-local-cluster.sh              cancel its jobs, stop slurmd and slurmctld, and munged if
#                                      start-local-cluster.sh started it
#   stop-local-cluster.sh --keep-munge leave munged running (used by start on a restart)
#   stop-local-cluster.sh --purge      also remove /etc/slurm/slurm.conf (only if this script
#                                      family wrote it) and the state directory
# Packages stay installed. Only the daemons named in its own pid files are signalled.
set -euo pipefail

GM_SLURM_DIR=${GM_SLURM_DIR:-/var/spool/genmeasures-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# Written by genmeasures scripts/slurm/start-local-cluster.sh"
keep_munge=0
purge=0
for arg in "$@"; do
    case "$arg" in
        --keep-munge) keep_munge=1 ;;
        --purge) purge=1 ;;
        *) echo "usage: $0 [--keep-munge] [--purge]" >&2; exit 2 ;;
    esac
done

say() { echo "stop-local-cluster: $*" >&2; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else say "needs root or sudo for: $*"; exit 1; fi
}
alive() { [ -r "$1" ] && as_root kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pidfile() {   # stop_pidfile NAME FILE: SIGTERM, then SIGKILL after 10 s
    local name=$1 file=$2 pid
    alive "$file" || return 0
    pid=$(cat "$file")
    say "stopping $name (pid $pid)"
    as_root kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do as_root kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    say "$name did not stop in 10 s: SIGKILL"
    as_root kill -KILL "$pid" 2>/dev/null || true
}

ctld_pid=$GM_SLURM_DIR/run/slurmctld.pid
d_pid=$GM_SLURM_DIR/run/slurmd.pid
if [ -e "$CONF" ] && grep -qxF "$MARKER" "$CONF" && alive "$ctld_pid"; then
    # this cluster's own jobs only: its one partition
    if [ -n "$(timeout 5 squeue -h -p debug -o %i 2>/dev/null)" ]; then
        say "cancelling the jobs of partition debug"
        as_root scancel -p debug 2>/dev/null || true
        for _ in $(seq 30); do
            [ -z "$(timeout 5 squeue -h -p debug -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi
stop_pidfile slurmd "$d_pid"
stop_pidfile slurmctld "$ctld_pid"
if [ "$keep_munge" -eq 0 ] && [ -e "$GM_SLURM_DIR/run/munged.started-here" ]; then
    stop_pidfile munged /run/munge/munged.pid
    as_root rm -f "$GM_SLURM_DIR/run/munged.started-here"
fi
if [ "$purge" -eq 1 ]; then
    if [ -e "$CONF" ] && grep -qxF "$MARKER" "$CONF"; then as_root rm -f "$CONF"; fi
    as_root rm -rf "$GM_SLURM_DIR"
fi
say "stopped"
