#!/usr/bin/env bash
# Install (when missing) and start a real single-node Slurm cluster on this machine,
# for gridmap's tests and CI. Debian 12, run as root, no systemd needed.
#
# Idempotent: a run while everything is up only checks it (well under a second); a run
# after stop.sh (or after a reboot) brings the cluster back; a changed configuration
# restarts the daemons (slurmctld cannot switch plugins with `scontrol reconfigure`).
#
# Environment (all optional):
#   GRIDMAP_SLURM_ACCOUNTING=1|0       slurmdbd + MariaDB so that `sacct` works (default 1)
#   GRIDMAP_SLURM_DEF_MEM_PER_CPU=MB   memory a job gets when it passes no --mem (default 100)
#   GRIDMAP_SLURM_APT_TIMEOUT=SECONDS  how long to wait for a busy apt/dpkg (default 300)
#   GRIDMAP_SLURM_START_TIMEOUT=SEC    bound for each daemon to become ready (default 60)
#
# Layout: configuration in /etc/slurm, state in /var/lib/slurm, logs in /var/log/slurm.
# Ports: slurmctld 6817, slurmd 6818, slurmdbd 6819, MariaDB socket/3306 (Grid Engine
# uses 6444/6445, so both can run side by side).
set -euo pipefail

ACCOUNTING=${GRIDMAP_SLURM_ACCOUNTING:-1}
DEF_MEM_PER_CPU=${GRIDMAP_SLURM_DEF_MEM_PER_CPU:-100}
APT_TIMEOUT=${GRIDMAP_SLURM_APT_TIMEOUT:-300}
START_TIMEOUT=${GRIDMAP_SLURM_START_TIMEOUT:-60}

CLUSTER=ci
CONF_DIR=/etc/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
LOG_DIR=/var/log/slurm
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid
DB_NAME=slurm_acct_db
DB_USER=slurm
# Only reachable through MariaDB's Unix socket on this test machine; not a secret.
DB_PASS=slurmdbpass

T0=$SECONDS
log() { printf 'slurm/start: %s\n' "$*"; }

# Print an error plus the end of the logs that usually explain it, then exit 1.
die() {
  local f
  printf 'slurm/start: ERROR: %s\n' "$1" >&2
  shift
  for f in "$@"; do
    if [[ -s $f ]]; then
      printf -- '--- last lines of %s ---\n' "$f" >&2
      tail -n 20 "$f" >&2
    fi
  done
  exit 1
}

