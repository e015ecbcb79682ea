"""The contract between the monitor and a scheduler that launches runners.

A backend that runs jobs through the monitor protocol implements
:class:`Scheduler`: it launches the runner command for a group of tasks (one array
job where the scheduler has arrays), reports on many of its jobs in one call, and
cancels. :class:`~gridmap_core.map.monitor.MonitoredSession` does the rest (serving
tasks, heartbeats, death detection, resubmission) and is the backend's session.
"""

from __future__ import annotations

import enum
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from gridmap_core.backend import DeathKind, JobSpec

__all__ = ["JobStatus", "Launch", "PollSoon", "Scheduler", "Status", "hosts_to_avoid",
           "runner_prefix", "same_host", "short_host"]


class Status(str, enum.Enum):
    """Where a scheduler job stands, as the monitor needs to know it."""

    QUEUED = "queued"  # waiting to start (or held)
    RUNNING = "running"
    # Stopped by the scheduler or its admin (qmod -sj, scontrol suspend), to go on
    # later: it sends no heartbeats meanwhile, and that is no sign of death.
    SUSPENDED = "suspended"
    ENDED = "ended"  # finished, failed, killed: it will not run again by itself
    ERROR = "error"  # stuck in a state it will not leave by itself (SGE's Eqw)
    UNKNOWN = "unknown"  # the scheduler no longer knows the job


class JobStatus(NamedTuple):
    """A scheduler's report on one job.

    ``cause`` says how it ended or why it is stuck, in words for the user ("killed by
    signal 9", "out of memory"); ``resubmit`` is False when resubmitting cannot help
    or was not wanted (a user deleted the job); ``note`` explains a long wait in
    the queue ("no queue instance can run it: all.q@node is in state E"); ``kind``
    says what kind of death ``cause`` is, where the scheduler knows better than the
    status and ``exit_status`` tell (out of memory, a time limit, a cancel); ``host`` is
    the node the scheduler runs the job on, or last ran it on (a job it put back in the
    queue), in the scheduler's own spelling, "" when it does not say: the monitor asks
    whether that node failed when the job dies before its runner told where it runs.
    """

    status: Status
    cause: str = ""
    exit_status: int | None = None
    resubmit: bool = True
    note: str = ""
    kind: DeathKind | None = None
    host: str = ""


@dataclass(frozen=True)
class Launch:
    """Tasks to launch together; they share a :class:`JobSpec`.

    Each task runs ``command(task)``. For an array job, run :meth:`array_command`
    once per element: the runner reads the element's number from ``index_var`` (such
    as ``SGE_TASK_ID``) and finds its task from it.

    ``avoid`` names hosts whose node failed earlier in the session (as the scheduler's
    ``down_hosts`` or the runners named them): a resubmission should not run there. A
    backend excludes those of its nodes it can (:func:`hosts_to_avoid`), never every
    node the job may run on; one that cannot exclude hosts ignores them.
    """

    spec: JobSpec
    tasks: Sequence[int]  # consecutive task ids
    attempt: int
    log_dir: str
    runner: Sequence[str]  # the runner command up to its per-task arguments
    name: str = "gridmap_job"
    avoid: tuple[str, ...] = ()

    def command(self, task: int) -> list[str]:
        """The command line that runs ``task``."""
        return [*self.runner, "--task", str(task), "--attempt", str(self.attempt)]

    def array_command(self, index_var: str, first_index: int = 1) -> list[str]:
        """The command line of every element of an array over ``tasks``, whose element
        numbers start at ``first_index`` and are found in ``$index_var``."""
        return [
            *self.runner,
            "--task", str(self.tasks[0]),
            "--attempt", str(self.attempt),
            "--index-var", index_var,
            "--first-index", str(first_index),
        ]

    def log_path(self, task: int | str, stream: str = "out") -> str:
        """Where a task's stdout (``"out"``) or stderr (``"err"``) goes."""
        return os.path.join(self.log_dir, f"{self.name}.{task}.{self.attempt}.{stream}")

    @property
    def environment(self) -> dict[str, str]:
        """The environment the job runs with: the submitting process's when
        ``copy_env``, with ``add_env`` on top."""
        env = dict(os.environ) if self.spec.copy_env else {}
        env.update(self.spec.add_env or {})
        return env

    def shell_line(self, command: Sequence[str]) -> str:
        """``command`` quoted for a shell (job scripts)."""
        return shlex.join(command)


