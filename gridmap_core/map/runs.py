"""Sinks that gather what backends report: one for a whole map, one per future."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any, Protocol

from gridmap_core.backend import DeathKind, Failure
from gridmap_core.model.events import (
    Event,
    JobHeartbeat,
    JobResubmitted,
    JobStarted,
    JobWaiting,
    ended,
)
from gridmap_core.model.job import JOB_NOT_FINISHED, Job, JobException, JobState

__all__ = ["FutureSink", "JobEvents", "Run", "wait_all"]


class JobEvents(Protocol):
    """Receives per-job lifecycle events as they happen (the executor, which tells
    them to plugins and notifiers)."""

    def emit(self, event: Event) -> None: ...


# A Ctrl-C may be delivered to any thread of the process. CPython runs the handler,
# which raises KeyboardInterrupt, only in the main thread, and a main thread blocked in
# a wait without a timeout never looks: the map would hang, deaf to Ctrl-C. Waiting in
# slices bounds how long a Ctrl-C can go unnoticed.
WAKE_EVERY = 0.5


def wait_until(condition: threading.Condition, predicate: Callable[[], bool],
               timeout: float | None = None) -> bool:
    """``condition.wait_for(predicate, timeout)`` that a Ctrl-C interrupts promptly,
    whichever thread received it. The caller holds ``condition``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not predicate():
        left = WAKE_EVERY if deadline is None else min(WAKE_EVERY, deadline - time.monotonic())
        if left <= 0:
            return False
        condition.wait(left)
    return True


def attach_traceback(error: BaseException, failure: Failure, name: str) -> BaseException:
    """Add the remote traceback to an exception raised in another process, as a note."""
    if failure.traceback and hasattr(error, "add_note"):
        where = f" on {failure.host_name}" if failure.host_name else ""
        error.add_note(f"\nRemote traceback of job {name}{where}:\n{failure.traceback}")
    return error


