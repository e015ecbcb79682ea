#!/bin/bash
# Install (if needed), configure and start a single-node Son of Grid Engine cluster
# (qmaster + execd on this host) for gridmap's tests and CI.
#
# Idempotent and non-interactive; must run as root. A second run while the cluster
# is up only checks the configuration and returns. Facts behind every step:
# shared/notes/sge-single-node.md (Debian 12, no systemd).
#
# stdout: only the client environment as `export` lines (so `eval "$(start.sh)"` works);
# progress and errors go to stderr. The same lines are written to $GRIDMAP_SGE_ENV_FILE
# (default /etc/gridmap-sge.env), which can be sourced.
#
# Tunables (environment):
#   SGE_SLOTS              slots of all.q (default 16: on 2 cores the per-job start cost,
#                          not the slot count, is the limit from ~16 on; see the notes)
#   SGE_START_TIMEOUT      seconds to wait for the queue to become usable (default 180)
#   SGE_APT_LOCK_TIMEOUT   seconds to wait for the dpkg/apt lock (default 600)
#   GRIDMAP_SGE_ENV_FILE   where to write the client environment (default /etc/gridmap-sge.env)
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
readonly DRMAA_LIB=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
# Debian 12's libdrmaa pulls in libjemalloc, whose static TLS block does not fit into
# glibc's default surplus: dlopen() from Python fails without this (notes, gotcha 1).
readonly TUNABLES=glibc.rtld.optional_static_tls=16384
readonly ENV_FILE=${GRIDMAP_SGE_ENV_FILE:-/etc/gridmap-sge.env}
readonly SLOTS=${SGE_SLOTS:-16}
readonly START_TIMEOUT=${SGE_START_TIMEOUT:-180}
readonly LOCK_TIMEOUT=${SGE_APT_LOCK_TIMEOUT:-600}
readonly PACKAGES=(gridengine-common gridengine-client gridengine-master gridengine-exec gridengine-drmaa1.0)
readonly COMMON=$SGE_ROOT/$SGE_CELL/common
readonly QMASTER_PIDFILE=/var/spool/gridengine/qmaster/qmaster.pid
readonly EXECD_PIDFILE=/run/gridengine/execd.pid
# Daemons get a clean environment: jobs inherit the execd's environment (notes, gotcha 6).
readonly CLEAN=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

T0=$SECONDS
log() { printf '[sge-start %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[sge-start] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts daemons)"
case $SLOTS in '' | *[!0-9]*) die "SGE_SLOTS must be a number, got '$SLOTS'" ;; esac

# Serialize concurrent runs (two CI steps, two engineers): the qconf edits and the daemon
# starts are not safe to interleave. Bounded so a stuck run cannot block forever.
mkdir -p /run/lock
exec 9>/run/lock/gridmap-sge.lock
flock -w 600 9 || die "another start.sh/stop.sh holds /run/lock/gridmap-sge.lock for >600 s"

H=$(hostname)
[ -n "$H" ] || die "hostname is empty"

# --------------------------------------------------------------------------------------
# Host name resolution. SGE compares the reverse lookup of a peer's IP with the name the
# peer claims; here `vm` -> 127.0.0.1 -> `localhost`, so every client would be refused
# ("access denied ... resolved to host name localhost"). SGE's own alias file fixes it
# without editing /etc/hosts. It must exist before the qmaster starts.
# --------------------------------------------------------------------------------------
IP=$(getent ahostsv4 "$H" | awk 'NR==1 {print $1}') || true
[ -n "$IP" ] || die "host name '$H' does not resolve to an IPv4 address; SGE needs a resolvable host name (add it to /etc/hosts)"
REV=$(getent hosts "$IP" | awk 'NR==1 {print $2}') || true
ALIASES_CHANGED=0
ensure_host_aliases() {
    local want=""
    if [ -n "$REV" ] && [ "$REV" != "$H" ]; then want="$H $REV"; fi
    [ -n "$want" ] || return 0
    mkdir -p "$COMMON"
    if [ "$(cat "$COMMON/host_aliases" 2>/dev/null || true)" != "$want" ]; then
        log "writing $COMMON/host_aliases: '$want' ($H -> $IP -> $REV)"
        printf '%s\n' "$want" >"$COMMON/host_aliases"
        ALIASES_CHANGED=1
    fi
    chmod 0644 "$COMMON/host_aliases"
    if id sgeadmin >/dev/null 2>&1; then chown sgeadmin:sgeadmin "$COMMON/host_aliases"; fi
}

# --------------------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------------------
pkgs_installed() {
    local p st
    for p in "${PACKAGES[@]}"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || return 1
        [ "$st" = "install ok installed" ] || return 1
    done
}

