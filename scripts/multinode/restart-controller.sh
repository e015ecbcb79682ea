#!/usr/bin/env bash
# Restart a multi-node cluster's controller (slurmctld or sge_qmaster), as an admin's
# restart or a controller host's reboot would: SIGTERM, time for it to save its state,
# SECONDS more with no controller at all, then the cluster's start script, which starts
# only what is missing. The nodes and their running jobs are not touched.
# Usage: restart-controller.sh slurm|sge [SECONDS]      (default 0). Prints the seconds the
# controller was away on stdout.

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[[ $# -ge 1 && $1 =~ ^(slurm|sge)$ && ${2:-0} =~ ^[0-9]+(\.[0-9]+)?$ ]] \
  || die "usage: restart-controller.sh slurm|sge [SECONDS]"
kind=$1 away=${2:-0}
if [[ $kind == slurm ]]; then
  pidfile=$MN_DIR/slurm/run/slurmctld.pid comm=slurmctld
else
  pidfile=$MN_DIR/sge/qmaster/qmaster.pid comm=sge_qmaster
fi
daemon_pid "$pidfile" "$comm" >/dev/null || die "$comm is not running: start it with start-$kind.sh"
start=${EPOCHREALTIME//[.,]/}
(
  mn_lock
  stop_daemon "$pidfile" "$comm"
)
log "$comm stopped after $(elapsed) s"
sleep "$away"
# The start script takes the lock itself; its export lines are not wanted here. No probe
# jobs: the nodes may be busy with the jobs that outlived the controller.
GRIDMAP_MN_PROBE=0 bash "$MN_SCRIPTS/start-$kind.sh" >/dev/null
d=$((${EPOCHREALTIME//[.,]/} - start))
log "$comm back after $(elapsed) s"
printf '%d.%d\n' $((d / 1000000)) $((d % 1000000 / 100000))