case $ACCOUNTING in 0 | 1) ;; *) die "GRIDMAP_SLURM_ACCOUNTING must be 0 or 1, not '$ACCOUNTING'" ;; esac
[[ $DEF_MEM_PER_CPU =~ ^[1-9][0-9]*$ ]] || die "GRIDMAP_SLURM_DEF_MEM_PER_CPU must be a number of MB"
[[ $EUID -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

# shellcheck source=daemons.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"

# Run "$@" until it succeeds or $1 seconds have passed (polling every 0.1 s).
wait_for() {
  local limit=$1 deadline
  shift
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# Send SIGTERM and wait (bounded) until the daemon is gone; SIGKILL as a last resort.
stop_daemon() {
  local pidfile=$1 name=$2 pid
  alive "$pidfile" "$name" || return 0
  pid=$(head -n 1 "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 30 not_alive "$pidfile" "$name"; then
    log "WARNING: $name (pid $pid) ignored SIGTERM for 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 not_alive "$pidfile" "$name" || die "could not stop $name (pid $pid)"
  fi
}
not_alive() { ! alive "$@"; }

# Start a daemon ($1 names its start log) detached from this script: stdin/stdout/
# stderr away from the caller (a caller reading our output through a pipe would
# otherwise wait for the daemon), and without fd 9, the start/stop lock below, which
# a daemon would otherwise hold forever and block every later start.sh/stop.sh.
# Messages printed before the daemon forks (e.g. fatal config errors) land in the log.
spawn() {
  local name=$1
  shift
  "$@" </dev/null >"$LOG_DIR/$name-start.log" 2>&1 9>&-
}

# Only one start/stop at a time (e.g. two test sessions starting the cluster at once);
# a second starting daemon would kill the first one instead of failing.
exec 9>/run/lock/gridmap-slurm.lock
flock -w 600 9 || die "another start.sh/stop.sh held /run/lock/gridmap-slurm.lock for 600 s"

# ---------------------------------------------------------------------------------
# 1. Packages. apt-get update and install only when something is missing, so a
#    normal start needs no network. Another apt may be running (e.g. someone
#    installing Grid Engine): DPkg::Lock::Timeout makes install wait for the dpkg
#    lock, and the loop below also retries the locks DPkg::Lock::Timeout does not cover
#    (apt-get update's list lock), all bounded by GRIDMAP_SLURM_APT_TIMEOUT.
# ---------------------------------------------------------------------------------
pkgs=(munge slurmctld slurmd slurm-client)
if [[ $ACCOUNTING == 1 ]]; then pkgs+=(slurmdbd mariadb-server); fi

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# apt_get: apt-get, retried while another apt holds its locks, bounded by APT_TIMEOUT.
# shellcheck source=scripts/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../apt.sh"

missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]} (apt-get update + install)"
  t=$SECONDS
  apt_get update || die "apt-get update failed"
  # --no-install-recommends: MariaDB's and Slurm's recommends are not needed (mail
  # servers, perl docs, ...) and only slow the install down.
  apt_get install -y --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
  log "installed in $((SECONDS - t)) s"
fi
# On this image policy-rc.d stops the postinst scripts from starting any daemon; on
# other machines apt may have started munged or MariaDB already. Both cases are
# handled below by checking health before starting anything.

# The node name must be the short host name and must resolve, or slurmd cannot find
# itself in slurm.conf and slurmctld cannot reach it.
NODE=$(hostname -s)
getent hosts "$NODE" >/dev/null || die "host name '$NODE' does not resolve; add it to /etc/hosts (e.g. '127.0.1.1 $NODE')"

# ---------------------------------------------------------------------------------
# 2. Directories (the packages create them; recreate in case a reset removed them).
# ---------------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR"
install -d -o slurm -g slurm -m 0755 "$STATE_DIR" "$LOG_DIR"
install -d -o root -g root -m 0755 "$SPOOL_DIR"

# ---------------------------------------------------------------------------------
# 3. munge (authentication for every Slurm RPC).
# ---------------------------------------------------------------------------------
if [[ ! -s $MUNGE_KEY ]]; then
  mungekey --create --keyfile="$MUNGE_KEY"
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
fi
# /run is a tmpfs: recreate the socket directory after every boot.
install -d -o munge -g munge -m 0755 /run/munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
started_something=0
if ! munge_ok; then
  stop_daemon "$MUNGE_PID" munged # a hung munged would keep the socket
  rm -f "$MUNGE_PID"
  # --force: start even if a dead munged left its socket behind.
  spawn munged runuser -u munge -- /usr/sbin/munged --force ||
    die "munged failed to start" "$LOG_DIR/munged-start.log" /var/log/munge/munged.log
  wait_for "$START_TIMEOUT" munge_ok || die "munged did not start" "$LOG_DIR/munged-start.log" /var/log/munge/munged.log
  started_something=1
fi

# slurmctld refuses to start ("CLUSTER NAME MISMATCH") with a state directory saved
# under another cluster name. Say so instead of failing obscurely.
if [[ -s $STATE_DIR/clustername ]] && [[ $(<"$STATE_DIR/clustername") != "$CLUSTER" ]]; then
  die "$STATE_DIR belongs to cluster '$(<"$STATE_DIR/clustername")', not '$CLUSTER'; stop.sh, then 'rm -rf $STATE_DIR/*' to reset"
fi

# Write $2 to file $1 (mode $3, default 0644) only if the content differs; return 0
# if it changed. Unchanged files keep their mtime, and the daemons are not restarted.
write_if_changed() {
  local file=$1 content=$2 mode=${3:-0644} tmp
  if [[ -f $file ]] && [[ $(<"$file") == "$content" ]]; then return 1; fi
  tmp=$(mktemp "$file.XXXXXX") # mode 0600 from the start: slurmdbd.conf has a password
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$file"
}

# ---------------------------------------------------------------------------------
# 4. Accounting: MariaDB + slurmdbd, so that `sacct` knows every finished job for good
#    (slurmctld forgets a job MinJobAge=300 s after it ends). slurmdbd must be up
#    before slurmctld starts, or slurmctld queues the records.
# ---------------------------------------------------------------------------------
if [[ $ACCOUNTING == 1 ]]; then
  db_ok() { mariadb-admin ping; }
  if ! db_ok >/dev/null 2>&1; then
    # The SysV init script works without systemd (policy-rc.d only blocks invoke-rc.d).
    # Its output is kept: without syslog it is the only trace of why MariaDB failed.
    spawn mariadb timeout 120 /etc/init.d/mariadb start || true
    wait_for "$START_TIMEOUT" db_ok || die "MariaDB did not start" "$LOG_DIR/mariadb-start.log"
    started_something=1
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
    CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';" || die "could not create the accounting database in MariaDB"

  dbd_conf="AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
PidFile=$DBD_PID
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info"
  dbd_changed=0
  if write_if_changed "$CONF_DIR/slurmdbd.conf" "$dbd_conf" 0600; then dbd_changed=1; fi
  # slurmdbd exits at once if its config (it holds the DB password) is readable by others.
  chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
  chmod 0600 "$CONF_DIR/slurmdbd.conf"
  if ((dbd_changed)); then stop_daemon "$DBD_PID" slurmdbd; fi
  if ! alive "$DBD_PID" slurmdbd; then
    spawn slurmdbd /usr/sbin/slurmdbd || die "slurmdbd failed to start" "$LOG_DIR/slurmdbd-start.log" "$LOG_DIR/slurmdbd.log"
    started_something=1
  fi
  # slurmdbd's readiness is checked below with sacctmgr, which finds slurmdbd through
  # these slurm.conf lines, so slurm.conf has to be written first.
  DB_ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  DB_ACCT_LINES="AccountingStorageType=accounting_storage/none"
fi

# ---------------------------------------------------------------------------------
# 5. slurm.conf + cgroup.conf, generated for this host (node name, CPUs, memory).
# ---------------------------------------------------------------------------------
hw=$(slurmd -C) || die "slurmd -C failed"
hw=${hw%%$'\n'*} # first line: NodeName=... CPUs=... RealMemory=...
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[[ $mem =~ ^[0-9]+$ ]] || die "could not read RealMemory from 'slurmd -C': $hw"
# Configure less memory than the node has, or the node registers with "less memory
# than configured" (kernel/page-cache fluctuations) and is drained as INVALID.
if ((mem > 4096)); then mem=$((mem - 1024)); else mem=$((mem * 9 / 10)); fi
# Keep the full hardware line (CPUs, Boards, Sockets, Cores, Threads) from slurmd -C:
# giving only CPUs= logs "Node reconfigured socket/core boundaries".
hwline=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//' <<<"$hw")

# Memory and CPU enforcement. This machine mounts the cgroup v1 controllers (hybrid
# layout) and Slurm 22.05's cgroup/v1 plugin works there without systemd: a job over
# its --mem is OOM-killed by the kernel and ends OUT_OF_MEMORY. Without v1 controllers
# fall back to sampling RSS every second and killing jobs over --mem (they then end
# FAILED 0:9, and short spikes can slip through).
if [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpuset && -d /sys/fs/cgroup/freezer ]]; then
  proctrack=proctrack/cgroup
  taskplugin=task/cgroup,task/affinity
  gather_params=""
  cgroup_conf="CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=no"
else
  log "WARNING: no cgroup v1 memory/cpuset/freezer controllers: memory limits are enforced by sampling only"
  proctrack=proctrack/linuxproc
  taskplugin=task/none
  gather_params="JobAcctGatherParams=OverMemoryKill"
  cgroup_conf=""
fi

# Why the non-default lines:
# - SchedulerParameters: a scheduling pass about every second instead of every 3 s
#   (main) / 30 s (backfill): a trivial job takes ~0.6 s instead of ~2.6 s.
# - OverSubscribe=FORCE:32: up to 32 jobs per core, so 2 cores start 64 short jobs per
#   pass (200 trivial jobs: ~5 s instead of ~250 s). Memory stays a consumable, so
#   --mem is still honoured for placement, and --exclusive still works.
# - CR_Core_Memory + DefMemPerCPU: memory is tracked per job; without DefMemPerCPU a
#   job without --mem takes the whole node and jobs run one at a time.
# - EnforcePartLimits=ALL: a job asking more CPUs than exist is rejected at submit
#   instead of pending forever.
# - JobCompType=jobcomp/filetxt: one line per finished job, even without slurmdbd.
# - KillWait=2, OverTimeLimit=0: killed jobs (scancel, time limit) end quickly.
slurm_conf="# Generated by gridmap scripts/slurm/start.sh; edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
SwitchType=switch/none
ProctrackType=$proctrack
TaskPlugin=$taskplugin
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM_PER_CPU
EnforcePartLimits=ALL
$DB_ACCT_LINES
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1${gather_params:+
$gather_params}
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
Waittime=0
NodeName=$NODE $hwline RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:32"

conf_changed=0
if write_if_changed "$CONF_DIR/slurm.conf" "$slurm_conf"; then conf_changed=1; fi
if [[ -n $cgroup_conf ]]; then
  if write_if_changed "$CONF_DIR/cgroup.conf" "$cgroup_conf"; then conf_changed=1; fi
elif [[ -e $CONF_DIR/cgroup.conf ]]; then
  rm -f "$CONF_DIR/cgroup.conf"
  conf_changed=1
fi

if [[ $ACCOUNTING == 1 ]]; then
  wait_for "$START_TIMEOUT" sacctmgr -n list cluster ||
    die "slurmdbd is not answering (sacctmgr list cluster failed for ${START_TIMEOUT} s)" "$LOG_DIR/slurmdbd.log"
  # The cluster must be known to slurmdbd before slurmctld registers, once.
  if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster 2>/dev/null) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed" "$LOG_DIR/slurmdbd.log"
  fi
