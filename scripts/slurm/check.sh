#!/usr/bin/env bash
# Health check of the single-node Slurm cluster: exits 0 only if the daemons answer,
# the node accepts work, a trivial job really ran and returned 0, and (when accounting
# is configured) sacct records it as COMPLETED 0:0. Prints what failed otherwise.
# Bounded: about a minute at worst, about a second when healthy. Works as any user.
set -euo pipefail

NODE=$(hostname -s)
fail() {
  printf 'slurm/check: FAILED: %s\n' "$*" >&2
  echo "slurm/check: logs are in /var/log/slurm; (re)start with scripts/slurm/start.sh" >&2
  exit 1
}
ok() { printf 'slurm/check: ok: %s\n' "$*"; }

for cmd in munge unmunge scontrol sinfo srun; do
  command -v "$cmd" >/dev/null || fail "'$cmd' is not installed"
done

timeout 10 munge -n 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1 || fail "munge does not work (is munged running?)"
ok "munge"

ping_out=$(timeout 15 scontrol ping 2>&1) || true
[[ $ping_out == *"is UP"* ]] || fail "slurmctld does not answer: ${ping_out%%$'\n'*}"
ok "slurmctld: $ping_out"

state=$(timeout 15 sinfo -h -n "$NODE" -o %T 2>&1) || true
# A trailing + (more states, e.g. "allocated+" on a full node) is still healthy;
# a trailing * (slurmd does not answer) is not.
case ${state%+} in
  idle | mixed | allocated | completing) ok "node $NODE is $state" ;;
  *) fail "node $NODE is '${state:-unknown}' (want idle/mixed/allocated; a trailing * means slurmd does not answer)" ;;
esac

# srun returns as soon as the job ends (sbatch --wait polls every 2+ s).
# shellcheck disable=SC2016 # $SLURM_JOB_ID is expanded inside the job, on purpose
out=$(timeout 60 srun --quiet -J gridmap-check -t 1 -D / -N 1 -n 1 \
  /bin/sh -c 'echo "check-ok $SLURM_JOB_ID"' 2>&1) && rc=0 || rc=$?
[[ $rc -eq 0 && $out == check-ok\ * ]] || fail "trivial srun job: rc=$rc, output: ${out:-none} (rc 124 = no result within 60 s)"
jobid=${out#check-ok }
jobid=${jobid%%[!0-9]*}
[[ -n $jobid ]] || fail "could not read the job id from '$out'"
ok "trivial job $jobid ran and returned 0"

acct=$(timeout 15 scontrol show config 2>/dev/null | sed -n 's/^AccountingStorageType *= *//p')
if [[ $acct == accounting_storage/slurmdbd ]]; then
  command -v sacct >/dev/null || fail "'sacct' is not installed"
  # The record reaches slurmdbd about a second after the job ends.
  line=""
  deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    line=$(timeout 10 sacct -X -n -P -j "$jobid" -o JobID,State,ExitCode 2>&1) || true
    [[ $line == "$jobid|COMPLETED|0:0" ]] && break
    sleep 0.3
  done
  [[ $line == "$jobid|COMPLETED|0:0" ]] || fail "sacct does not show job $jobid as COMPLETED|0:0 after 30 s: '${line:-nothing}'"
  ok "sacct: $line"
else
  ok "accounting off ($acct): sacct not checked"
fi
echo "slurm/check: cluster is healthy"
