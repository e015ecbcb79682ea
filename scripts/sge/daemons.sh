# shellcheck shell=bash
# Shell functions shared by start.sh and stop.sh; sourced, not run. Callers set H
# (the qmaster's host name) before calling up.

# Liveness via qping, not kill -0: PID 1 on these machines reaps zombies lazily.
up() { timeout 10 qping -info "$H" "$1" "$2" 1 >/dev/null 2>&1; } # up 6444 qmaster | up 6445 execd

# pid of a live (non-zombie) process whose pid is in file $1 and whose command matches $2
live_pid() {
    local pid st
    pid=$(cat "$1" 2>/dev/null) || return 1
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] || return 1
    grep -q "$2" "/proc/$pid/comm" 2>/dev/null || return 1
    echo "$pid"
}