def runner_prefix(python: str | None = None) -> list[str]:
    """The start of a runner command line: the interpreter and the runner module."""
    return [python or sys.executable, "-m", "gridmap_core.node.runner"]


def short_host(name: str) -> str:
    """A host name without its domain, lower case: a runner reports its node's
    ``socket.gethostname()``, which may or may not be the name the scheduler uses.
    An IPv4 address is kept whole."""
    name = name.strip().lower()
    if name.replace(".", "").isdigit():
        return name
    return name.split(".", 1)[0]


def same_host(one: str, other: str) -> bool:
    """Whether two names of hosts name the same host (by their short names)."""
    return bool(one) and bool(other) and short_host(one) == short_host(other)


def hosts_to_avoid(candidates: Sequence[str], avoid: Sequence[str]) -> list[str]:
    """Which of ``candidates`` (the nodes a job may run on, as the scheduler names
    them) to exclude for ``avoid`` (:attr:`Launch.avoid`, in any spelling): those named
    there, unless that would leave the job no node at all. Then none: a job that can
    run only where a node failed waits for it, and its note says why."""
    avoided = {short_host(name) for name in avoid}
    excluded = [name for name in candidates if short_host(name) in avoided]
    return excluded if len(excluded) < len(candidates) else []


@runtime_checkable
class Scheduler(Protocol):
    """What a backend gives :class:`~gridmap_core.map.monitor.MonitoredSession`.

    Calls come from the submitting thread (the first launch of a batch), the monitor's
    thread (resubmissions), its polling thread and its cancelling thread, so
    implementations must be thread-safe. A ``cancel`` that raises is made again later
    with the same ids: count them cancelled only once the scheduler took the request.

    A scheduler may also have ``peers() -> Sequence[str]``: the hosts (names or
    addresses) that run its jobs. The monitor then advertises the address of this
    host that they reach it by (the route to them), not the host's first interface.

    And it may have ``down_hosts() -> Mapping[str, str]``: the nodes it considers
    failed now, each (by the scheduler's name for it) with the scheduler's own words
    for the failure ("Slurm says mn-slurm2 is DOWN+NOT_RESPONDING: Not responding",
    "Grid Engine says all.q@mn-sge2 is in state au: its execution daemon does not
    answer"). The monitor asks only when a job dies without a clear cause (silence, a
    kill, a vanishing), to tell a node's failure apart, and then resubmits with
    :attr:`Launch.avoid`; an error from it is logged and ignored.

    It may have ``adopt(ids: Sequence[str]) -> None``: watch jobs that another
    process launched (an earlier monitor of the same map, now gone), known only by the
    ids its ``launch`` returned. Afterwards ``poll`` and ``cancel`` treat them as jobs
    this instance launched: a job that ended before or after the adoption is reported
    ENDED (or UNKNOWN, vanished) by the next polls, never left queued for good, and a
    cancelled one is not reported, as for any job. What a launch records and the ids
    do not tell (the resources asked for, the log files) may be missing from an adopted
    job's cause of death. Ids already watched are left as they are. A scheduler whose
    jobs cannot outlive the process that launched them reports adopted ids ended, with a
    cause that says so.

    And it may have ``cancel_command() -> list[str]``: the command line that cancels
    jobs of this scheduler when their ids (as ``launch`` returned them) are appended,
    runnable on the nodes that run the jobs (``["scancel"]``, ``["qdel"]``, by full
    path where the scheduler knows it): the runners' way to cancel their map when its
    monitor is gone. An empty list, or no such method, means the runners cannot.
    """

    def launch(self, launch: Launch) -> list[str]:
        """Submit the runner of every task in ``launch.tasks``; return one scheduler
        job id per task, in order. Raise with a clear message if the scheduler
        refuses; nothing of ``launch`` may then be left queued."""
        ...

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        """Report on every job in ``ids``, in as few scheduler calls as it can (never
        one per job). An id missing from the answer counts as still queued."""
        ...

    def cancel(self, ids: Sequence[str]) -> None:
        """Stop these jobs, queued or running; ids that already ended are ignored."""
        ...

    def close(self) -> None:
        """Release the scheduler connection. Called once, after the last cancel."""
        ...


#: Something a scheduler may call, from any thread, to have the monitor poll soon
#: (a local process ended, say), instead of waiting for CHECK_FREQUENCY.
PollSoon = Callable[[], None]

