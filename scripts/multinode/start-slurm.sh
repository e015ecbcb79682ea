#!/usr/bin/env bash
# Start (or repair) the multi-node Slurm test cluster on this one machine:
#   slurmctld in the root namespace (on the bridge address $MN_NET.0.1, port 7827),
#   one slurmd per node mn-slurm1..N, each in its own network, UTS and mount namespaces
#   (host name mn-slurmK, address $MN_NET.1.K, private /tmp), and a munged of its own.
# A separate Slurm instance: its own slurm.conf (cluster "multinode", ports 7827/7828,
# munge socket, state, spool, logs under /srv/gridmap-mn/slurm); the single-node cluster
# of scripts/slurm (/etc/slurm, ports 6817/6818) is not touched.
#
# Usage: start-slurm.sh [N]   N nodes, default 3. Idempotent: a rerun starts only what
#   is missing (a node killed by kill-node.sh comes back) and returns when all N nodes
#   take jobs. A smaller N deletes the nodes above it.
# stdout: the client environment as export lines (eval "$(start-slurm.sh)" works); the
#   same lines go to /etc/gridmap-mn-slurm.env (GRIDMAP_MN_SLURM_ENV_FILE).
# Needs Slurm and munge installed: scripts/slurm/start.sh installs them.
# Environment (optional): GRIDMAP_MN_SLURMD_TIMEOUT (s without an answer before a node
#   is DOWN, default 10; Slurm's is 300), GRIDMAP_MN_START_TIMEOUT (default 90 s), and
#   those of lib.sh (GRIDMAP_MN_DIR, GRIDMAP_MN_NET, GRIDMAP_MN_TMP_SIZE,
#   GRIDMAP_MN_SHARED_PATHS).

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

