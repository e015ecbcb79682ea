#!/usr/bin/env bash
# Stop the multi-node test clusters and delete their nodes.
# Usage: stop.sh [slurm|sge|all] [--purge]      (default: all)
#   slurm: slurmctld and the cluster's munged (by their pid files), then every process
#          of the mn-slurm* nodes (slurmd, jobs, holder), their veths and namespaces.
#   sge:   sge_qmaster (by its pid file), then the mn-sge* nodes likewise.
#   When no node is left: the bridge, our /etc/hosts lines and the nodes' hosts file go.
#   The client environment file of a stopped cluster is removed.
#   --purge: also the cluster's configuration, state and logs (/srv/gridmap-mn/slurm or
#            .../sge and the cell link /var/lib/gridengine/multinode); with "all", all of
#            /srv/gridmap-mn, including the shared directory.
# With --purge the controllers are SIGKILLed (their state is deleted anyway: no need to
# wait 5-20 s for sge_qmaster's shutdown); otherwise they get SIGTERM and time to save it.
# Daemons are stopped by the pid in their pid file, checked against their name, never by
# process name: the single-node clusters (and any other) are not touched.
# Idempotent: stopping what is not running does nothing. Exits 1 if anything is left.

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

WHAT=all PURGE=0
for a in "$@"; do
  case $a in
    slurm | sge | all) WHAT=$a ;;
    --purge) PURGE=1 ;;
    *) die "usage: stop.sh [slurm|sge|all] [--purge]" ;;
  esac
done
mn_lock
# stop_controller PIDFILE COMM
stop_controller() { if ((PURGE)); then kill_daemon "$@"; else stop_daemon "$@"; fi; }

delete_nodes() { # delete_nodes PREFIX
  local n
  for n in $(nodes_of "$1"); do
    node_delete "$n"
    log "node $n deleted"
  done
}

if [[ $WHAT == slurm || $WHAT == all ]]; then
  stop_controller "$MN_DIR/slurm/run/slurmctld.pid" slurmctld
  delete_nodes mn-slurm # slurmd, slurmstepd and the jobs die with their node
  stop_daemon "$MN_RUN/munge/munged.pid" munged
  rm -rf "$MN_RUN/munge" "$MN_DIR"/slurm/run/*.pid
  rm -f "${GRIDMAP_MN_SLURM_ENV_FILE:-/etc/gridmap-mn-slurm.env}"
  if ((PURGE)); then rm -rf "$MN_DIR/slurm"; fi
  log "Slurm cluster stopped$( ((PURGE)) && echo ', its state deleted')"
fi

if [[ $WHAT == sge || $WHAT == all ]]; then
  # The qmaster first: with its execds gone it takes much longer to shut down.
  stop_controller "$MN_DIR/sge/qmaster/qmaster.pid" sge_qmaster
  delete_nodes mn-sge # sge_execd, the shepherds and the jobs die with their node
  rm -f "${GRIDMAP_MN_SGE_ENV_FILE:-/etc/gridmap-mn-sge.env}"
  if ((PURGE)); then
    if [[ -L /var/lib/gridengine/multinode ]]; then rm -f /var/lib/gridengine/multinode; fi
    rm -rf "$MN_DIR/sge"
  fi
  log "Grid Engine cell stopped$( ((PURGE)) && echo ', its state deleted')"
fi

if [[ -z $(nodes_of mn-) ]]; then
  ip link del "$MN_BRIDGE" 2>/dev/null || true
  hosts_remove " $MN_HOSTS_TAG\$"
  # /run/netns became a mount point with our first node: undo it if nothing uses it
  if [[ -e $MN_RUN/netns-mount ]] && mountpoint -q /run/netns && [[ -z $(ls -A /run/netns) ]]; then
    umount /run/netns 2>/dev/null || umount -l /run/netns
  fi
  rm -rf "${MN_RUN:?}" "${MN_DIR:?}/etc"
  if [[ $WHAT == all ]] && ((PURGE)); then rm -rf "$MN_DIR"; fi
  log "bridge $MN_BRIDGE and the /etc/hosts lines removed"
fi

# Anything left? (zombies are not counted: PID 1 reaps them in its own time)
left=""
daemons=()
[[ $WHAT == sge ]] || daemons+=("$MN_DIR/slurm/run/slurmctld.pid:slurmctld" "$MN_RUN/munge/munged.pid:munged")
[[ $WHAT == slurm ]] || daemons+=("$MN_DIR/sge/qmaster/qmaster.pid:sge_qmaster")
for f in "${daemons[@]}"; do
  if pid=$(daemon_pid "${f%:*}" "${f#*:}"); then left+=" ${f#*:} (pid $pid)"; fi
done
for n in $(nodes_of "$([[ $WHAT == all ]] && echo mn- || echo "mn-$WHAT")"); do left+=" node $n"; done
if [[ $WHAT == all ]]; then
  ! ip link show "$MN_BRIDGE" >/dev/null 2>&1 || left+=" bridge $MN_BRIDGE"
  ! grep -qF " $MN_HOSTS_TAG" /etc/hosts || left+=" /etc/hosts lines"
  ! grep -qF "gridmap-mn" /proc/self/mountinfo || left+=" mounts: $(grep -F gridmap-mn /proc/self/mountinfo | awk '{print $5}' | tr '\n' ' ')"
fi
[[ -z $left ]] || die "still there after stop:$left"
log "done in $(elapsed) s"
