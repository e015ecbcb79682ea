#!/bin/bash
# Stop the single-node SGE cluster started by start.sh: execd first, then qmaster.
# Idempotent (nothing running or nothing installed: exit 0) and bounded in time.
# Configuration, spool and job ids survive; start.sh brings the cluster back.
#
#   stop.sh              running jobs are left alone (a later execd start re-attaches them)
#   stop.sh --kill-jobs  the execd kills running jobs first (qconf -kej)
#
# Tunables: SGE_STOP_TIMEOUT seconds per daemon before it is sent SIGTERM/SIGKILL (default 60).
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
readonly STOP_TIMEOUT=${SGE_STOP_TIMEOUT:-60}
readonly QMASTER_PIDFILE=/var/spool/gridengine/qmaster/qmaster.pid
readonly EXECD_PIDFILE=/run/gridengine/execd.pid

T0=$SECONDS
log() { printf '[sge-stop %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[sge-stop] ERROR: %s\n' "$*" >&2; exit 1; }

KE=-ke
case ${1:-} in
'') ;;
--kill-jobs) KE=-kej ;;
*) die "usage: $0 [--kill-jobs]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (qmaster shutdown needs a manager; fallback kills need root)"

if [ ! -x /usr/bin/qconf ] || [ ! -f "$SGE_ROOT/$SGE_CELL/common/act_qmaster" ]; then
    log "SGE is not installed; nothing to stop"
    exit 0
fi

# Same lock as start.sh: never stop half-way through a start.
mkdir -p /run/lock
exec 9>/run/lock/gridmap-sge.lock
flock -w 600 9 || die "another start.sh/stop.sh holds /run/lock/gridmap-sge.lock for >600 s"

# shellcheck disable=SC2034  # read by up() in daemons.sh
H=$(cat "$SGE_ROOT/$SGE_CELL/common/act_qmaster")

# shellcheck source=daemons.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"

# stop_daemon NAME PORT PIDFILE QCONF_ARGS...: ask politely, wait, then signal.
stop_daemon() {
    local name=$1 port=$2 pidfile=$3 pid deadline
    shift 3
    if ! up "$port" "$name" && ! live_pid "$pidfile" "sge_$name" >/dev/null; then
        log "$name is not running"
        return 0
    fi
    if up "$port" "$name"; then
        log "$name: qconf $* ($(timeout 30 qconf "$@" 2>&1 | head -n 1 || true))"
    fi
    deadline=$((SECONDS + STOP_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! up "$port" "$name" && ! live_pid "$pidfile" "sge_$name" >/dev/null; then
            log "$name stopped"
            return 0
        fi
        sleep 0.2
    done
    if pid=$(live_pid "$pidfile" "sge_$name"); then
        log "$name (pid $pid) still running after ${STOP_TIMEOUT} s: SIGTERM"
        kill -TERM "$pid" 2>/dev/null || true
        kill -CONT "$pid" 2>/dev/null || true # a stopped (SIGSTOP) daemon handles TERM only once continued
        for _ in $(seq 50); do live_pid "$pidfile" "sge_$name" >/dev/null || break; sleep 0.2; done
        if pid=$(live_pid "$pidfile" "sge_$name"); then
            log "$name (pid $pid) ignores SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
        fi
    fi
    if up "$port" "$name" || live_pid "$pidfile" "sge_$name" >/dev/null; then
        die "$name is still running (port $port answers or pid file $pidfile names a live process)"
    fi
    log "$name stopped"
}

stop_daemon execd 6445 "$EXECD_PIDFILE" "$KE" all
stop_daemon qmaster 6444 "$QMASTER_PIDFILE" -km
log "SGE stopped"
