#!/usr/bin/env bash
# Crash a node, as a power loss would: SIGKILL every process in the node's namespaces
# (slurmd or sge_execd, slurmstepd or the shepherds, the jobs, the holder). Nothing tells
# the controller; it notices only when the node stops answering (Slurm: NOT_RESPONDING
# after ~15 s, DOWN after ~30 s; Grid Engine: state u after ~20-35 s).
# The node's host name, /tmp and mounts are gone; its network namespace and veth stay
# (the cable is still plugged in). restore-node.sh NODE, or start-slurm.sh / start-sge.sh
# with the same N, brings it back.
# Usage: kill-node.sh NODE      (e.g. mn-slurm2, mn-sge2). Idempotent.

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[[ $# -eq 1 ]] || die "usage: kill-node.sh NODE (e.g. mn-slurm2 or mn-sge2)"
mn_lock
check_node "$1"
node_kill "$1"
log "node $1 killed (pids: ${MN_KILLED:-none, it was down})"
