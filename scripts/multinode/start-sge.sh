#!/usr/bin/env bash
# Start (or repair) the multi-node Grid Engine test cluster on this one machine:
#   a cell of its own, SGE_CELL=multinode ($SGE_ROOT/multinode -> /srv/gridmap-mn/sge/cell),
#   sge_qmaster in the root namespace (port 7454, host name mn-head = $MN_NET.0.1),
#   one sge_execd per node mn-sge1..N (port 7455), each in its own network, UTS and
#   mount namespaces (host name mn-sgeK, address $MN_NET.2.K, private /tmp).
# The single-node cell "default" of scripts/sge (ports 6444/6445) is not touched.
#
# Usage: start-sge.sh [N]   N nodes, default 3. Idempotent: a rerun starts only what is
#   missing (a node killed by kill-node.sh comes back) and returns when every node's
#   queue instance takes jobs. A smaller N deletes the nodes above it.
# stdout: the client environment as export lines (eval "$(start-sge.sh)" works); the same
#   lines go to /etc/gridmap-mn-sge.env (GRIDMAP_MN_SGE_ENV_FILE).
# Needs Grid Engine installed: scripts/sge/start.sh installs it.
# Environment (optional):
#   GRIDMAP_MN_SGE_SLOTS        slots of all.q on each node (default 4)
#   GRIDMAP_MN_SGE_MAX_UNHEARD  max_unheard: a silent node is "u" after this (00:00:20;
#                               Grid Engine's default is 00:05:00)
#   GRIDMAP_MN_SGE_LOAD_REPORT  load_report_time (00:00:05; default 00:00:40)
#   GRIDMAP_MN_SGE_RESCHEDULE   reschedule_unknown: rerunnable jobs of a "u" node are
#                               rescheduled after this (00:00:00 = never, the default)
#   GRIDMAP_MN_SGE_QMASTER_PORT, GRIDMAP_MN_SGE_EXECD_PORT (7454, 7455),
#   GRIDMAP_MN_START_TIMEOUT (90 s), and those of lib.sh.

# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

