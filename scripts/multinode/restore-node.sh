#!/usr/bin/env bash
# Bring a node back after kill-node.sh or cut-node.sh: its link up, then the start
# script of its cluster with the cluster's current number of nodes, which restarts
# whatever is missing on it and returns when every node takes jobs again.
# Usage: restore-node.sh NODE      (e.g. mn-slurm2, mn-sge2). Idempotent.
# stdout: the cluster's client environment, as the start scripts print it.

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[[ $# -eq 1 ]] || die "usage: restore-node.sh NODE (e.g. mn-slurm2 or mn-sge2)"
check_node "$1"
case $1 in
  mn-slurm*) prefix=mn-slurm start=start-slurm.sh ;;
  *) prefix=mn-sge start=start-sge.sh ;;
esac
# the number of nodes: the highest K of the cluster's nodes
count=$(nodes_of "$prefix" | sed "s/^$prefix//" | sort -n | tail -n 1)
mn_lock
ip link set "v-$1" up 2>/dev/null || true
exec 9>&- # the start script takes the lock itself
exec "$MN_SCRIPTS/$start" "$count"
