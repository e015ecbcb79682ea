"""Job lifecycle events, as typed objects: the one table of events and their hooks.

Every event the core tells goes through :func:`gridmap_core.plugins.manager.deliver`:
first to implementations of the typed hook ``gridmap_event(event)``, then to those of
the event's own named hook (``gridmap_job_started(job)``, …), which third-party
plugins and notifiers implement. Each event class names its hook, and its fields are
that hook's arguments: this module is the one table of events and hooks, and a test
holds it to the hook specifications.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from gridmap_core.model.job import Job, JobState

__all__ = [
    "EVENTS", "EVERY_JOB_HOOKS", "FAILURE_HOOKS", "TYPED_HOOK", "Event", "JobDied",
    "JobEvent", "JobFailed", "JobFinished", "JobHeartbeat", "JobResubmitted", "JobStarted",
    "JobSubmitted", "JobWaiting", "MapFinished", "ended",
]

#: The hook that hears every event as an :class:`Event` object.
TYPED_HOOK = "gridmap_event"


@dataclass(frozen=True)
class Event:
    """Something that happened to a job or a map; its fields are its hook's arguments."""

    #: The named hook that tells this event (a hook of :mod:`~gridmap_core.plugins.hookspecs`).
    hook: ClassVar[str] = ""
    #: Whether every job has this event (started, finished…), as opposed to only the
    #: jobs that fail, die or resubmit: grid_map makes a Job object for every input
    #: only when someone listens to events of the first kind.
    every_job: ClassVar[bool] = False

    def arguments(self) -> dict[str, Any]:
        """The named hook's arguments, by name."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclass(frozen=True)
class JobEvent(Event):
    """An event of one job; the Job object holds its state as of the event."""

    job: Job


@dataclass(frozen=True)
class JobSubmitted(JobEvent):
    """The job was handed to its backend (``job.id`` may still be empty)."""

    hook: ClassVar[str] = "gridmap_job_submitted"
    every_job: ClassVar[bool] = True


@dataclass(frozen=True)
class JobWaiting(JobEvent):
    """The job is still queued; ``note`` says why in the scheduler's words ("" when it
    no longer gives a reason)."""

    note: str
    hook: ClassVar[str] = "gridmap_job_waiting"
    every_job: ClassVar[bool] = True


@dataclass(frozen=True)
class JobStarted(JobEvent):
    """The job began to run (``job.host_name`` says where, when known)."""

    hook: ClassVar[str] = "gridmap_job_started"
    every_job: ClassVar[bool] = True


@dataclass(frozen=True)
class JobHeartbeat(JobEvent):
    """The running job reported its health (``cpu``, ``memory``, ``host_name``…)."""

    heartbeat: dict[str, Any]
    hook: ClassVar[str] = "gridmap_job_heartbeat"
    every_job: ClassVar[bool] = True


@dataclass(frozen=True)
class JobFinished(JobEvent):
    """The job returned; its value is in ``job.ret``."""

    hook: ClassVar[str] = "gridmap_job_finished"
    every_job: ClassVar[bool] = True


@dataclass(frozen=True)
class JobFailed(JobEvent):
    """The job raised: ``job.ret`` holds the exception, ``job.traceback`` its text."""

    hook: ClassVar[str] = "gridmap_job_failed"


@dataclass(frozen=True)
class JobDied(JobEvent):
    """The job was lost for good: ``job.cause_of_death`` says why, ``job.death_kind``
    what kind of death it was."""

    hook: ClassVar[str] = "gridmap_job_died"


@dataclass(frozen=True)
class JobResubmitted(JobEvent):
    """The job died (``job.cause_of_death``, ``job.death_kind``) and was submitted
    again; ``job.num_resubmits`` counts the times."""

    hook: ClassVar[str] = "gridmap_job_resubmitted"


@dataclass(frozen=True)
class MapFinished(Event):
    """A map ended; ``summary`` says how (see the ``gridmap_map_finished`` hook)."""

    jobs: Sequence[Job]
    summary: dict[str, Any]
    hook: ClassVar[str] = "gridmap_map_finished"


#: Every event there is, each with its named hook.
EVENTS: tuple[type[Event], ...] = (
    JobSubmitted, JobWaiting, JobStarted, JobHeartbeat, JobFinished, JobFailed, JobDied,
    JobResubmitted, MapFinished,
)
EVERY_JOB_HOOKS = tuple(event.hook for event in EVENTS if event.every_job)
#: The hooks of events that only jobs that fail, die or resubmit have.
FAILURE_HOOKS = tuple(event.hook for event in EVENTS
                      if issubclass(event, JobEvent) and not event.every_job)
_ENDINGS: Mapping[JobState, type[JobEvent]] = {JobState.DEAD: JobDied,
                                               JobState.FAILED: JobFailed}


def ended(job: Job) -> JobEvent:
    """The event of a job that has just ended, by its state."""
    return _ENDINGS.get(job.state, JobFinished)(job)
