"""The jobs a scheduler launched, tracked from submission until their end is seen: for
schedulers that submit a launch of many tasks as one array (Grid Engine, Slurm).

Two things every such scheduler does alike live here: cancelling a whole array in one
request when every element still out is cancelled (Ctrl-C), and telling a job the
scheduler has merely not listed yet, or just stopped listing, from one it forgot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gridmap_core.model.resources import Resources

__all__ = ["TrackedJob", "TrackedJobs"]


@dataclass
class TrackedJob:
    """One launched job: an element of an array, or a job of its own."""

    array: str  # the id that names its whole array (a job of its own: its own id)
    resources: Resources  # what it asked for, to explain its end (out of memory, …)
    err_log: str  # its stderr, whose last lines explain an end without a result
    absent_since: float | None = None  # when the scheduler stopped listing it
    cancelled: bool = False  # cancel() was asked for it: its end is not news

    def listed(self) -> None:
        """The scheduler lists the job (again): any absence is over."""
        self.absent_since = None

    def absent(self, now: float, limit: float) -> bool:
        """Note that the scheduler does not list the job at ``now`` (a monotonic time);
        whether it has not, without a break, for ``limit`` seconds or more.

        The first absence is only noted, whatever ``limit``: the scheduler stops listing
        a job a moment before the job's end reaches wherever it is read from (DRMAA,
        accounting), so one poll's absence never counts.
        """
        if self.absent_since is None:
            self.absent_since = now
            return False
        return now - self.absent_since >= limit


Job = TypeVar("Job", bound=TrackedJob)


class TrackedJobs(Generic[Job]):
    """Jobs by id, launched and not yet seen ended, and the members of each array.

    Not locked: a scheduler is called from two threads, and holds its own lock around
    every use (it guards more than this table).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._arrays: dict[str, set[str]] = {}  # array id -> the ids of its members here

    def add(self, job_id: str, job: Job) -> None:
        """Track a new job."""
        self._jobs[job_id] = job
        self._arrays.setdefault(job.array, set()).add(job_id)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._jobs))

    def __len__(self) -> int:
        return len(self._jobs)

    def pop(self, job_id: str) -> Job | None:
        """Stop tracking a job (it ended, or its launch failed); None if it was not."""
        job = self._jobs.pop(job_id, None)
        if job is not None:
            members = self._arrays[job.array]
            members.discard(job_id)
            if not members:
                del self._arrays[job.array]
        return job

    def clear(self) -> None:
        self._jobs.clear()
        self._arrays.clear()

    def cancel(self, ids: Sequence[str]) -> list[str]:
        """Mark the jobs ``ids`` cancelled; return what to ask the scheduler to stop.

        That is an array's id where more than one of its elements is among ``ids`` and
        every element still tracked is now cancelled (the whole array in one request),
        else the jobs' own ids, in the order asked. Ids not tracked, or already
        cancelled, are left out: cancelling twice stops once.
        """
        by_array: dict[str, list[str]] = {}
        for job_id in ids:
            job = self._jobs.get(job_id)
            if job is None or job.cancelled:
                continue
            job.cancelled = True
            by_array.setdefault(job.array, []).append(job_id)
        targets: list[str] = []
        for array, members in by_array.items():
            everyone = self._arrays[array]
            if len(members) > 1 and all(self._jobs[i].cancelled for i in everyone):
                targets.append(array)
            else:
                targets.extend(members)
        return targets

    def uncancel(self, targets: Sequence[str]) -> None:
        """The scheduler refused to stop ``targets`` (as :meth:`cancel` returned them:
        jobs, or whole arrays): their jobs are no longer marked cancelled, so that a
        later cancel asks for them again instead of counting them stopped."""
        for target in targets:
            members = self._arrays.get(target, ()) if target not in self._jobs else (target,)
            for job_id in members:
                job = self._jobs.get(job_id)
                if job is not None:
                    job.cancelled = False
