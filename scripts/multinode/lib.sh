# shellcheck shell=bash
# shellcheck disable=SC2034 # variables for the scripts that source this file
# Shared by the multi-node test cluster scripts in this folder; sourced, not run.
#
# A "node" is a set of Linux namespaces on this one machine:
#   - a network namespace gridmap-NODE (persistent: /run/netns/gridmap-NODE) whose eth0
#     is one end of a veth pair; the other end, v-NODE, is a port of the bridge
#     $MN_BRIDGE in the root namespace, which carries the controller's address;
#   - a UTS and a mount namespace, held open by a "holder" process (sleep infinity)
#     that lives in the network namespace: the node's own host name, a private tmpfs
#     on /tmp, and the cluster's /etc/hosts bind-mounted over the host's.
# Everything else is the host's file system, which plays the cluster's shared file
# system: $MN_DIR (with $MN_SHARED for jobs' files), /usr, /root, the project and its
# Python. Paths of these under /tmp (a clone, a virtualenv) would be hidden by the private
# /tmp, so each node gets them bind-mounted back at the same path.
# Anything runs on a node through node_exec (nsenter into the holder's namespaces); the
# daemons started that way pass hostname, address and /tmp on to every job.

set -eEuo pipefail
# A command that fails unexpectedly names itself (set -e alone exits silently).
trap 'printf "[multinode/%s] ERROR: line %s: \"%s\" failed\n" "${0##*/}" "$LINENO" "$BASH_COMMAND" >&2' ERR
# System tools after the caller's PATH: the caller's python3 (pyenv, a virtualenv) is
# the one whose installation the nodes must see.
export PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The daemons and node holders started here outlive the script. A descriptor the caller
# passed on, such as the lock file that flock(1) holds while it runs a script, would stay
# open in them, and the lock held, for as long as they live: close every inherited
# descriptor but stdin, stdout, stderr and bash's own (255, the script).
for _fd in /proc/$$/fd/*; do
  _fd=${_fd##*/}
  if ((_fd > 2 && _fd < 255)); then eval "exec ${_fd}>&-" 2>/dev/null || true; fi
done
unset _fd

