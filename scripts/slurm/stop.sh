#!/usr/bin/env bash
# Stop the single-node Slurm cluster that start.sh started. Idempotent, bounded in time.
#
#   stop.sh               stop slurmctld + slurmd, then slurmdbd, MariaDB and munged
#   stop.sh --slurm-only  stop only slurmctld + slurmd (a quick restart keeps
#                         accounting and munge up)
#
# Jobs still running are not killed: their slurmstepd keeps going, and start.sh picks
# them up again (Slurm's normal behaviour). Cancel them first (scancel -u USER) if a
# test needs a clean slate. Grid Engine daemons are never touched.
set -euo pipefail

STOP_TIMEOUT=${GRIDMAP_SLURM_STOP_TIMEOUT:-30}
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid
MUNGE_PID=/run/munge/munged.pid

only_slurm=0
case ${1:-} in
  "") ;;
  --slurm-only) only_slurm=1 ;;
  *)
    echo "usage: $0 [--slurm-only]" >&2
    exit 2
    ;;
esac

log() { printf 'slurm/stop: %s\n' "$*"; }
[[ $EUID -eq 0 ]] || {
  echo "slurm/stop: ERROR: must run as root" >&2
  exit 1
}

# shellcheck source=daemons.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"

# Wait up to $1 seconds until the daemon is gone.
wait_gone() {
  local limit=$1 pidfile=$2 name=$3 deadline
  deadline=$((SECONDS + limit))
  while alive "$pidfile" "$name"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# SIGTERM (the daemons save their state on it), bounded wait, SIGKILL as a last resort.
stop_daemon() {
  local pidfile=$1 name=$2 pid
  alive "$pidfile" "$name" || return 0
  pid=$(head -n 1 "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$STOP_TIMEOUT" "$pidfile" "$name"; then
    log "WARNING: $name (pid $pid) still running ${STOP_TIMEOUT} s after SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone 10 "$pidfile" "$name" || {
      echo "slurm/stop: ERROR: could not stop $name (pid $pid)" >&2
      return 1
    }
  fi
  log "stopped $name"
}

# Serialize with start.sh.
exec 9>/run/lock/gridmap-slurm.lock
flock -w 600 9 || {
  echo "slurm/stop: ERROR: another start.sh/stop.sh held /run/lock/gridmap-slurm.lock for 600 s" >&2
  exit 1
}

T0=$SECONDS
rc=0

# `scontrol shutdown` stops slurmctld and tells every slurmd to stop too; it is the
# clean way (state saved, no "node not responding" on the next start).
if alive "$CTLD_PID" slurmctld && command -v scontrol >/dev/null; then
  timeout 15 scontrol shutdown >/dev/null 2>&1 || true
  wait_gone "$STOP_TIMEOUT" "$CTLD_PID" slurmctld || true
  # slurmd usually exits within a second or two, but not always: with a job just
  # launched it was measured still running 30 s later. SIGTERM below is just as clean.
  wait_gone 5 "$SLURMD_PID" slurmd || true
  if ! alive "$CTLD_PID" slurmctld; then log "slurmctld shut down"; fi
fi
# Whatever did not go with the shutdown (or slurmd alone, without a controller).
stop_daemon "$SLURMD_PID" slurmd || rc=1
stop_daemon "$CTLD_PID" slurmctld || rc=1
# slurmctld runs as user slurm and cannot delete its pid file in /run.
if ! alive "$CTLD_PID" slurmctld; then rm -f "$CTLD_PID"; fi

if ((!only_slurm)); then
  # After slurmctld, so that it could hand its last job records to slurmdbd.
  stop_daemon "$DBD_PID" slurmdbd || rc=1
  if [[ -x /etc/init.d/mariadb ]] && mariadb-admin ping >/dev/null 2>&1; then
    timeout 120 /etc/init.d/mariadb stop >/dev/null 2>&1 || true
    if mariadb-admin ping >/dev/null 2>&1; then
      echo "slurm/stop: ERROR: MariaDB is still running after '/etc/init.d/mariadb stop'" >&2
      rc=1
    else
      log "stopped MariaDB"
    fi
  fi
  stop_daemon "$MUNGE_PID" munged || rc=1
fi

if ((rc == 0)); then log "done in $((SECONDS - T0)) s"; fi
exit "$rc"
