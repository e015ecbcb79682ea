# shellcheck shell=bash
# Shell functions shared by start.sh and stop.sh; sourced, not run.

# True if the pid file names a live process with the given command name. A pid file
# alone proves nothing: slurmctld leaves a stale one behind, pids get reused, and on
# this machine (PID 1 is not a real init) a stopped daemon can linger as a zombie,
# which `kill -0` would still report as alive.
alive() {
  local pidfile=$1 name=$2 pid comm state
  [[ -s $pidfile ]] || return 1
  pid=$(head -n 1 "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == "$name" ]] || return 1
  state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]]
}
