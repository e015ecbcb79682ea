"""Deciding that a job is dead: from its heartbeats, its silence, and its scheduler.

Pure rules, no I/O, so each can be tested alone. The monitor applies them; a job
found dead gets the returned text as its ``cause_of_death``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import Heartbeat
from .scheduler import JobStatus, Status

__all__ = ["Limits", "Verdict", "judge_heartbeat", "judge_silence", "judge_status"]


@dataclass(frozen=True)
class Limits:
    """The settings that decide death (see :mod:`gridmap_core.config`)."""

    max_silence: float  # MAX_TIME_BETWEEN_HEARTBEATS
    idle_threshold: float  # IDLE_THRESHOLD, CPU percent
    max_idle_beats: int  # MAX_IDLE_HEARTBEATS; 0 turns idle detection off
    memory_limit: int | None = None  # bytes (h_vmem), None for none


@dataclass(frozen=True)
class Verdict:
    """A job is dead: why, and whether resubmitting it may help."""

    cause: str
    resubmit: bool = True


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MB"


def judge_heartbeat(beat: Heartbeat, idle_beats: int, limits: Limits
                    ) -> tuple[int, Verdict | None]:
    """Judge one heartbeat. Returns the new count of idle beats in a row, and a
    verdict if the job must be counted dead."""
    if limits.memory_limit is not None and beat.memory > limits.memory_limit:
        # Not resubmitted, as Grid Engine and Slurm do not resubmit a job they kill for
        # its memory: it would only grow past the same limit again.
        return 0, Verdict(
            f"out of memory: its processes used {_mb(beat.memory)}, over its limit "
            f"h_vmem={_mb(limits.memory_limit)}",
            resubmit=False,
        )
    # Idle means sleeping, not merely slow: a job blocked on disk is in state
    # "disk-sleep" and keeps its place.
    if beat.cpu <= limits.idle_threshold and beat.status == "sleeping":
        idle_beats += 1
    else:
        idle_beats = 0
    if limits.max_idle_beats > 0 and idle_beats >= limits.max_idle_beats:
        return idle_beats, Verdict(
            f"idle: CPU at or below {limits.idle_threshold:g}% while sleeping for "
            f"{idle_beats} heartbeats in a row (MAX_IDLE_HEARTBEATS={limits.max_idle_beats})"
        )
    return idle_beats, None


def judge_silence(silent_for: float, fetched: bool, address: str, limits: Limits
                  ) -> Verdict | None:
    """A job the scheduler runs (or that fetched its task) has said nothing for
    ``silent_for`` seconds."""
    if silent_for <= limits.max_silence:
        return None
    if fetched:
        return Verdict(
            f"no heartbeat for {silent_for:.0f} s "
            f"(MAX_TIME_BETWEEN_HEARTBEATS={limits.max_silence:g})"
        )
    return Verdict(
        f"running for {silent_for:.0f} s without contacting the monitor at {address}: "
        "check that compute nodes can reach the submitting host, and the job's log"
    )


def judge_status(status: JobStatus, job_id: str) -> Verdict | None:
    """What a scheduler's report means for a job that has not sent its result.

    A runner exits only after its result was acknowledged, and the monitor records a
    result before acknowledging it; so a job that ended with no result recorded is
    dead, with no grace period needed.
    """
    if status.status is Status.ENDED:
        cause = status.cause or "ended without sending a result"
        # A negative status is a signal, which the cause already names.
        if status.exit_status is not None and status.exit_status > 0 and "status" not in cause:
            cause += f" (exit status {status.exit_status})"
        return Verdict(cause, status.resubmit)
    if status.status is Status.ERROR:
        return Verdict(status.cause or f"job {job_id} is stuck in an error state",
                       status.resubmit)
    if status.status is Status.UNKNOWN:
        return Verdict(status.cause or f"the scheduler no longer knows job {job_id}",
                       status.resubmit)
    return None
