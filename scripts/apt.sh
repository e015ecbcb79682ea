# shellcheck shell=bash
# Sourced by the install scripts (scripts/slurm/start.sh, scripts/browser/install.sh):
# apt_get ARGS... runs apt-get non-interactively. Another apt may hold its locks (the
# cluster scripts may run beside each other, or someone is installing by hand):
# DPkg::Lock::Timeout makes install wait for the dpkg lock, and the loop retries the
# locks it does not cover in every apt version (apt-get update's lists lock), all
# bounded by APT_TIMEOUT seconds. The caller defines APT_TIMEOUT and log().
apt_get() {
  local deadline=$((SECONDS + APT_TIMEOUT)) out rc
  out=$(mktemp)
  while :; do
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout="$APT_TIMEOUT" "$@" >"$out" 2>&1 || rc=$?
    if ((rc == 0)); then
      rm -f "$out"
      return 0
    fi
    if grep -qiE 'could not get lock|unable to lock|unable to acquire' "$out" && ((SECONDS < deadline)); then
      log "apt is busy (another apt/dpkg holds its lock), retrying in 5 s"
      sleep 5
      continue
    fi
    tail -n 30 "$out" >&2
    rm -f "$out"
    return "$rc"
  done
}