class Run:
    """Results of one batch, in input order, for ``grid_map``, ``process_jobs`` and ``map``.

    Every claimed job ends in ``values`` or ``failures``; waiters wake as results
    arrive, and on :meth:`cancel`. With ``jobs``, each Job's outcome fields are filled
    in; with ``events`` too, observers hear of each job as it starts and ends.
    """

    def __init__(
        self,
        size: int,
        jobs: Sequence[Job] | None = None,
        events: JobEvents | None = None,
        condition: threading.Condition | None = None,
        make_job: Callable[[int], Job] | None = None,
    ) -> None:
        self.values: list[Any] = [JOB_NOT_FINISHED] * size
        self.done = bytearray(size)
        self.failures: dict[int, Failure] = {}
        self.jobs = jobs
        # Without ``jobs``, ``make_job`` makes the Job objects of jobs that fail, die or
        # resubmit, when they do: what observers of failures alone need.
        self.make_job = make_job if jobs is None else None
        self.made: dict[int, Job] = {}
        self.events = events if jobs is not None or self.make_job is not None else None
        self.remaining = size
        # Jobs running now (started, not yet ended): what a progress display shows.
        self.live = bytearray(size)
        self.running = 0
        self.cancelled = False
        # Runs of one map share a condition, so one wait can watch them all.
        self.condition = condition or threading.Condition()

    def claim(self, start: int, stop: int) -> Sequence[int]:
        if self.cancelled:
            return ()
        return range(start, stop)

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        if not self.live[index]:  # no lock: a backend reports a job's start and end
            self.live[index] = 1  # from one thread, and the counts are only shown
            self.running += 1
        if self.jobs is None:
            return
        job = self.jobs[index]
        job.host_name = host_name or job.host_name
        job.id = job_id or job.id
        job.state = JobState.RUNNING
        if self.events is not None:
            self.events.emit(JobStarted(job))

    def _failing_job(self, index: int) -> Job | None:
        """The Job object of a job that fails, dies or resubmits, made if need be."""
        if self.jobs is not None:
            return self.jobs[index]
        if self.make_job is None:
            return None
        job = self.made.get(index)
        if job is None:
            job = self.made[index] = self.make_job(index)
        return job

    def _unstarted(self, indices: Sequence[int]) -> set[int]:
        """Jobs about to end that no one said had started (a backend that does not
        report starts): observers hear of their start first, so the order holds."""
        if self.events is None or self.jobs is None:
            return set()
        return {index for index in indices if self.jobs[index].state is JobState.SUBMITTED}

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        unstarted = self._unstarted(indices)
        with self.condition:
            if isinstance(indices, range) and indices.step == 1:
                self.values[indices.start : indices.stop] = values
                self.done[indices.start : indices.stop] = b"\x01" * len(indices)
                self.running -= self.live.count(1, indices.start, indices.stop)
                self.live[indices.start : indices.stop] = bytes(len(indices))
            else:
                for index, value in zip(indices, values, strict=True):
                    self.values[index] = value
                    self.done[index] = 1
                    self.running -= self.live[index]
                    self.live[index] = 0
            self.remaining -= len(indices)
            if self.jobs is not None:
                for index, value in zip(indices, values, strict=True):
                    self.jobs[index].record_success(value, host_name)
            self.condition.notify_all()
        if self.events is not None and self.jobs is not None:
            for index in indices:
                if index in unstarted:
                    self.events.emit(JobStarted(self.jobs[index]))
                self.events.emit(ended(self.jobs[index]))

    def failed(self, index: int, failure: Failure) -> None:
        unstarted = self._unstarted([index]) if failure.cause_of_death is None else set()
        job = self._failing_job(index)
        with self.condition:
            self.failures[index] = failure
            self.values[index] = failure.exception
            self.done[index] = 1
            self.running -= self.live[index]
            self.live[index] = 0
            self.remaining -= 1
            if job is not None:
                job.record_failure(failure)
            self.condition.notify_all()
        if self.events is not None and job is not None:
            if unstarted:
                self.events.emit(JobStarted(job))
            self.events.emit(ended(job))

    def heartbeat(self, index: int, heartbeat: Mapping[str, Any]) -> None:
        if self.jobs is None:  # grid_map without observers: failures carry the history
            return
        job = self.jobs[index]
        job.record_heartbeat(heartbeat)
        if self.events is not None:
            self.events.emit(JobHeartbeat(job, dict(heartbeat)))

    def resubmitted(self, index: int, cause_of_death: str,
                    kind: DeathKind | None = None) -> None:
        self.running -= self.live[index]
        self.live[index] = 0
        job = self._failing_job(index)
        if job is None:
            return
        job.num_resubmits += 1
        job.cause_of_death = cause_of_death
        job.death_kind = kind or DeathKind.OTHER
        job.state = JobState.SUBMITTED
        if self.events is not None:
            self.events.emit(JobResubmitted(job))

    def waiting(self, index: int, note: str) -> None:
        if self.jobs is not None and self.events is not None:  # only observers need it
            self.events.emit(JobWaiting(self.jobs[index], note))

    def job_name(self, index: int) -> str | None:
        """The job's own name, where this run has its Job object."""
        if self.jobs is not None:
            return self.jobs[index].name
        made = self.made.get(index)
        return made.name if made is not None else None

    def cancel(self) -> None:
        """Stop waiting: jobs not yet started will not run."""
        with self.condition:
            self.cancelled = True
            self.condition.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job has ended; False on timeout; CancelledError if cancelled."""
        with self.condition:
            finished = wait_until(
                self.condition, lambda: self.remaining <= 0 or self.cancelled, timeout
            )
            if self.cancelled and self.remaining > 0:
                raise CancelledError("the map was cancelled")
            return finished

    def wait_for(self, index: int, timeout: float | None = None) -> bool:
        """Block until job ``index`` has ended."""
        with self.condition:
            finished = wait_until(
                self.condition, lambda: bool(self.done[index]) or self.cancelled, timeout
            )
            if not self.done[index] and self.cancelled:
                raise CancelledError("the map was cancelled")
            return finished


def wait_all(runs: Sequence[Run], *, stop_on_failure: bool = False) -> bool:
    """Wait until every run has ended or, with ``stop_on_failure``, any job failed.

    Returns True when it stopped early because of a failure. The runs must share one
    condition (see :class:`Run`).
    """
    if not runs:
        return False
    condition = runs[0].condition

    def failed() -> bool:
        return stop_on_failure and any(run.failures for run in runs)

    def settled() -> bool:
        return failed() or all(run.remaining <= 0 or run.cancelled for run in runs)

    with condition:
        wait_until(condition, settled)
        if failed():
            return any(run.remaining > 0 for run in runs)
        if any(run.cancelled and run.remaining > 0 for run in runs):
            raise CancelledError("the map was cancelled")
        return False


class FutureSink:
    """Reports on the single job behind a :class:`concurrent.futures.Future`."""

    def __init__(self, future: Future[Any], job: Job, events: JobEvents | None = None) -> None:
        self.future = future
        self.job = job
        self.events = events

    def claim(self, start: int, stop: int) -> Sequence[int]:
        if not self.future.set_running_or_notify_cancel():
            self.job.state = JobState.CANCELLED
            return ()
        return range(start, stop)

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        self.job.host_name = host_name or self.job.host_name
        self.job.id = job_id or self.job.id
        self.job.state = JobState.RUNNING
        if self.events is not None:
            self.events.emit(JobStarted(self.job))

    def _start_if_unreported(self) -> None:
        if self.events is not None and self.job.state is JobState.SUBMITTED:
            self.events.emit(JobStarted(self.job))

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        self._start_if_unreported()
        self.job.record_success(values[0], host_name)
        if self.events is not None:
            self.events.emit(ended(self.job))
        self.future.set_result(values[0])

    def heartbeat(self, index: int, heartbeat: Mapping[str, Any]) -> None:
        self.job.record_heartbeat(heartbeat)
        if self.events is not None:
            self.events.emit(JobHeartbeat(self.job, dict(heartbeat)))

    def resubmitted(self, index: int, cause_of_death: str,
                    kind: DeathKind | None = None) -> None:
        self.job.num_resubmits += 1
        self.job.cause_of_death = cause_of_death
        self.job.death_kind = kind or DeathKind.OTHER
        if self.events is not None:
            self.events.emit(JobResubmitted(self.job))

    def job_name(self, index: int) -> str | None:
        return self.job.name

    def waiting(self, index: int, note: str) -> None:
        if self.events is not None:
            self.events.emit(JobWaiting(self.job, note))

    def failed(self, index: int, failure: Failure) -> None:
        job = self.job
        if failure.cause_of_death is None:
            self._start_if_unreported()
        job.record_failure(failure)
        if self.events is not None:
            self.events.emit(ended(job))
        if failure.exception is not None and not failure.cause_of_death:
            self.future.set_exception(attach_traceback(failure.exception, failure, job.name))
        else:
            self.future.set_exception(JobException([job]))
