"""What kind of death a lost job died: the structure beside the words of its cause.

A cause of death is told to people (``Job.cause_of_death``, "no heartbeat for 31 s
(MAX_TIME_BETWEEN_HEARTBEATS=30)"); its :class:`DeathKind` is for programs (the
doctor, plugins, notifiers), so that none has to read the words. The kind is decided
where the cause is: by the monitor's rules (:mod:`gridmap_core.map.liveness`) and by
the backends, in their schedulers' reports (``JobStatus.kind``).
"""

from __future__ import annotations

import enum

__all__ = ["UNHEARD", "DeathKind"]


class DeathKind(str, enum.Enum):
    """Why a job was lost without a result, as a kind (its value reads as words)."""

    #: It had reached the monitor, then sent no heartbeat for too long.
    NO_HEARTBEAT = "no heartbeat"
    #: Its scheduler ran it, yet it never contacted the monitor.
    SILENT = "silent"
    #: Its runner could not reach the monitor, and gave up.
    UNREACHABLE = "unreachable"
    #: Its runner lost the monitor while the job ran, or could not deliver its result.
    MONITOR_LOST = "monitor lost"
    #: Its processes sat idle, sleeping, past the idle limit.
    IDLE = "idle"
    #: It used more memory than its limit.
    OUT_OF_MEMORY = "out of memory"
    #: Its scheduler ended it at its run time limit.
    TIME_LIMIT = "time limit"
    #: It (or its runner) was killed by a signal.
    KILLED = "killed"
    #: It (or its runner) exited without a result.
    EXITED = "exited"
    #: Its runner could not start (a bad command line or key file).
    RUNNER_FAILED = "runner failed"
    #: It was cancelled outside gridmap (qdel, scancel) or by the backend.
    CANCELLED = "cancelled"
    #: Its node failed, or failed to boot.
    NODE_FAILED = "node failed"
    #: Its scheduler preempted it for another job.
    PREEMPTED = "preempted"
    #: Its scheduler could not start it, or holds it in an error state.
    SCHEDULER_ERROR = "scheduler error"
    #: Its scheduler no longer knows it.
    VANISHED = "vanished"
    #: A death the backend gave no kind for (its cause says what happened).
    OTHER = "other"


#: The kinds of death that mean the job's runner and the monitor never (or no longer)
#: heard each other: what the doctor blames on the way from the nodes to the monitor.
UNHEARD = frozenset({DeathKind.NO_HEARTBEAT, DeathKind.SILENT, DeathKind.UNREACHABLE,
                     DeathKind.MONITOR_LOST})
