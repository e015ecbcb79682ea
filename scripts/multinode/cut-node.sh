#!/usr/bin/env bash
# Cut a node off the network (down), or plug it back in (up): the host end of its veth
# pair, v-NODE, a port of the bridge, goes down or up. Everything on the node keeps
# running but reaches nothing and is reached by nothing, so the controller declares it
# dead and may start its jobs again elsewhere while the first copies still run (split
# brain); when the link is back, the node re-registers and its orphaned jobs are killed.
# Usage: cut-node.sh NODE down|up      (e.g. mn-slurm3 down). Idempotent.

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[[ $# -eq 2 && $2 =~ ^(up|down)$ ]] || die "usage: cut-node.sh NODE down|up (e.g. mn-slurm3 down)"
mn_lock
check_node "$1"
ip link show "v-$1" >/dev/null 2>&1 || die "node $1 has no link v-$1 (stop.sh and a start script recreate it)"
ip link set "v-$1" "$2"
if [[ $2 == up ]]; then ip link set "v-$1" master "$MN_BRIDGE"; fi
log "node $1: network $2"