fi

# ---------------------------------------------------------------------------------
# 6. slurmctld + slurmd. They daemonize by themselves. Never start one while it runs:
#    a second slurmctld/slurmd silently kills the first and takes over.
# ---------------------------------------------------------------------------------
if ((conf_changed)) && { alive "$CTLD_PID" slurmctld || alive "$SLURMD_PID" slurmd; }; then
  # `scontrol reconfigure` does not switch accounting/proctrack/task plugins: restart.
  # Running jobs survive this (their slurmstepd keeps going).
  log "configuration changed, restarting slurmctld and slurmd"
  stop_daemon "$SLURMD_PID" slurmd
  stop_daemon "$CTLD_PID" slurmctld
fi

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
if ! alive "$CTLD_PID" slurmctld; then
  rm -f "$CTLD_PID" # stale file left by the last shutdown
  spawn slurmctld /usr/sbin/slurmctld || die "slurmctld failed to start" "$LOG_DIR/slurmctld-start.log" "$LOG_DIR/slurmctld.log"
  started_something=1
fi
wait_for "$START_TIMEOUT" ctld_up || die "slurmctld is not answering 'scontrol ping'" "$LOG_DIR/slurmctld.log"

if ! alive "$SLURMD_PID" slurmd; then
  rm -f "$SLURMD_PID"
  spawn slurmd /usr/sbin/slurmd || die "slurmd failed to start" "$LOG_DIR/slurmd-start.log" "$LOG_DIR/slurmd.log"
  started_something=1