MN_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
MN_DIR=${GRIDMAP_MN_DIR:-/srv/gridmap-mn}   # configuration, state, logs of both clusters
MN_SHARED=$MN_DIR/shared                     # the "NFS" directory jobs and tests share
MN_RUN=$MN_DIR/run                           # holders' pid files, namespace ids, munge
MN_NET=${GRIDMAP_MN_NET:-10.251}             # first two octets of the private /16
MN_BRIDGE=gridmap-mn
MN_CTL_IP=$MN_NET.0.1                        # the controller's address, on the bridge
MN_CTL_NAME=mn-head                          # its name, on the nodes and in act_qmaster
MN_HOSTS_TAG="# gridmap-multinode"           # marks the lines we add to /etc/hosts
MN_TMP_SIZE=${GRIDMAP_MN_TMP_SIZE:-512m}     # each node's private /tmp (tmpfs)
MN_START_TIMEOUT=${GRIDMAP_MN_START_TIMEOUT:-90}
MN_LOCK=/run/lock/gridmap-multinode.lock
MN_T0=${EPOCHREALTIME//[.,]/}

log() { printf '[multinode/%s] %s\n' "${0##*/}" "$*" >&2; }

# die MESSAGE [LOG...]: print the error and the end of the logs that explain it, exit 1.
die() {
  local f
  printf '[multinode/%s] ERROR: %s\n' "${0##*/}" "$1" >&2
  shift
  for f in "$@"; do
    if [[ -s $f ]]; then
      printf -- '--- last lines of %s ---\n' "$f" >&2
      tail -n 15 "$f" >&2
    fi
  done
  exit 1
}

# Seconds since the script started, with one decimal.
elapsed() {
  local d=$((${EPOCHREALTIME//[.,]/} - MN_T0))
  printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}

[[ $EUID -eq 0 ]] || die "must run as root (it creates namespaces, a bridge and daemons)"
[[ $MN_NET =~ ^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$ ]] ||
  die "GRIDMAP_MN_NET must be the first two octets of a private /16 (e.g. 10.251), not '$MN_NET'"

# One script at a time: two starts would race on the bridge, /etc/hosts and the
# daemons. fd 9 is closed for every daemon started (it would hold the lock forever).
mn_lock() {
  mkdir -p /run/lock
  exec 9>"$MN_LOCK"
  flock -w 600 9 || die "another multinode script held $MN_LOCK for 600 s"
}

# ---------------------------------------------------------------------------------
# Tools. The base tools are installed when missing (a fresh Debian 12 has most of
# them); Slurm and Grid Engine come from the single-node scripts.
# ---------------------------------------------------------------------------------
need_base_tools() {
  local pair missing=() pkgs=()
  # command:package (Debian 12)
  for pair in ip:iproute2 bridge:iproute2 nsenter:util-linux unshare:util-linux \
    setsid:util-linux flock:util-linux runuser:util-linux mount:mount umount:mount \
    hostname:hostname find:findutils awk:mawk timeout:coreutils; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${pkgs[*]}"
  APT_TIMEOUT=${GRIDMAP_MN_APT_TIMEOUT:-300}
  # shellcheck source=../apt.sh
  . "$MN_SCRIPTS/../apt.sh"
  apt_get update || die "apt-get update failed"
  apt_get install -y --no-install-recommends "${pkgs[@]}" || die "apt-get install ${pkgs[*]} failed"
}

# need_commands WHAT REMEDY COMMAND...: die naming what is missing and how to get it.
need_commands() {
  local what=$1 remedy=$2 c missing=()
  shift 2
  for c in "$@"; do
    if [[ $c == /* ]]; then [[ -e $c ]] || missing+=("$c"); else command -v "$c" >/dev/null 2>&1 || missing+=("$c"); fi
  done
  ((${#missing[@]} == 0)) || die "$what is not installed (missing: ${missing[*]}); $remedy"
}

# ---------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------
# pid_alive PID COMM: PID runs under that name and is not a zombie (PID 1 on these
# machines reaps late: kill -0 and /proc/PID/comm still answer for a zombie).
pid_alive() {
  local state
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
  state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# daemon_pid PIDFILE COMM [NODE]: print the pid of the live daemon named in PIDFILE,
# which must run in NODE's network namespace when NODE is given. Fails otherwise.
daemon_pid() {
  local pid
  pid=$(head -n 1 "$1" 2>/dev/null) || return 1
  pid_alive "$pid" "$2" || return 1
  if [[ -n ${3:-} ]]; then
    [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) == "$(netns_id "$3")" ]] || return 1
  fi
  echo "$pid"
}

# stop_daemon PIDFILE COMM: SIGTERM, wait up to 60 s (sge_qmaster needs 10-25 s to
# shut down), then SIGKILL. Only the process in the pid file, checked by name: other
# Slurm / Grid Engine instances on the machine are never touched.
stop_daemon() {
  local pid i
  pid=$(daemon_pid "$1" "$2") || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    pid_alive "$pid" "$2" || return 0
    sleep 0.1
  done
  log "WARNING: $2 (pid $pid) ignored SIGTERM for 60 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# kill_daemon PIDFILE COMM: SIGKILL at once (for a daemon whose state is deleted next).
kill_daemon() {
  local pid i
  pid=$(daemon_pid "$1" "$2") || return 0
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" "$2" || return 0
    sleep 0.1
  done
}

# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------
# Names and addresses. Slurm nodes mn-slurmK = $MN_NET.1.K, Grid Engine nodes
# mn-sgeK = $MN_NET.2.K, K = 1..MN_MAX_NODES.
# ---------------------------------------------------------------------------------
MN_MAX_NODES=32

check_count() {
  if ! [[ $1 =~ ^[1-9][0-9]*$ ]] || (($1 > MN_MAX_NODES)); then
    die "the number of nodes must be 1..$MN_MAX_NODES, not '$1'"
  fi
}

node_ip() {
  case $1 in
    mn-slurm[1-9] | mn-slurm[1-9][0-9]) echo "$MN_NET.1.${1#mn-slurm}" ;;
    mn-sge[1-9] | mn-sge[1-9][0-9]) echo "$MN_NET.2.${1#mn-sge}" ;;
    *) return 1 ;;
  esac
}

# check_node NODE: NODE is a node name, and it exists.
check_node() {
  node_ip "$1" >/dev/null || die "'$1' is not a node name (mn-slurmK or mn-sgeK)"
  [[ -e /run/netns/gridmap-$1 ]] || die "node $1 does not exist (start-slurm.sh / start-sge.sh create it)"
}

netns_id() { echo "net:[$(stat -L -c %i "/run/netns/gridmap-$1" 2>/dev/null)]"; }

# nodes_of PREFIX: the existing nodes whose names start with PREFIX (mn-slurm, mn-sge).
nodes_of() {
  local ns
  for ns in /run/netns/gridmap-"$1"*; do
    if [[ -e $ns ]]; then echo "${ns#/run/netns/gridmap-}"; fi
  done | sort -V
}

# ---------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------
# The bridge with the controller's address; refuses a /16 this machine already routes.
bridge_up() {
  local routes
  if ! ip link show "$MN_BRIDGE" >/dev/null 2>&1; then
    routes=$(ip -4 route show to root "$MN_NET.0.0/16" 2>/dev/null; ip -4 route show to match "$MN_NET.0.1" 2>/dev/null)
    routes=$(grep -v '^default' <<<"$routes" || true)
    [[ -z $routes ]] || die "$MN_NET.0.0/16 is already routed on this machine ($routes); choose another range with GRIDMAP_MN_NET"
    ip link add "$MN_BRIDGE" type bridge
  fi
  [[ $(ip -4 -o addr show dev "$MN_BRIDGE") == *" $MN_CTL_IP/16 "* ]] ||
    ip addr add "$MN_CTL_IP/16" dev "$MN_BRIDGE"
  ip link set "$MN_BRIDGE" up
}

# /etc/hosts of the root namespace: sge_qmaster reverse-resolves every peer there, and
# clients reach the controller by name. Tagged lines are appended after the existing
# ones (so this host's own name resolves as before) and removed in place by stop.sh
# (/etc/hosts can be a bind mount, which a rename would not update).
hosts_add() {
  local n line add=""
  for n in "$MN_CTL_NAME" "$@"; do
    if [[ $n == "$MN_CTL_NAME" ]]; then line="$MN_CTL_IP $n $MN_HOSTS_TAG"; else line="$(node_ip "$n") $n $MN_HOSTS_TAG"; fi
    grep -qxF "$line" /etc/hosts || add+=$line$'\n'
  done
  [[ -z $add ]] || printf '%s' "$add" >>/etc/hosts
}

# hosts_remove REGEX: delete our tagged lines matching REGEX from /etc/hosts, in place.
hosts_remove() {
  local keep
  grep -qE "$1" /etc/hosts || return 0
  keep=$(grep -vE "$1" /etc/hosts || true)
  printf '%s\n' "$keep" >/etc/hosts
}

# The nodes' /etc/hosts: the controller under its own host name too (as a real
# cluster's nodes resolve the submit host), and every node. Rewritten in place: the
# nodes have the file bind-mounted, and a rename would leave them the old one.
write_node_hosts() {
  local f=$MN_DIR/etc/hosts content
  mkdir -p "$MN_DIR/etc"
  content="127.0.0.1 localhost
$MN_CTL_IP $MN_CTL_NAME $(hostname)
$(grep -F " $MN_HOSTS_TAG" /etc/hosts | grep -vF " $MN_CTL_NAME " | sed "s/ $MN_HOSTS_TAG\$//")"
  [[ -f $f && $(<"$f") == "$content" ]] || printf '%s\n' "$content" >"$f"
}

# ---------------------------------------------------------------------------------
# What the nodes must see at the host's paths although it lives under /tmp: the
# project (a clone under /tmp), the Python installation running these scripts (a
# virtualenv under /tmp), and GRIDMAP_MN_SHARED_PATHS (colon-separated).
# ---------------------------------------------------------------------------------
shared_paths() {
  local p project list=()
  project=$(git -C "$MN_SCRIPTS" rev-parse --show-toplevel 2>/dev/null) || project=$(cd "$MN_SCRIPTS/../.." && pwd -P)
  list+=("$project")
  if command -v python3 >/dev/null 2>&1; then
    while IFS= read -r p; do list+=("$p"); done < <(python3 -c 'import sys; print(sys.prefix); print(sys.base_prefix)' 2>/dev/null || true)
  fi
  if [[ -n ${GRIDMAP_MN_SHARED_PATHS:-} ]]; then
    IFS=: read -r -a more <<<"$GRIDMAP_MN_SHARED_PATHS"
    list+=("${more[@]}")
  fi
  for p in "${list[@]}"; do
    [[ -n $p && -d $p ]] || continue
    p=$(readlink -f "$p")
    if [[ $p == /tmp/* ]]; then echo "$p"; fi
  done | sort -u | awk '{ for (i = 1; i <= n; i++) if (index($0, kept[i] "/") == 1) next; kept[++n] = $0; print }'
}

# ---------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------
# holder_pid NODE: pid of NODE's live holder (a sleep in the node's netns), or fail.
holder_pid() {
  local pid
  pid=$(cat "$MN_RUN/$1.holder" 2>/dev/null) || return 1
  pid_alive "$pid" sleep || return 1
  [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) == "$(netns_id "$1")" ]] || return 1
  echo "$pid"
}

# The holder's setup, run by sh inside the new UTS + mount namespaces (propagation
# private: none of these mounts reaches the host). Arguments: NODE HOSTS ASIDE SIZE PATH...
# The shared paths under /tmp are bound aside before the tmpfs covers /tmp, then moved
# back to their own paths on it. /run/netns is detached: the copies of the other nodes'
# netns mounts would keep those namespaces alive after they are deleted.
# shellcheck disable=SC2016 # expanded by the holder's sh
MN_HOLDER_SH='node=$1 hosts=$2 aside=$3 size=$4; shift 4
hostname "$node"
i=0; for p in "$@"; do mkdir -p "$aside/$i"; mount --bind "$p" "$aside/$i"; i=$((i + 1)); done
mount -t tmpfs -o "size=$size,mode=1777" "tmpfs-$node" /tmp
i=0; for p in "$@"; do mkdir -p "$p"; mount --move "$aside/$i" "$p"; i=$((i + 1)); done
mount --bind "$hosts" /etc/hosts
umount -l /run/netns 2>/dev/null || true
exec sleep infinity'

# node_up NODE: network namespace, veth, address, route and holder. Idempotent; a
# holder whose shared paths are not the ones wanted now is replaced (node restarted).
node_up() {
  local n=$1 ns=gridmap-$1 veth=v-$1 ip pid paths shown i plist=()
  ip=$(node_ip "$n")
  if [[ ! -e /run/netns/$ns ]]; then
    # ip netns add makes /run/netns a mount point; note it, stop.sh undoes it
    if ! mountpoint -q /run/netns 2>/dev/null; then mkdir -p "$MN_RUN" && touch "$MN_RUN/netns-mount"; fi
    ip netns add "$ns"
  fi
  ip link show "$veth" >/dev/null 2>&1 || ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$MN_BRIDGE" up
  ip -n "$ns" link set lo up
  # captured, not piped to grep -q: under pipefail grep's early exit fails the pipe
  [[ $(ip -n "$ns" -4 -o addr show dev eth0) == *" $ip/16 "* ]] || ip -n "$ns" addr add "$ip/16" dev eth0
  ip -n "$ns" link set eth0 up
  # As on a real cluster, a node reaches the submit host only on the cluster network:
  # the host's other addresses (its eth0, which a monitor may wrongly advertise) are
  # unreachable unless GRIDMAP_MN_DEFAULT_ROUTE=1 routes them through the bridge.
  if [[ ${GRIDMAP_MN_DEFAULT_ROUTE:-0} == 1 ]]; then
    ip -n "$ns" route replace default via "$MN_CTL_IP" dev eth0
  else
    ip -n "$ns" route del default 2>/dev/null || true
  fi

  # once per script: python3 can be a slow shim (pyenv)
  [[ -n ${MN_PATHS+set} ]] || MN_PATHS=$(shared_paths)
  paths=$MN_PATHS
  mkdir -p "$MN_RUN"
  if pid=$(holder_pid "$n"); then
    [[ $(cat "$MN_RUN/$n.paths" 2>/dev/null) == "$paths" ]] && return 0
    shown=${paths//$'\n'/ }
    log "node $n: the paths to share under /tmp changed (now: ${shown:-none}), restarting it"
    node_kill "$n"
  fi
  [[ -z $paths ]] || mapfile -t plist <<<"$paths"
  # nsenter --net, not `ip netns exec`: that remounts /sys, hiding /sys/fs/cgroup
  # (slurmd then fails to start). nsenter, unshare and setsid exec without forking
  # (setsid does not need to here: a background job is no group leader), so $! is
  # the final sleep.
  rm -rf "${MN_RUN:?}/aside/$n"
  setsid nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private -- \
    sh -ec "$MN_HOLDER_SH" holder "$n" "$MN_DIR/etc/hosts" "$MN_RUN/aside/$n" "$MN_TMP_SIZE" "${plist[@]}" \
    </dev/null >"$MN_RUN/$n.holder.log" 2>&1 9>&- &
  echo $! >"$MN_RUN/$n.holder"
  for ((i = 0; i < 100; i++)); do holder_pid "$n" >/dev/null && break; sleep 0.05; done
  pid=$(holder_pid "$n") || die "node $n: its namespaces could not be set up" "$MN_RUN/$n.holder.log"
  printf '%s\n' "$paths" >"$MN_RUN/$n.paths"
  # The namespaces' ids, so that node_pids finds every process of the node even
  # after its holder is gone.
  readlink "/proc/$pid/ns/net" "/proc/$pid/ns/uts" "/proc/$pid/ns/mnt" >"$MN_RUN/$n.ns"
  log "node $n up: $ip, private /tmp${paths:+ (shared: ${paths//$'\n'/ })}"
}

# node_exec NODE COMMAND...: run COMMAND in the node (its net, UTS, mount namespaces).
node_exec() {
  local pid
  pid=$(holder_pid "$1") || die "node $1 is not up (no holder): start-slurm.sh / start-sge.sh bring it back"
  shift
  nsenter -t "$pid" -n -u -m -- "$@"
}

# node_pids NODE: every live process in any of the node's namespaces.
node_pids() {
  local ids=() id args=()
  [[ -e /run/netns/gridmap-$1 ]] && ids+=("$(netns_id "$1")")
  if [[ -s $MN_RUN/$1.ns ]]; then mapfile -t -O "${#ids[@]}" ids <"$MN_RUN/$1.ns"; fi
  ((${#ids[@]})) || return 0
  for id in "${ids[@]}"; do # a glob: the brackets of net:[ID] must be escaped
    id=${id//\[/\\[}
    args+=(-o -lname "${id//\]/\\]}")
  done
  # a zombie's ns links cannot be read: zombies are not listed (nor can they be killed)
  # (find fails when a process exits while it looks: not an error here)
  { find /proc/[0-9]*/ns -maxdepth 1 \( "${args[@]:1}" \) -printf '%h\n' 2>/dev/null || true; } |
    sed 's#^/proc/\([0-9]*\)/ns$#\1#' | sort -un
}

# node_kill NODE: SIGKILL every process of the node, until none is left (a dying
# parent may have forked once more). Sets MN_KILLED to the pids killed.
node_kill() {
  local pids round all=""
  for ((round = 0; round < 50; round++)); do
    pids=$(node_pids "$1" | tr '\n' ' ')
    [[ -n ${pids// /} ]] || break
    all+=$pids
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  pids=$(node_pids "$1" | tr '\n' ' ')
  [[ -z ${pids// /} ]] || die "processes of node $1 survive SIGKILL: $pids"
  # the ids die with the last process, and the kernel may hand them out again
  rm -f "$MN_RUN/$1.holder" "$MN_RUN/$1.ns"
  # shellcheck disable=SC2086 # a list of pids
  MN_KILLED=$(printf '%s\n' $all | sort -un | paste -sd ' ')
}

# node_delete NODE: kill it and remove its veth and network namespace.
node_delete() {
  node_kill "$1"
  ip link del "v-$1" 2>/dev/null || true
  ip netns del "gridmap-$1" 2>/dev/null || true
  rm -rf "${MN_RUN:?}/$1".* "${MN_RUN:?}/aside/$1"
  hosts_remove "^$(node_ip "$1") $1 $MN_HOSTS_TAG\$"
}

# write_env_file FILE CONTENT: the client environment, replaced atomically.
write_env_file() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  printf '%s\n' "$2" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$1"
}
