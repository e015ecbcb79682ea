"""How a Grid Engine job ended, told apart for ``cause_of_death``.

DRMAA's report (exit status, signal, "aborted", and the accounting record's usage)
is enough to tell the usual endings apart without calling ``qacct``:

* deleted (``qdel``): aborted; with no usage at all when it never started. A job
  Grid Engine could not start (its output file cannot be opened, say) is aborted
  too: the accounting record's ``failed`` code, looked up for aborted jobs only,
  tells the two apart (100, or no record, for ``qdel``);
* runtime exceeded: killed, with ``ru_wallclock`` at its ``h_rt``;
* out of memory: killed or failed, with ``maxvmem`` at its ``h_vmem`` (per slot).
  Grid Engine kills a job over either limit with the same SIGKILL, so the signal
  cannot tell the two apart; the usage does. A job killed at its ``h_rt`` counts as
  timed out even when its memory was near ``h_vmem`` too: a kill for memory comes when
  the memory is used, and only by chance at the end of the run time;
* killed by someone else, or by a node going down: killed by a signal, neither of
  the above.

Each ending's :class:`~gridmap_core.model.death.DeathKind` goes with its cause:
cancelled, scheduler error, time limit, out of memory, killed, and for an exit what
the runner's exit status says. Whether a kill was its node's failing, only the node's
state tells (:mod:`gridmap_sge.scheduler` looks).

Resubmitting can help with a kill, and with a failure to start that is particular to
one node (a full disk); not with a deletion or a limit the job will reach again, nor
with a log file its node could not open (failed 26) while the log directory is on this
host: the nodes do not see temp_dir, and every job of the map would fail the same
way. That cause names the node, from the job's accounting record (one ``qacct``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from gridmap_core.backend.drmaa import Ending
from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from gridmap_core.wire.exit_kinds import kind_of_exit, worth_resubmitting
from gridmap_core.wire.exits import (
    describe_exit,
)

__all__ = ["accounting_host", "describe_ending"]

_NEAR_LIMIT = 0.9  # usage this close to a limit means the limit ended the job
_RUNTIME_SLACK = 2.0  # seconds: Grid Engine enforces h_rt on its load report interval
_AFTER_JOB = 100  # accounting "failed" code of a job ended by a signal or deleted
_NO_LOG_FILE = 26  # accounting "failed" code: "opening input/output file"
_QACCT_TIMEOUT = 60.0


def accounting_host(job_id: str) -> str:
    """The host a job was sent to, from its latest accounting record (``qacct``); ""
    when there is none."""
    number, _, task = job_id.partition(".")
    try:
        done = subprocess.run(["qacct", "-j", number, *(["-t", task] if task else [])],
                              capture_output=True, text=True, timeout=_QACCT_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in reversed(done.stdout.splitlines()):  # the latest record comes last
        words = line.split()
        if words and words[0] == "hostname":
            return words[1] if len(words) > 1 else ""
    return ""


def _memory_cause(ending: Ending, resources: Resources) -> str | None:
    if resources.h_vmem is None:
        return None
    used = ending.number("maxvmem") or 0.0
    limit = resources.h_vmem * resources.num_slots
    if used >= _NEAR_LIMIT * limit:
        text = resources.h_vmem_text or str(resources.h_vmem)
        slots = f" per slot, {limit / 2**20:.0f} MB for {resources.num_slots} slots" \
            if resources.num_slots > 1 else ""
        return f"out of memory: it used {used / 2**20:.0f} MB, over its h_vmem={text}{slots}"
    return None


def _runtime_cause(ending: Ending, resources: Resources) -> str | None:
    if resources.h_rt is None:
        return None
    wallclock = ending.number("ru_wallclock")
    if wallclock is not None and wallclock + _RUNTIME_SLACK >= resources.h_rt:
        return (f"runtime limit exceeded: killed after {wallclock:.0f} s "
                f"(h_rt={resources.h_rt} s)")
    return None


def _log_not_opened(ending: Ending, failed: tuple[int, str], err_log: str | None,
                    host_of: Callable[[str], str]) -> JobStatus:
    """A job whose node could not open its log file (failed 26). With the log
    directory here, the node does not see it: temp_dir is not shared."""
    host = host_of(ending.job_id)
    where = f"host {host}" if host else "its node"
    log_dir = os.path.dirname(err_log) if err_log else ""
    could_not = f"Grid Engine could not start it (failed {failed[0]}: {failed[1]})"
    if not (log_dir and os.path.isdir(log_dir)):
        return JobStatus(Status.ENDED, f"{could_not}: the job's log file could not be "
                         f"opened on {where}", None, kind=DeathKind.SCHEDULER_ERROR,
                         host=host)
    return JobStatus(
        Status.ENDED,
        f"{could_not}: the job's log directory {log_dir} could not be opened on {where}: "
        "temp_dir must be on storage that the nodes share with this host. Set "
        "DEFAULT_TEMP_DIR (or pass temp_dir=) to a directory that every node mounts at "
        "the same path, such as one in your home directory",
        None, resubmit=False, kind=DeathKind.SCHEDULER_ERROR, host=host)


def describe_ending(ending: Ending, resources: Resources, err_log: str | None = None,
                    failed: tuple[int, str] | None = None,
                    host_of: Callable[[str], str] = accounting_host) -> JobStatus:
    """The :class:`JobStatus` of a job that DRMAA reported ended, with its kind of
    death; ``failed`` is its accounting record's failure code and text, where known;
    ``host_of`` finds the host of a job whose node could not open its log file."""
    if ending.aborted:
        if failed is not None and failed[0] == _NO_LOG_FILE:
            return _log_not_opened(ending, failed, err_log, host_of)
        if failed is not None and failed[0] not in (0, _AFTER_JOB):
            return JobStatus(Status.ENDED, f"Grid Engine could not start it (failed "
                             f"{failed[0]}: {failed[1]})", None,
                             kind=DeathKind.SCHEDULER_ERROR)
        if not ending.usage:
            cause = "deleted before it started (qdel), or Grid Engine could not start it"
        else:
            cause = "deleted while running (qdel)"
        return JobStatus(Status.ENDED, cause, None, resubmit=False, kind=DeathKind.CANCELLED)
    runtime = _runtime_cause(ending, resources) if ending.signal else None
    if runtime:
        return JobStatus(Status.ENDED, runtime, ending.exit_status, resubmit=False,
                         kind=DeathKind.TIME_LIMIT)
    memory = _memory_cause(ending, resources)
    if memory:
        return JobStatus(Status.ENDED, memory, ending.exit_status, resubmit=False,
                         kind=DeathKind.OUT_OF_MEMORY)
    if ending.signal:
        return JobStatus(Status.ENDED, describe_exit(None, ending.signal), None,
                         kind=DeathKind.KILLED)
    return JobStatus(Status.ENDED, describe_exit(ending.exit_status, None, err_log),
                     ending.exit_status, kind=kind_of_exit(ending.exit_status),
                     resubmit=worth_resubmitting(ending.exit_status))


