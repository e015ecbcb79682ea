"""Deciding that a job is dead: from its heartbeats, its silence, and its scheduler.

Pure rules, no I/O, so each can be tested alone. The monitor applies them; a job
found dead gets the returned text as its ``cause_of_death`` and the returned kind
(a :class:`~gridmap_core.model.death.DeathKind`) as its ``death_kind``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridmap_core.backend.scheduler import JobStatus, Status, same_host
from gridmap_core.model.death import DeathKind
from gridmap_core.wire.exit_kinds import kind_of_exit
from gridmap_core.wire.messages import Heartbeat

__all__ = [
    "NODE_GRACE", "NODE_SUSPECTS", "Limits", "Verdict", "failed_node", "idle_warning",
    "is_idle", "judge_heartbeat", "judge_node", "judge_quiet", "judge_silence", "judge_status",
]

# The least silence after which a job whose node the scheduler counts failed is dead:
# a runner on a live node beats every HEARTBEAT_FREQUENCY seconds, so a few missed
# beats (and never less than this) tell a dead node from a scheduler that is wrong.
NODE_GRACE = 10.0


@dataclass(frozen=True)
class Limits:
    """The settings that decide death (see :mod:`gridmap_core.model.config`)."""

    max_silence: float  # MAX_TIME_BETWEEN_HEARTBEATS
    idle_threshold: float  # IDLE_THRESHOLD, CPU percent
    max_idle_time: float  # seconds; 0 turns idle detection off
    memory_limit: int | None = None  # bytes (h_vmem), None for none
    # The settings that gave max_idle_time, as an idle death's cause names them;
    # empty for MAX_IDLE_TIME.
    idle_setting: str = ""
    heartbeat_every: float = 0.0  # HEARTBEAT_FREQUENCY

    @property
    def node_grace(self) -> float:
        """Seconds of silence after which a job on a node the scheduler counts failed
        is dead, long before ``max_silence``: three missed beats, at least NODE_GRACE."""
        return max(3 * self.heartbeat_every, NODE_GRACE)

    @property
    def idle_limit(self) -> str:
        """The idle limit and where it came from, for the user."""
        return self.idle_setting or f"MAX_IDLE_TIME={self.max_idle_time:g}"


@dataclass(frozen=True)
class Verdict:
    """A job is dead: why (in words, and as a kind), and whether resubmitting it may
    help."""

    cause: str
    resubmit: bool = True
    kind: DeathKind = DeathKind.OTHER


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MB"


# CPU time is counted in clock ticks (10 ms on Linux), and sampling it for a heartbeat
# costs the runner about one: a beat's interval in which the job's processes used no
# more than this may show a few percent at short HEARTBEAT_FREQUENCY, yet nothing was
# done that can be told apart from the measuring itself.
UNMEASURABLE_CPU = 0.02  # seconds


def is_idle(beat: Heartbeat, limits: Limits, interval: float = 0.0) -> bool:
    """Whether a heartbeat shows the job idle over the ``interval`` seconds it covers.

    Its CPU percent is that of the job's whole process tree (the runner, the job, and
    every process they started, with those that ended in between), so a job waiting
    on a busy subprocess is not idle. Idle also means sleeping, not merely slow: a
    job blocked on disk is in state "disk-sleep" and keeps its place.
    """
    if beat.status != "sleeping":
        return False
    return (beat.cpu <= limits.idle_threshold
            or 0 < beat.cpu / 100.0 * interval <= UNMEASURABLE_CPU)


def judge_heartbeat(beat: Heartbeat, idle_for: float, limits: Limits) -> Verdict | None:
    """Judge one heartbeat of a job that has been idle for ``idle_for`` seconds (0 when
    this beat is not idle); a verdict if the job must be counted dead."""
    if limits.memory_limit is not None and beat.memory > limits.memory_limit:
        # Not resubmitted, as Grid Engine and Slurm do not resubmit a job they kill for
        # its memory: it would only grow past the same limit again.
        return Verdict(
            f"out of memory: its processes used {_mb(beat.memory)}, over its limit "
            f"h_vmem={_mb(limits.memory_limit)}",
            resubmit=False,
            kind=DeathKind.OUT_OF_MEMORY,
        )
    if limits.max_idle_time > 0 and idle_for >= limits.max_idle_time:
        return Verdict(
            f"idle: its processes used at most {limits.idle_threshold:g}% CPU, sleeping, "
            f"for {idle_for:.0f} s ({limits.idle_limit})",
            kind=DeathKind.IDLE,
        )
    return None


def idle_warning(idle_for: float, limits: Limits) -> str | None:
    """What to tell the user about a job idle for ``idle_for`` seconds, from half its
    idle limit on, so that an idle job is never killed unannounced; else None."""
    if limits.max_idle_time <= 0 or idle_for < limits.max_idle_time / 2:
        return None
    return (f"idle for {idle_for:.0f} s; it will be killed at {limits.max_idle_time:g} s "
            f"({limits.idle_limit})")


def judge_silence(silent_for: float, fetched: bool, address: str, limits: Limits
                  ) -> Verdict | None:
    """A job the scheduler runs (or that fetched its task) has said nothing for
    ``silent_for`` seconds."""
    if silent_for <= limits.max_silence:
        return None
    if fetched:
        return Verdict(
            f"no heartbeat for {silent_for:.0f} s "
            f"(MAX_TIME_BETWEEN_HEARTBEATS={limits.max_silence:g})",
            kind=DeathKind.NO_HEARTBEAT,
        )
    return Verdict(
        f"running for {silent_for:.0f} s without contacting the monitor at {address}: "
        "check that compute nodes can reach the submitting host, and the job's log",
        kind=DeathKind.SILENT,
    )


def judge_quiet(silent_for: float, fetched: bool, address: str) -> Verdict:
    """The silence of a job whose node failed, counted before ``max_silence``: the
    cause :func:`judge_node` completes."""
    if fetched:
        return Verdict(f"no heartbeat for {silent_for:.0f} s", kind=DeathKind.NO_HEARTBEAT)
    return Verdict(f"running for {silent_for:.0f} s without contacting the monitor at "
                   f"{address}", kind=DeathKind.SILENT)


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
        return Verdict(cause, status.resubmit, status.kind or _ended_kind(status.exit_status))
    if status.status is Status.ERROR:
        return Verdict(status.cause or f"job {job_id} is stuck in an error state",
                       status.resubmit, status.kind or DeathKind.SCHEDULER_ERROR)
    if status.status is Status.UNKNOWN:
        return Verdict(status.cause or f"the scheduler no longer knows job {job_id}",
                       status.resubmit, status.kind or DeathKind.VANISHED)
    return None


#: Deaths a failed node explains, when the scheduler says the job's node failed: the
#: job fell silent, was killed, vanished, or its runner lost the monitor or exited
#: without a result. Other kinds (a time limit, out of memory, a cancel) are the job's
#: or someone's doing, whatever became of its node since.
NODE_SUSPECTS = frozenset({
    DeathKind.NO_HEARTBEAT, DeathKind.SILENT, DeathKind.KILLED, DeathKind.VANISHED,
    DeathKind.EXITED, DeathKind.MONITOR_LOST, DeathKind.UNREACHABLE, DeathKind.OTHER,
})


def failed_node(host: str, down: Mapping[str, str]) -> tuple[str, str] | None:
    """The entry of ``down`` (a scheduler's ``down_hosts``: its name of each failed
    node, and its words) that names ``host`` (as the runner or the scheduler named the
    job's node; short names compare), or None."""
    for name, words in down.items():
        if same_host(name, host):
            return name, words
    return None


def judge_node(verdict: Verdict, host: str, words: str) -> Verdict:
    """A job found dead (``verdict``) whose node ``host`` the scheduler says failed, in
    ``words``: it died of its node, and is resubmitted elsewhere."""
    return Verdict(f"its node {host} failed ({words}); {verdict.cause}", True,
                   DeathKind.NODE_FAILED)


def _ended_kind(exit_status: int | None) -> DeathKind:
    """The kind of death of a job that ended, from its exit status alone (a scheduler
    that knows better says so in ``JobStatus.kind``)."""
    return kind_of_exit(exit_status)