N=${1:-3}
check_count "$N"
[[ $# -le 1 ]] || die "usage: start-slurm.sh [N]"
SLURMD_TIMEOUT=${GRIDMAP_MN_SLURMD_TIMEOUT:-10}
[[ $SLURMD_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "GRIDMAP_MN_SLURMD_TIMEOUT must be a number of seconds"
ENV_FILE=${GRIDMAP_MN_SLURM_ENV_FILE:-/etc/gridmap-mn-slurm.env}
S=$MN_DIR/slurm
export SLURM_CONF=$S/slurm.conf
MUNGE_DIR=$MN_RUN/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
PARTITION=multinode
# The daemons get a clean environment: nothing of the caller's leaks into jobs.
CLEAN=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SLURM_CONF="$SLURM_CONF")

mn_lock
need_base_tools
need_commands "Slurm" "run scripts/slurm/start.sh once as root, which installs munge slurmctld slurmd slurm-client" \
  slurmctld slurmd scontrol sinfo srun munged munge unmunge
id slurm >/dev/null 2>&1 || die "user slurm is missing; run scripts/slurm/start.sh once as root (the slurm packages create it)"

nodes=()
for ((k = 1; k <= N; k++)); do nodes+=("mn-slurm$k"); done
started=0

# 1. Network and nodes; nodes above N (an earlier, larger start) go first.
bridge_up
for n in $(nodes_of mn-slurm); do
  if ((${n#mn-slurm} > N)); then
    node_delete "$n"
    log "node $n deleted (now $N nodes)"
  fi
done
hosts_add "${nodes[@]}"
write_node_hosts
for n in "${nodes[@]}"; do node_up "$n"; done
install -d -m 1777 "$MN_SHARED"

# 2. munge: a munged of our own (own socket), so that this cluster does not depend on
#    the single-node cluster's munged; same key (/etc/munge/munge.key).
if [[ ! -s /etc/munge/munge.key ]]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
munge_ok() { munge -S "$MUNGE_SOCKET" -n 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
if ! munge_ok; then
  stop_daemon "$MUNGE_DIR/munged.pid" munged
  runuser -u munge -- /usr/sbin/munged --force --socket="$MUNGE_SOCKET" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" </dev/null >"$MUNGE_DIR/munged-start.log" 2>&1 9>&- ||
    die "munged failed to start" "$MUNGE_DIR/munged-start.log" "$MUNGE_DIR/munged.log"
  wait_until 30 munge_ok || die "munged does not answer on $MUNGE_SOCKET" "$MUNGE_DIR/munged.log"
  started=1
fi

# 3. Directories: slurmctld runs as user slurm.
install -d -m 0755 "$S" "$S/spool"
install -d -o slurm -g slurm -m 0755 "$S/state" "$S/log" "$S/run"

# 4. slurm.conf. The hardware line comes from slurmd -C (the nodes share this
#    machine's CPUs); each node gets a share of the memory.
#  - ProctrackType=proctrack/linuxproc, TaskPlugin=task/none: no cgroups, whose tree the
#    single-node slurmd uses (the nodes share one kernel); memory is watched by sampling
#    (OverMemoryKill), as the single-node cluster does without cgroup v1.
#  - SlurmdTimeout (default 10 s): a killed or cut-off node is NOT_RESPONDING after
#    ~15 s and DOWN after ~30 s, not minutes. ReturnToService=2: it takes jobs again as
#    soon as its slurmd registers.
#  - %n in the slurmd paths: one spool, pid file and log per node.
#  - LLN=YES: jobs go to the least loaded node, so a few jobs spread over all nodes.
hw=$(slurmd -C) || die "slurmd -C failed"
hw=${hw%%$'\n'*}
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[[ $mem =~ ^[0-9]+$ ]] || die "could not read RealMemory from 'slurmd -C': $hw"
mem=$(((mem - 1024) / N))
((mem >= 500)) || mem=500
hwline=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//' -e 's/ *UpTime=.*//' <<<"$hw")
conf="# Generated by gridmap scripts/multinode/start-slurm.sh; edits are overwritten.
ClusterName=multinode
SlurmctldHost=$(hostname -s)($MN_CTL_IP)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmctldPort=7827
SlurmdPort=7828
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd-%n.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmdTimeout=$SLURMD_TIMEOUT
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
EnforcePartLimits=ALL
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.log
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
Waittime=0"
for n in "${nodes[@]}"; do
  conf+=$'\n'"NodeName=$n NodeAddr=$(node_ip "$n") $hwline RealMemory=$mem State=UNKNOWN"
done
conf+=$'\n'"PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8 LLN=YES"
changed=0
if [[ ! -f $SLURM_CONF ]] || [[ $(<"$SLURM_CONF") != "$conf" ]]; then
  printf '%s\n' "$conf" >"$SLURM_CONF.new"
  mv -f "$SLURM_CONF.new" "$SLURM_CONF"
  changed=1
fi

# 5. slurmctld, in the root namespace. A changed node list needs a restart (not
#    `scontrol reconfigure`). Never a second slurmctld with the same pid file: it would
#    kill the first.
if ((changed)) && daemon_pid "$S/run/slurmctld.pid" slurmctld >/dev/null; then
  log "slurm.conf changed: restarting slurmctld and the slurmds"
  for n in "${nodes[@]}"; do stop_daemon "$S/run/slurmd-$n.pid" slurmd; done
  stop_daemon "$S/run/slurmctld.pid" slurmctld
fi
ctld_up() { [[ $(scontrol ping 2>/dev/null) == *"is UP"* ]]; }
if ! daemon_pid "$S/run/slurmctld.pid" slurmctld >/dev/null; then
  rm -f "$S/run/slurmctld.pid"
  (cd / && "${CLEAN[@]}" /usr/sbin/slurmctld) </dev/null >"$S/log/slurmctld-start.log" 2>&1 9>&- ||
    die "slurmctld failed to start" "$S/log/slurmctld-start.log" "$S/log/slurmctld.log"
  started=1
fi
wait_until "$MN_START_TIMEOUT" ctld_up || die "slurmctld does not answer 'scontrol ping'" "$S/log/slurmctld.log"

# 6. One slurmd per node, started inside it: it finds its NodeName from the node's
#    host name, and its jobs inherit host name, address and private /tmp.
for n in "${nodes[@]}"; do
  daemon_pid "$S/run/slurmd-$n.pid" slurmd "$n" >/dev/null && continue
  install -d -m 0755 "$S/spool/$n"
  node_exec "$n" "${CLEAN[@]}" /usr/sbin/slurmd </dev/null >"$S/log/slurmd-$n-start.log" 2>&1 9>&- ||
    die "slurmd on $n failed to start" "$S/log/slurmd-$n-start.log" "$S/log/slurmd-$n.log"
  started=1
done

# 7. Wait until every node takes jobs. A node left DOWN or DRAINED by an earlier crash
#    is resumed; a trailing * (not responding) means its slurmd has not registered yet.
deadline=$((SECONDS + MN_START_TIMEOUT))
while :; do
  states=$(sinfo -h -N -p "$PARTITION" -o '%N %T' 2>/dev/null | sort -u || true)
  bad=$(awk '$2 !~ /^(idle|mixed|allocated|completing)$/' <<<"$states")
  [[ -z $bad && $(grep -c . <<<"$states") -eq $N ]] && break
  for n in $(awk '$2 ~ /^(down|drain|fail)/ {print $1}' <<<"$bad"); do
    scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true
  done
  if ((SECONDS >= deadline)); then
    printf '%s\n' "$states" >&2
    die "not all $N nodes take jobs after ${MN_START_TIMEOUT} s" "$S/log/slurmctld.log"
  fi
  sleep 0.1
done

# 8. After a (re)start, one task on every node proves that jobs really start there
#    (not after a restart of the controller alone, GRIDMAP_MN_PROBE=0, whose nodes may be
#    full of running jobs).
if ((started || changed)) && [[ ${GRIDMAP_MN_PROBE:-1} != 0 ]]; then
  # shellcheck disable=SC2016 # expanded on the node
  probe=$(cd / && timeout 60 srun --quiet -J mn-probe -t 1 -p "$PARTITION" -N "$N" --ntasks-per-node=1 \
    /bin/sh -c 'echo "$(hostname)"' 2>&1 | sort | tr '\n' ' ') ||
    die "a probe job on all $N nodes failed: $probe" "$S/log/slurmctld.log"
  [[ $probe == "$(printf '%s\n' "${nodes[@]}" | sort | tr '\n' ' ')" ]] ||
    die "the probe job ran on '$probe', not on ${nodes[*]}" "$S/log/slurmctld.log"
fi

write_env_file "$ENV_FILE" "# Client environment of the multi-node Slurm test cluster (gridmap scripts/multinode/start-slurm.sh)
export SLURM_CONF=$SLURM_CONF
# nodes, their addresses, the partition and the directory the nodes share (for tests)
export GRIDMAP_MN_NODES=\"${nodes[*]}\"
export GRIDMAP_MN_ADDRESSES=\"$(for n in "${nodes[@]}"; do printf '%s=%s ' "$n" "$(node_ip "$n")"; done | sed 's/ $//')\"
export GRIDMAP_MN_QUEUE=$PARTITION
export GRIDMAP_MN_SHARED=$MN_SHARED"
if ((started || changed)); then how="started in $(elapsed) s"; else how="already running ($(elapsed) s)"; fi
log "Slurm cluster 'multinode' $how: nodes ${nodes[*]}, partition $PARTITION, shared dir $MN_SHARED; client environment in $ENV_FILE"
grep '^export' "$ENV_FILE"