# apt-get update takes the lists lock, which DPkg::Lock::Timeout does not cover in every
# apt version: retry while another apt (e.g. a Slurm install) holds a lock, bounded.
# Other update failures (an unreachable third-party source) are only warnings: the
# Debian mirror is what we need, and the install step reports real problems.
apt_update() {
    local deadline=$((SECONDS + LOCK_TIMEOUT)) out rc
    while :; do
        rc=0
        out=$(apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" -q update 2>&1) || rc=$?
        [ "$rc" -eq 0 ] && return 0
        if grep -qiE 'could not get lock|unable to lock' <<<"$out" && [ "$SECONDS" -lt "$deadline" ]; then
            log "apt lists are locked by another process, retrying"
            sleep 5
            continue
        fi
        log "warning: apt-get update exited $rc (continuing; install will tell if it matters):"
        grep -E '^(E|W):' <<<"$out" | head -n 5 >&2 || true
        return 0
    done
}

install_packages() {
    log "installing ${PACKAGES[*]}"
    # The three debconf questions are shared by all gridengine-* packages. `true` makes the
    # master's postinst create the cell (bootstrap, act_qmaster, BDB spool, sgeadmin user).
    local p
    for p in gridengine-common gridengine-client gridengine-master gridengine-exec; do
        printf '%s shared/gridengineconfig boolean true\n' "$p"
        printf '%s shared/gridenginecell string %s\n' "$p" "$SGE_CELL"
        printf '%s shared/gridenginemaster string %s\n' "$p" "$H"
    done | debconf-set-selections
    # Before the install: on a machine without a denying policy-rc.d the postinst would
    # start the qmaster, and it must see host_aliases from its first start.
    ensure_host_aliases
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install -y -q --no-install-recommends "${PACKAGES[@]}" >/tmp/gridmap-sge-apt.log 2>&1 ||
        { tail -n 20 /tmp/gridmap-sge-apt.log >&2; die "apt-get install failed (full log: /tmp/gridmap-sge-apt.log)"; }
    log "packages installed"
}

if ! pkgs_installed; then
    install_packages
fi
ensure_host_aliases

{ [ -f "$COMMON/bootstrap" ] && [ -f "$COMMON/act_qmaster" ]; } ||
    die "packages are installed but the SGE cell $COMMON was never created (debconf shared/gridengineconfig was false?). Fix: apt-get purge ${PACKAGES[*]} and run this script again"
ACT=$(cat "$COMMON/act_qmaster")
[ "$ACT" = "$H" ] ||
    die "$COMMON/act_qmaster says '$ACT' but this host is '$H' (cell created on another host name). Fix: scripts/sge/stop.sh, apt-get purge ${PACKAGES[*]}, run this script again"
# The cell's settings for clients; the Debian wrappers also read /etc/default/gridengine.
[ -x "$(command -v qconf)" ] || die "qconf not found after install"

# --------------------------------------------------------------------------------------
# Daemons (no systemd; the init scripts are not usable: `stop` is a no-op and `start`
# spawns a second qmaster). Liveness via qping, not kill -0: PID 1 reaps zombies lazily.
# --------------------------------------------------------------------------------------
# shellcheck source=daemons.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"

# kill pid $1 (TERM, then KILL after $2 s), waiting until it is gone or a zombie
kill_wait() {
    local pid=$1 i st
    kill -TERM "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null || true # a stopped (SIGSTOP) daemon handles TERM only once continued
    for ((i = 0; i < $2 * 5; i++)); do
        st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
        [ "$st" = Z ] && return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

wait_up() { # wait_up PORT NAME SECONDS
    local deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        up "$1" "$2" && return 0
        sleep 0.2
    done
    return 1
}

# Directory for the execd pid file; /run is a tmpfs on most machines.
install -d -o sgeadmin -g sgeadmin -m 0755 /run/gridengine

# Both daemons read host_aliases only at start.
if [ "$ALIASES_CHANGED" = 1 ]; then
    if pid=$(live_pid "$EXECD_PIDFILE" sge_execd); then
        log "host_aliases changed: restarting execd (pid $pid) so it reads the file"
        kill_wait "$pid" 30
    fi
    if pid=$(live_pid "$QMASTER_PIDFILE" sge_qmaster); then
        log "host_aliases changed: restarting qmaster (pid $pid) so it reads the file"
        kill_wait "$pid" 30
    fi
fi

if ! up 6444 qmaster; then
    # A qmaster that runs but does not answer (e.g. started before host_aliases existed)
    # would keep the port busy and make the new one fail: end it first. Give it 15 s in
    # case it is only starting up or slow on a loaded machine.
    if pid=$(live_pid "$QMASTER_PIDFILE" sge_qmaster) && ! wait_up 6444 qmaster 15; then
        log "qmaster pid $pid is alive but does not answer qping: stopping it"
        kill_wait "$pid" 30
    fi
    if ! up 6444 qmaster; then
        log "starting sge_qmaster"
        "${CLEAN[@]}" /usr/sbin/sge_qmaster
        wait_up 6444 qmaster 60 || {
            tail -n 20 /var/spool/gridengine/qmaster/messages >&2 2>/dev/null || true
            die "sge_qmaster did not answer on port 6444 within 60 s (log: /var/spool/gridengine/qmaster/messages)"
        }
        log "qmaster is up"
    fi
fi

# --------------------------------------------------------------------------------------
# Configuration. Every item is compared with the desired state and written only when it
# differs, so a second run changes nothing and stays fast. Generated files live in a
# temp dir, never in the repository.
# --------------------------------------------------------------------------------------
CONF=$(mktemp -d /tmp/gridmap-sge-conf.XXXXXX)
trap 'rm -rf "$CONF"' EXIT
# qconf wraps long values onto continuation lines ending in "\"; join them so values can be
# edited and compared as one line (qconf accepts the long lines back).
join_cont() { sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta'; }
norm() { join_cont | awk 'NF {$1 = $1; print}'; } # whitespace-insensitive comparison

# qconf exits 0 even when it refuses a file (seen: a malformed reporting_params), so success
# is judged by reading the configuration back.
#   ensure LABEL DESIRED_FILE SHOW_FUNCTION QCONF_ARGS...
ensure() {
    local label=$1 desired=$2 show=$3 out
    shift 3
    if [ "$("$show" | norm)" = "$(norm <"$desired")" ]; then return 0; fi
    out=$(qconf "$@" 2>&1) || true
    log "$label: qconf $1: $(head -n 1 <<<"$out")"
    [ "$("$show" | norm)" = "$(norm <"$desired")" ] ||
        die "$label: qconf $* did not take effect: $out"
}
show_global() { qconf -sconf global; }
show_sconf() { qconf -ssconf; }
show_complex() { qconf -sc | grep -v '^#'; }
show_pe() { qconf -sp smp 2>/dev/null; }
show_queue() { qconf -sq all.q 2>/dev/null; }

# Global configuration:
#  min_uid/min_gid 0    CI runs as root; the default 1000 refuses every root job
#  gid_range            each running job takes one tracking gid; 101 ids are too few
#  administrator_mail   nothing delivers mail here
#  accounting_flush_time=00:00:00   qacct sees a job as soon as it ends (not 15 s later)
# The whole reporting_params value is written (qconf shows it wrapped over two lines), and
# lines whose name contains "=" are dropped: debris of a wrongly wrapped value.
show_global | join_cont >"$CONF/current" || die "cannot read the global configuration"
sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
    -e 's/^gid_range .*/gid_range 20000-20999/' \
    -e 's/^administrator_mail .*/administrator_mail none/' \
    -e 's/^reporting_params .*/reporting_params accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
    -e '/^[^#[:space:]]*=/d' \
    "$CONF/current" >"$CONF/global" # qconf -Mconf takes the name from the file name
ensure "global configuration" "$CONF/global" show_global -Mconf "$CONF/global"

# Scheduler: a scheduling run every second and 1 s after each submit/job end; the
# defaults (15 s, flush off) make every trivial test job take ~15 s.
show_sconf | join_cont >"$CONF/current" || die "cannot read the scheduler configuration"
sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
    -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
    -e 's/^schedd_job_info .*/schedd_job_info false/' \
    "$CONF/current" >"$CONF/sconf"
ensure "scheduler" "$CONF/sconf" show_sconf -Msconf "$CONF/sconf"

# Complexes: h_vmem and mem_free requestable; only mem_free consumable (DRMAA's default
# `-w e` verification rejects requests for non-consumable load values). h_vmem stays
# non-consumable: consumable with default 0 gives jobs that do not request it a ~10 MB
# ulimit -v (notes, gotchas 3 and 9).
show_complex >"$CONF/current" || die "cannot read the complex configuration"
awk '$1 == "h_vmem" || $1 == "mem_free" {$5 = "YES"} $1 == "h_vmem" {$6 = "NO"} $1 == "mem_free" {$6 = "YES"} {print}' \
    "$CONF/current" >"$CONF/complex"
ensure "complexes" "$CONF/complex" show_complex -Mc "$CONF/complex"

# Exec host with a mem_free capacity (all of the machine's memory), added before the
# execd first starts so it does not self-register without it.
MEM=$(awk '/^MemTotal:/ {printf "%dM", $2 / 1024}' /proc/meminfo)
exechost_mem() { qconf -se "$H" 2>/dev/null | awk '$1 == "complex_values" {print $2}'; }
if ! qconf -se "$H" >/dev/null 2>&1; then
    cat >"$CONF/exechost" <<EOF
hostname              $H
load_scaling          NONE
complex_values        mem_free=$MEM
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
    log "exec host: $(qconf -Ae "$CONF/exechost" 2>&1 | head -n 1)"
elif [ "$(exechost_mem)" != "mem_free=$MEM" ]; then
    log "exec host: $(qconf -rattr exechost complex_values "mem_free=$MEM" "$H" 2>&1 | head -n 1)"
fi
[ "$(exechost_mem)" = "mem_free=$MEM" ] || die "exec host $H: could not set complex_values mem_free=$MEM"

# The master host is an admin host but not a submit host by default.
if ! qconf -ss 2>/dev/null | grep -qx "$H"; then
    log "submit host: $(qconf -as "$H" 2>&1 | head -n 1)"
    qconf -ss 2>/dev/null | grep -qx "$H" || die "could not make $H a submit host"
fi

# Parallel environment `smp`: all slots of a job on one host ($pe_slots).
# qsort_args is required: qconf -Ap refuses the file without it.
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
if show_pe >/dev/null; then
    ensure "parallel environment smp" "$CONF/pe" show_pe -Mp "$CONF/pe"
else
    ensure "parallel environment smp" "$CONF/pe" show_pe -Ap "$CONF/pe"
fi

# Queue all.q. load_thresholds NONE: the usual np_load_avg=1.75 puts the queue into alarm
# state (no dispatch) as soon as a busy 2-core test machine reaches load 3.5.
cat >"$CONF/queue" <<EOF
qname                 all.q
hostlist              $H
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
if show_queue >/dev/null; then
    ensure "queue all.q" "$CONF/queue" show_queue -Mq "$CONF/queue"
else
    ensure "queue all.q" "$CONF/queue" show_queue -Aq "$CONF/queue"
fi

# --------------------------------------------------------------------------------------
# Exec daemon, then wait until the queue instance is usable: it shows a load value (the
# execd has reported) and is not in state u (unknown) or E (error) / d (disabled).
# --------------------------------------------------------------------------------------
if ! up 6445 execd; then
    if pid=$(live_pid "$EXECD_PIDFILE" sge_execd) && ! wait_up 6445 execd 15; then
        log "execd pid $pid is alive but does not answer qping: stopping it"
        kill_wait "$pid" 30
    fi
    if ! up 6445 execd; then
        log "starting sge_execd"
        "${CLEAN[@]}" SGE_EXECD_PIDFILE="$EXECD_PIDFILE" /usr/sbin/sge_execd
    fi
fi

deadline=$((SECONDS + START_TIMEOUT))
line=""
while :; do
    line=$(qstat -f -q all.q 2>/dev/null | awk '$1 ~ /^all\.q@/') || true
    load=$(awk '{print $4}' <<<"$line")
    state=$(awk '{print $6}' <<<"$line")
    if [ -n "$load" ] && [ "$load" != "-NA-" ] && [[ $state != *[uEdD]* ]]; then
        break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        {
            echo "queue instance line: ${line:-<none>}"
            up 6444 qmaster && echo "qmaster: answers qping" || echo "qmaster: DOWN"
            up 6445 execd && echo "execd: answers qping" || echo "execd: DOWN"
            echo "--- qmaster messages (tail) ---"
            tail -n 10 /var/spool/gridengine/qmaster/messages 2>/dev/null || true
            echo "--- execd messages (tail) ---"
            tail -n 10 /var/spool/gridengine/execd/*/messages 2>/dev/null || true
        } >&2
        die "queue all.q@$H not usable within ${START_TIMEOUT} s (needs a load value and no u/E/d state)"
    fi
    sleep 0.2
done
log "cluster ready: $line"

# --------------------------------------------------------------------------------------
# Client environment: written to a sourceable file outside the repository and printed.
# --------------------------------------------------------------------------------------
[ -f "$DRMAA_LIB" ] || die "$DRMAA_LIB missing (gridengine-drmaa1.0 not installed?)"
umask 022
tmp_env=$(mktemp "$ENV_FILE.XXXXXX")
cat >"$tmp_env" <<EOF
# Client environment for the single-node SGE cluster started by gridmap's scripts/sge/start.sh
export SGE_ROOT=$SGE_ROOT
export SGE_CELL=$SGE_CELL
export DRMAA_LIBRARY_PATH=$DRMAA_LIB
# needed by any Python process that dlopen()s libdrmaa on Debian 12 (set before Python starts)
export GLIBC_TUNABLES=$TUNABLES
EOF
chmod 0644 "$tmp_env"
mv -f "$tmp_env" "$ENV_FILE"
log "client environment written to $ENV_FILE (source it)"
echo "# source $ENV_FILE  (or eval this output)"
grep '^export' "$ENV_FILE"
