#!/bin/bash
# Check that the single-node SGE cluster is usable: daemons answer, the queue instance is
# usable, a trivial job submitted with `qsub -sync y` really runs and exits 0, and libdrmaa
# can be loaded from Python. Exit 0 only if all of that holds; otherwise say what failed.
# Bounded in time (SGE_CHECK_TIMEOUT seconds for the job, default 60). Does not need root:
# the job runs in a private temp dir (-wd), so a user without a home directory works too.
set -euo pipefail

readonly ENV_FILE=${GRIDMAP_SGE_ENV_FILE:-/etc/gridmap-sge.env}
readonly JOB_TIMEOUT=${SGE_CHECK_TIMEOUT:-60}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

T0=$SECONDS
log() { printf '[sge-check %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
fail() { printf '[sge-check] FAILED: %s\n' "$*" >&2; exit 1; }

if [ -r "$ENV_FILE" ]; then
    # shellcheck source=/dev/null
    . "$ENV_FILE"
else
    log "warning: $ENV_FILE not found (has start.sh run?); using Debian defaults"
    export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
    export DRMAA_LIBRARY_PATH=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
    export GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384
fi

command -v qsub >/dev/null || fail "qsub not found: gridengine-client is not installed (run scripts/sge/start.sh)"
[ -r "$SGE_ROOT/$SGE_CELL/common/act_qmaster" ] ||
    fail "$SGE_ROOT/$SGE_CELL/common/act_qmaster missing: no SGE cell (run scripts/sge/start.sh)"
H=$(cat "$SGE_ROOT/$SGE_CELL/common/act_qmaster")

timeout 10 qping -info "$H" 6444 qmaster 1 >/dev/null 2>&1 ||
    fail "qmaster on $H:6444 does not answer qping (run scripts/sge/start.sh)"
timeout 10 qping -info "$H" 6445 execd 1 >/dev/null 2>&1 ||
    fail "execd on $H:6445 does not answer qping (run scripts/sge/start.sh)"
log "qmaster and execd answer"

line=$(timeout 20 qstat -f -q all.q 2>&1 | awk '$1 ~ /^all\.q@/') || true
[ -n "$line" ] || fail "no queue instance all.q@... in 'qstat -f' (output: $(timeout 20 qstat -f 2>&1 | head -n 5))"
load=$(awk '{print $4}' <<<"$line")
state=$(awk '{print $6}' <<<"$line")
{ [ -n "$load" ] && [ "$load" != "-NA-" ]; } || fail "queue instance has no load value yet (execd not reporting): $line"
[[ $state != *[uEdDaAsScC]* ]] || fail "queue instance is in state '$state' (u=unknown E=error d=disabled a=alarm s=suspended): $line"
log "queue usable: $line"

TMP=$(mktemp -d /tmp/gridmap-sge-check.XXXXXX)
NAME=gridmap_check_$$
JOB_DONE=0
cleanup() {
    # Never leave a stuck check job behind (a job in Eqw would block -sync y forever).
    # Only when the job did not finish: qdel of an unknown job logs an error in the qmaster.
    if [ "$JOB_DONE" = 0 ]; then timeout 20 qdel "$NAME" >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/job.sh" <<'EOF'
#!/bin/sh
echo "gridmap-sge-check ok: job $JOB_ID on $(hostname) as $(id -un)"
exit 0
EOF
log "submitting a trivial job with qsub -sync y (timeout ${JOB_TIMEOUT} s)"
start=$SECONDS
rc=0
out=$(timeout "$JOB_TIMEOUT" qsub -sync y -N "$NAME" -wd "$TMP" -o "$TMP/job.out" -j y -S /bin/sh "$TMP/job.sh" 2>&1) || rc=$?
elapsed=$((SECONDS - start))
[ "$rc" -eq 124 ] || JOB_DONE=1
if [ "$rc" -eq 124 ]; then
    fail "job did not finish within ${JOB_TIMEOUT} s (qsub output: $out; qstat: $(qstat 2>&1 | tail -n +3 | head -n 5))"
fi
[ "$rc" -eq 0 ] || fail "qsub -sync y exited $rc: $out"
grep -q '^gridmap-sge-check ok' "$TMP/job.out" 2>/dev/null ||
    fail "qsub returned 0 but the job's output is missing or wrong: $(cat "$TMP/job.out" 2>&1)"
log "job ran in ${elapsed} s: $(cat "$TMP/job.out")"

# gridmap talks to SGE through libdrmaa from Python: check it loads (needs GLIBC_TUNABLES).
if command -v python3 >/dev/null; then
    err=$(python3 -c 'import ctypes, os; ctypes.CDLL(os.environ["DRMAA_LIBRARY_PATH"])' 2>&1) ||
        fail "python3 cannot load DRMAA_LIBRARY_PATH=$DRMAA_LIBRARY_PATH (GLIBC_TUNABLES=${GLIBC_TUNABLES:-unset}): $err"
    log "python3 loads $DRMAA_LIBRARY_PATH"
else
    log "python3 not found: skipped the libdrmaa load check"
fi

echo "SGE cluster OK ($H, job in ${elapsed} s, total $((SECONDS - T0)) s)"
