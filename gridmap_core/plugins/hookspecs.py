"""Every hook gridmap calls. Plugins implement them with ``@gridmap_core.hookimpl``.

Registration hooks return contributions (dataclasses from
:mod:`gridmap_core.plugins.types`); lifecycle hooks broadcast events to every
observer, and what they return is ignored. An observer that raises is logged and
never fails the map.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from gridmap_core.model.events import Event
    from gridmap_core.model.job import Job
    from gridmap_core.plugins.types import BackendSpec, NotifierSpec, TransportSpec

hookspec = pluggy.HookspecMarker("gridmap")


@hookspec
def gridmap_backends() -> Iterable[BackendSpec]:
    """Register scheduler backends.

    Called whenever gridmap reads its registry (to choose or list backends), so
    return the specs without doing slow work. Return any number of
    :class:`BackendSpec`; every result is kept (not first-wins). A name registered
    twice is an error naming both plugins.

    Example::

        @hookimpl
        def gridmap_backends():
            return [BackendSpec("pbs", "gridmap_pbs.backend:PBSBackend", "PBS via qsub")]
    """
    return ()


@hookspec
def gridmap_transports() -> Iterable[TransportSpec]:
    """Register transports that carry runner <-> monitor messages.

    Called whenever gridmap reads its registry; every result is kept.

    Example::

        @hookimpl
        def gridmap_transports():
            return [TransportSpec("zmq", "gridmap_core.transports.zmq:ZmqTransport",
                                  "ZeroMQ over TCP")]
    """
    return ()


@hookspec
def gridmap_notifiers() -> Iterable[NotifierSpec]:
    """Register notifiers that hear about failed jobs and finished maps.

    Called whenever gridmap reads its registry; every result is kept.

    Example::

        @hookimpl
        def gridmap_notifiers():
            return [NotifierSpec("slack", "gridmap_slack:SlackNotifier", "post to Slack")]
    """
    return ()


@hookspec
def gridmap_job_submitted(job: Job) -> None:
    """A job was handed to its backend (``job.id`` may still be empty).

    Called in the submitting process, for every job; return value ignored.

    Example::

        @hookimpl
        def gridmap_job_submitted(job):
            print("queued", job.name)
    """


@hookspec
def gridmap_job_waiting(job: Job, note: str) -> None:
    """A queued job is still waiting, and the scheduler says why: ``note`` in its
    words ("no queue instance can run it: all.q@node is in state E"); an empty
    ``note`` when it no longer gives a reason.

    Called in the submitting process when the note of a queued job changes, by
    backends that run the monitor protocol and whose scheduler explains waits (Grid
    Engine, Slurm). Return value ignored.

    Example::

        @hookimpl
        def gridmap_job_waiting(job, note):
            print(job.name, "waits:", note)
    """


@hookspec
def gridmap_job_started(job: Job) -> None:
    """A job began to run (``job.host_name`` says where, when known).

    Called in the submitting process when the job reaches its machine: on a cluster,
    when its runner asks for its task, so again after each resubmission. A backend
    that does not report starts has them reported just before the job's end.
    Return value ignored.

    Example::

        @hookimpl
        def gridmap_job_started(job):
            print(job.name, "running on", job.host_name)
    """


@hookspec
def gridmap_job_heartbeat(job: Job, heartbeat: dict[str, Any]) -> None:
    """A running job reported its health: ``heartbeat`` has ``cpu`` (percent),
    ``memory`` (bytes of RSS of its process tree) and ``host_name``.

    Called in the submitting process, by backends that run the monitor protocol;
    return value ignored.

    Example::

        @hookimpl
        def gridmap_job_heartbeat(job, heartbeat):
            print(job.name, heartbeat["cpu"], heartbeat["memory"])
    """


@hookspec
def gridmap_job_finished(job: Job) -> None:
    """A job returned; its value is in ``job.ret``.

    Called in the submitting process, once per job that succeeded; return value ignored.

    Example::

        @hookimpl
        def gridmap_job_finished(job):
            print(job.name, "->", job.ret)
    """


@hookspec
def gridmap_job_failed(job: Job) -> None:
    """A job raised: ``job.ret`` holds the exception and ``job.traceback`` its text.

    Called in the submitting process, once per failed job; return value ignored.

    Example::

        @hookimpl
        def gridmap_job_failed(job):
            print(job.name, "failed:", job.traceback)
    """


@hookspec
def gridmap_job_died(job: Job) -> None:
    """A job was lost without a result for good; ``job.cause_of_death`` says why, and
    ``job.death_kind`` (a :class:`~gridmap_core.model.death.DeathKind`) what kind of
    death it was.

    Called in the submitting process, once per job, when it dies and is not submitted
    again (no resubmissions left, or a death that resubmitting cannot cure, such as
    running out of memory). Earlier deaths show as ``gridmap_job_resubmitted``.
    Return value ignored.

    Example::

        @hookimpl
        def gridmap_job_died(job):
            print(job.name, "died:", job.cause_of_death)
    """


@hookspec
def gridmap_job_resubmitted(job: Job) -> None:
    """A job died and was submitted again: ``job.cause_of_death`` says why it died
    (``job.death_kind``: what kind of death), ``job.num_resubmits`` counts the times.

    Called in the submitting process; return value ignored.

    Example::

        @hookimpl
        def gridmap_job_resubmitted(job):
            print(job.name, "resubmitted", job.num_resubmits, "times")
    """


@hookspec
def gridmap_map_finished(jobs: Sequence[Job], summary: dict[str, Any]) -> None:
    """A map (``grid_map``, ``process_jobs``) ended, successfully or not.

    ``summary`` has ``name``, ``backend``, ``total``, ``succeeded``, ``failed``,
    ``wall_time`` (seconds) and ``completion_mail`` (whether the user asked to be told
    of completion). ``jobs`` holds every job of a ``process_jobs`` map, and of a
    ``grid_map`` whose jobs a plugin observes; otherwise (``grid_map`` makes Job
    objects only where needed) just the jobs that failed or died. Called once per
    map in the submitting process; return value ignored.

    Example::

        @hookimpl
        def gridmap_map_finished(jobs, summary):
            print(summary["succeeded"], "of", summary["total"], "jobs succeeded")
    """


@hookspec
def gridmap_event(event: Event) -> None:
    """Any lifecycle event, as a typed object of :mod:`gridmap_core.model.events`:
    ``JobSubmitted``, ``JobWaiting``, ``JobStarted``, ``JobHeartbeat``, ``JobFinished``,
    ``JobFailed``, ``JobDied``, ``JobResubmitted`` (each with ``event.job``) or
    ``MapFinished`` (``event.jobs``, ``event.summary``).

    Called in the submitting process for every event, just before the event's own hook
    above (``event.hook`` names it); return value ignored. Implementing it counts as
    listening to every job, so ``grid_map`` makes a Job object for each of its inputs.

    Example::

        from gridmap_core.model.events import JobDied

        @hookimpl
        def gridmap_event(event):
            if isinstance(event, JobDied):
                print(event.job.name, "died:", event.job.death_kind.value)
    """