fi

# Wait until the node accepts work. A node that was down/drained (e.g. after an
# unclean stop) is resumed; "idle*" (trailing *) means slurmctld cannot reach slurmd.
deadline=$((SECONDS + START_TIMEOUT))
while :; do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  case $state in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | fail*)
      scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
      ;;
  esac
  if ((SECONDS >= deadline)); then
    sinfo -R >&2 || true
    die "node $NODE is '$state', not idle, after ${START_TIMEOUT} s" "$LOG_DIR/slurmd.log" "$LOG_DIR/slurmctld.log"
  fi
  sleep 0.1
done

# After a (re)start, prove that a job really runs: a node can be idle while job launch
# is broken (munge, cgroups, spool directory). Skipped on a no-op rerun to keep it fast.
if ((started_something || conf_changed)); then
  # shellcheck disable=SC2016 # $SLURM_JOB_ID is expanded inside the job, on purpose
  probe=$(timeout 60 srun --quiet -J gridmap-start-probe -t 1 -D / -N 1 -n 1 \
    /bin/sh -c 'echo "probe-ok $SLURM_JOB_ID"' 2>&1) ||
    die "a trivial srun job did not run: $probe" "$LOG_DIR/slurmd.log" "$LOG_DIR/slurmctld.log"
  [[ $probe == probe-ok* ]] || die "trivial srun job printed '$probe' instead of 'probe-ok'" "$LOG_DIR/slurmd.log"
fi

if [[ $ACCOUNTING == 1 ]]; then acct="on (sacct)"; else acct="off (jobcomp only: $LOG_DIR/jobcomp.log)"; fi
if ((started_something || conf_changed)); then how="started in $((SECONDS - T0)) s"; else how="already running"; fi
log "cluster '$CLUSTER' $how: node $NODE $(sinfo -h -n "$NODE" -o '%T, %c CPUs, %m MB'), partition debug, accounting $acct"