N=${1:-3}
check_count "$N"
[[ $# -le 1 ]] || die "usage: start-sge.sh [N]"
SLOTS=${GRIDMAP_MN_SGE_SLOTS:-4}
UNHEARD=${GRIDMAP_MN_SGE_MAX_UNHEARD:-00:00:20}
LOADREP=${GRIDMAP_MN_SGE_LOAD_REPORT:-00:00:05}
RESCHED=${GRIDMAP_MN_SGE_RESCHEDULE:-00:00:00}
[[ $SLOTS =~ ^[1-9][0-9]*$ ]] || die "GRIDMAP_MN_SGE_SLOTS must be a number, not '$SLOTS'"
for t in "$UNHEARD" "$LOADREP" "$RESCHED"; do
  [[ $t =~ ^[0-9][0-9]:[0-5][0-9]:[0-5][0-9]$ ]] || die "Grid Engine times are HH:MM:SS, not '$t'"
done
ENV_FILE=${GRIDMAP_MN_SGE_ENV_FILE:-/etc/gridmap-mn-sge.env}
export SGE_ROOT=/var/lib/gridengine SGE_CELL=multinode
export SGE_QMASTER_PORT=${GRIDMAP_MN_SGE_QMASTER_PORT:-7454} SGE_EXECD_PORT=${GRIDMAP_MN_SGE_EXECD_PORT:-7455}
G=$MN_DIR/sge
COMMON=$SGE_ROOT/$SGE_CELL/common
DRMAA_LIB=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
# Debian 12's libdrmaa needs it to be loaded by Python (see scripts/sge/start.sh).
TUNABLES=glibc.rtld.optional_static_tls=16384
# Daemons get a clean environment: jobs inherit the execd's.
CLEAN=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL"
  SGE_QMASTER_PORT="$SGE_QMASTER_PORT" SGE_EXECD_PORT="$SGE_EXECD_PORT")

mn_lock
need_base_tools
need_commands "Grid Engine" "run scripts/sge/start.sh once as root, which installs gridengine-master gridengine-exec gridengine-client gridengine-drmaa1.0" \
  /usr/sbin/sge_qmaster /usr/sbin/sge_execd qconf qstat qsub qmod qping \
  /usr/lib/gridengine/spoolinit /usr/lib/gridengine/spooldefaults "$DRMAA_LIB"
id sgeadmin >/dev/null 2>&1 || die "user sgeadmin is missing; run scripts/sge/start.sh once as root (the gridengine packages create it)"

nodes=()
for ((k = 1; k <= N; k++)); do nodes+=("mn-sge$k"); done
started=0

# 1. Network and nodes (their names must resolve in the root namespace too: the
#    qmaster checks every peer's address against its name). Nodes above N go first.
bridge_up
removed=()
for n in $(nodes_of mn-sge); do
  if ((${n#mn-sge} > N)); then
    node_delete "$n"
    removed+=("$n")
    log "node $n deleted (now $N nodes)"
  fi
done
hosts_add "${nodes[@]}"
write_node_hosts
for n in "${nodes[@]}"; do node_up "$n"; done
install -d -m 1777 "$MN_SHARED"

# 2. The cell, created once like Debian's init_cluster does, with our paths.
install -d -o sgeadmin -g sgeadmin -m 0755 "$G" "$G/cell" "$G/cell/common" "$G/qmaster" \
  "$G/qmaster/job_scripts" "$G/execd" "$G/spooldb"
if [[ -e $SGE_ROOT/$SGE_CELL || -L $SGE_ROOT/$SGE_CELL ]]; then
  [[ $(readlink "$SGE_ROOT/$SGE_CELL") == "$G/cell" ]] ||
    die "$SGE_ROOT/$SGE_CELL exists and is not this cluster's cell (a link to $G/cell); move it away"
else
  ln -s "$G/cell" "$SGE_ROOT/$SGE_CELL"
fi

# Global configuration as we want it, from a configuration on stdin:
#  min_uid/min_gid 0: tests run as root; administrator_mail none: nothing delivers mail;
#  load_report_time / max_unheard: a dead node is "u" in seconds, not minutes;
#  gid_range: see the per-node ranges below; accounting_flush_time=00:00:00: qacct knows
#  a job as soon as it ends. Lines whose name holds "=" are debris of a wrapped value.
global_conf() {
  sed -e "s#^execd_spool_dir .*#execd_spool_dir $G/execd#" \
    -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
    -e 's/^administrator_mail .*/administrator_mail none/' \
    -e "s/^load_report_time .*/load_report_time $LOADREP/" \
    -e "s/^max_unheard .*/max_unheard $UNHEARD/" \
    -e "s/^reschedule_unknown .*/reschedule_unknown $RESCHED/" \
    -e 's/^gid_range .*/gid_range 30000-30099/' \
    -e 's/^reporting_params .*/reporting_params accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
    -e '/^[^#[:space:]]*=/d'
}

# The root namespace's clients claim this host's name, which resolves to a loopback
# address here (-> "localhost"), and reach the qmaster from the bridge address
# (-> mn-head): SGE's alias file makes them all one host, mn-head.
H=$(hostname)
aliases="$MN_CTL_NAME $H"
ip4=$(getent ahostsv4 "$H" | awk 'NR == 1 {print $1}') || true
rev=$([[ -n $ip4 ]] && getent hosts "$ip4" | awk 'NR == 1 {print $2}') || true
if [[ -n $rev && $rev != "$H" && $rev != "$MN_CTL_NAME" ]]; then aliases+=" $rev"; fi
aliases_changed=0
if [[ $(cat "$COMMON/host_aliases" 2>/dev/null) != "$aliases" ]]; then
  printf '%s\n' "$aliases" >"$COMMON/host_aliases"
  aliases_changed=1
fi
echo "$MN_CTL_NAME" >"$COMMON/act_qmaster"
if [[ ! -e $G/cell-created ]]; then
  log "creating the cell $SGE_CELL"
  find "$G/spooldb" "$G/qmaster" -mindepth 1 -delete # debris of a failed creation
  rm -f "$G/configured"
  install -d -o sgeadmin -g sgeadmin -m 0755 "$G/qmaster/job_scripts"
  sed -e "s#/var/spool/gridengine/spooldb#$G/spooldb#" -e "s#/var/spool/gridengine/qmaster#$G/qmaster#" \
    /usr/share/gridengine/default-bootstrap >"$COMMON/bootstrap"
  global_conf </usr/share/gridengine/default-configuration >"$G/global.conf"
  chown -R sgeadmin:sgeadmin "$G"
  (cd / && runuser -u sgeadmin -- "${CLEAN[@]}" sh -ec "
    /usr/lib/gridengine/spoolinit berkeleydb libspoolb $G/spooldb init
    /usr/lib/gridengine/spooldefaults configuration $G/global.conf
    /usr/lib/gridengine/spooldefaults complexes /usr/share/gridengine/util/resources/centry
    /usr/lib/gridengine/spooldefaults usersets /usr/share/gridengine/util/resources/usersets
    /usr/lib/gridengine/spooldefaults managers sgeadmin") >"$G/create.log" 2>&1 ||
    die "creating the cell failed" "$G/create.log"
  touch "$G/cell-created"
fi
chown -R sgeadmin:sgeadmin "$COMMON"

# 3. sge_qmaster, in the root namespace. It reads host_aliases only when it starts, as
#    do the execds.
qmaster_pid() { daemon_pid "$G/qmaster/qmaster.pid" sge_qmaster; }
execd_pid() { daemon_pid "$G/execd/$1/execd.pid" sge_execd "$1"; }
qmaster_up() { timeout 10 qping -info "$MN_CTL_NAME" "$SGE_QMASTER_PORT" qmaster 1 >/dev/null 2>&1; }
if ((aliases_changed)) && qmaster_pid >/dev/null; then
  log "host_aliases changed: restarting sge_qmaster and the execds"
  stop_daemon "$G/qmaster/qmaster.pid" sge_qmaster
  for n in "${nodes[@]}"; do stop_daemon "$G/execd/$n/execd.pid" sge_execd; done
fi
if pid=$(qmaster_pid) && ! wait_until 15 qmaster_up; then
  log "sge_qmaster (pid $pid) runs but does not answer: restarting it"
  stop_daemon "$G/qmaster/qmaster.pid" sge_qmaster
fi
if ! qmaster_pid >/dev/null; then
  (cd / && "${CLEAN[@]}" /usr/sbin/sge_qmaster) </dev/null >"$G/qmaster-start.log" 2>&1 9>&- ||
    die "sge_qmaster failed to start" "$G/qmaster-start.log" "$G/qmaster/messages"
  wait_until "$MN_START_TIMEOUT" qmaster_up ||
    die "sge_qmaster does not answer on port $SGE_QMASTER_PORT" "$G/qmaster-start.log" "$G/qmaster/messages"
  started=1
fi

# 4. Configuration: each item is read back, compared and written only if it differs
#    (qconf exits 0 even when it refuses a file). The ~25 qconf calls take 1-2 s, so a
#    rerun skips them when nothing they depend on has changed since they last succeeded
#    (the cell keeps its configuration in its spool across qmaster restarts).
CONF=$(mktemp -d)
trap 'rm -rf "$CONF"' EXIT
mem=$(awk -v n="$N" '/^MemTotal:/ {printf "%dM", $2 / 1024 / n}' /proc/meminfo)
fingerprint=$(printf '%s\n' "${nodes[*]}" "$SLOTS" "$UNHEARD" "$LOADREP" "$RESCHED" "$mem" "${removed[*]}" |
  cat - "$0" | md5sum | cut -d' ' -f1)
# qconf wraps long values onto lines ending in "\"; join them, ignore white space, and
# compare host lists as sets (qconf may print them in another order); drop comments
# (qconf -sconf heads its output with "#NAME:").
norm() {
  sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' |
    awk 'NF && $1 !~ /^#/ { $1 = $1; if ($1 == "hostlist") { split(substr($0, 10), h, " "); n = 0; for (k in h) n++
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (h[j] < h[i]) { t = h[i]; h[i] = h[j]; h[j] = t }
      $0 = "hostlist"; for (i = 1; i <= n; i++) $0 = $0 " " h[i] } print }'
}
# ensure LABEL FILE SHOW_COMMAND QCONF_ARGS...
ensure() {
  local label=$1 file=$2 show=$3 out
  shift 3
  [[ $($show 2>/dev/null | norm) == "$(norm <"$file")" ]] && return 0
  out=$(qconf "$@" 2>&1) || true
  [[ $($show 2>/dev/null | norm) == "$(norm <"$file")" ]] || die "$label: qconf $* did not take effect: $out"
  log "$label: set"
}
show_global() { qconf -sconf global; }
configure_cell() {
  show_global | norm | global_conf >"$CONF/global"
  ensure "global configuration" "$CONF/global" show_global -Mconf "$CONF/global"

  # Scheduler: a run every second and one second after each submit or job end.
  qconf -ssconf | norm | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
    -e 's/^schedd_job_info .*/schedd_job_info false/' >"$CONF/sconf"
  ensure "scheduler" "$CONF/sconf" "qconf -ssconf" -Msconf "$CONF/sconf"

  # Complexes as in the single-node cell: h_vmem requestable (a per-job ulimit -v), mem_free
  # requestable and consumable (DRMAA's default verification refuses non-consumable ones).
  show_complex() { qconf -sc | grep -v '^#'; }
  show_complex | awk '$1 == "h_vmem" || $1 == "mem_free" {$5 = "YES"} $1 == "h_vmem" {$6 = "NO"} $1 == "mem_free" {$6 = "YES"} {print}' >"$CONF/complex"
  ensure "complexes" "$CONF/complex" show_complex -Mc "$CONF/complex"

  # Parallel environment smp (a job's slots on one host), as in the single-node cell.
  cat >"$CONF/pe" <<'EOF'
pe_name            smp
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
  if qconf -sp smp >/dev/null 2>&1; then op=-Mp; else op=-Ap; fi
  ensure "parallel environment smp" "$CONF/pe" "qconf -sp smp" "$op" "$CONF/pe"

  qconf -ss 2>/dev/null | grep -qx "$MN_CTL_NAME" || qconf -as "$MN_CTL_NAME" >/dev/null 2>&1 ||
    die "could not make $MN_CTL_NAME a submit host"

  # Each node: an admin host (its execd may then register), an exec host with its share of
  # the machine's memory as mem_free, and a gid range of its own. All nodes share one
  # kernel and one /proc, and an execd finds its jobs' processes by the extra group id
  # from gid_range: two execds handing out the same id would account or kill each other's
  # jobs. Ranges 30K00-30K99, apart from the global one and the default cell's 20000-20999.
  # (the lists are read once: each qconf call costs 50-100 ms)
  admin=$(qconf -sh 2>/dev/null || true)
  exec_hosts=$(qconf -sel 2>/dev/null || true)
  host_confs=$(qconf -sconfl 2>/dev/null || true)
  add=()
  for n in "${nodes[@]}"; do grep -qx "$n" <<<"$admin" || add+=("$n"); done
  if ((${#add[@]})); then
    qconf -ah "$(IFS=,; echo "${add[*]}")" >/dev/null 2>&1 || true
    admin=$(qconf -sh 2>/dev/null || true)
    for n in "${add[@]}"; do grep -qx "$n" <<<"$admin" || die "could not make $n an admin host"; done
  fi
  exec_mem() { qconf -se "$1" 2>/dev/null | awk '$1 == "complex_values" {print $2}'; }
  k=0
  for n in "${nodes[@]}"; do
    k=$((k + 1))
    if grep -qx "$n" <<<"$exec_hosts"; then
      [[ $(exec_mem "$n") == "mem_free=$mem" ]] ||
        qconf -rattr exechost complex_values "mem_free=$mem" "$n" >/dev/null 2>&1 || true
    else
      printf 'hostname %s\nload_scaling NONE\ncomplex_values mem_free=%s\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' "$n" "$mem" >"$CONF/exec-$n"
      qconf -Ae "$CONF/exec-$n" >/dev/null 2>&1 || true
    fi
    [[ $(exec_mem "$n") == "mem_free=$mem" ]] || die "exec host $n: could not set complex_values mem_free=$mem"
    printf 'gid_range %d-%d\n' $((30000 + k * 100)) $((30000 + k * 100 + 99)) >"$CONF/$n"
    if grep -qx "$n" <<<"$host_confs"; then op=-Mconf; else op=-Aconf; fi
    ensure "host configuration $n" "$CONF/$n" "qconf -sconf $n" "$op" "$CONF/$n"
  done

  # Queue all.q on the N nodes. load_thresholds NONE: all nodes report the same (the
  # machine's) load, and a busy machine must not put every node into alarm state.
  cat >"$CONF/queue" <<EOF
qname                 all.q
hostlist              ${nodes[*]}
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
  if qconf -sq all.q >/dev/null 2>&1; then op=-Mq; else op=-Aq; fi
  ensure "queue all.q" "$CONF/queue" "qconf -sq all.q" "$op" "$CONF/queue"

  # Nodes deleted above leave the cell too.
  for n in "${removed[@]}"; do
    qconf -de "$n" >/dev/null 2>&1 || true
    qconf -dh "$n" >/dev/null 2>&1 || true
    qconf -dconf "$n" >/dev/null 2>&1 || true
  done
}
if [[ $(cat "$G/configured" 2>/dev/null) != "$fingerprint" ]]; then
  rm -f "$G/configured"
  configure_cell
  echo "$fingerprint" >"$G/configured"
fi

# 5. One execd per node, started inside it (clean environment, our ports), all at once:
#    each takes about a second before it detaches. Liveness by pid file, name and
#    network namespace (a qping to a dead execd costs a second).
starting=()
for n in "${nodes[@]}"; do
  execd_pid "$n" >/dev/null && continue
  (cd / && node_exec "$n" "${CLEAN[@]}" /usr/sbin/sge_execd) </dev/null >"$G/execd-$n-start.log" 2>&1 9>&- &
  starting+=("$!:$n")
  started=1
done
for p in "${starting[@]}"; do
  n=${p#*:}
  wait "${p%%:*}" || die "sge_execd on $n failed to start" "$G/execd-$n-start.log" "$G/execd/$n/messages"
done

# 6. Wait until each node's queue instance has reported a load and is not in state u
#    (unknown), E (error), d/D (disabled). An E left by a crash is cleared.
deadline=$((SECONDS + MN_START_TIMEOUT))
while :; do
  lines=$(qstat -f -q all.q 2>/dev/null | awk '$1 ~ /^all\.q@/') || true
  ok=$(awk '$4 != "-NA-" && $6 !~ /[uEdD]/' <<<"$lines" | grep -c . || true)
  ((ok == N)) && break
  for q in $(awk '$6 ~ /E/ {print $1}' <<<"$lines"); do qmod -c "$q" >/dev/null 2>&1 || true; done
  if ((SECONDS >= deadline)); then
    printf '%s\n' "$lines" >&2
    die "not all $N queue instances usable after ${MN_START_TIMEOUT} s" "$G/qmaster/messages"
  fi
  sleep 0.2
done

# 7. After a (re)start, a job on every node proves that jobs really start there (not
#    after a restart of the controller alone, GRIDMAP_MN_PROBE=0, whose nodes may be full
#    of running jobs).
if ((started)) && [[ ${GRIDMAP_MN_PROBE:-1} != 0 ]]; then
  pids=()
  for n in "${nodes[@]}"; do
    timeout 60 qsub -sync y -N mn-probe -q "all.q@$n" -wd / -o /dev/null -j y -b y /bin/true \
      >"$CONF/probe-$n" 2>&1 &
    pids+=($!)
  done
  k=0
  for n in "${nodes[@]}"; do
    wait "${pids[k]}" || die "the probe job on $n failed: $(tr '\n' ' ' <"$CONF/probe-$n")" "$G/qmaster/messages"
    k=$((k + 1))
  done
fi

write_env_file "$ENV_FILE" "# Client environment of the multi-node Grid Engine test cluster (gridmap scripts/multinode/start-sge.sh)
export SGE_ROOT=$SGE_ROOT
export SGE_CELL=$SGE_CELL
export SGE_QMASTER_PORT=$SGE_QMASTER_PORT
export SGE_EXECD_PORT=$SGE_EXECD_PORT
export DRMAA_LIBRARY_PATH=$DRMAA_LIB
# needed by any Python that dlopen()s libdrmaa on Debian 12 (set before Python starts)
export GLIBC_TUNABLES=$TUNABLES
# nodes, their addresses, the queue and the directory the nodes share (for tests)
export GRIDMAP_MN_NODES=\"${nodes[*]}\"
export GRIDMAP_MN_ADDRESSES=\"$(for n in "${nodes[@]}"; do printf '%s=%s ' "$n" "$(node_ip "$n")"; done | sed 's/ $//')\"
export GRIDMAP_MN_QUEUE=all.q
export GRIDMAP_MN_SHARED=$MN_SHARED"
if ((started)); then how="started in $(elapsed) s"; else how="already running ($(elapsed) s)"; fi
log "Grid Engine cell '$SGE_CELL' $how: nodes ${nodes[*]}, queue all.q, shared dir $MN_SHARED; client environment in $ENV_FILE"
grep '^export' "$ENV_FILE"
