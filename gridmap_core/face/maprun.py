"""MapRun: one map, from submit to finish.

``grid_map``, ``process_jobs``, ``GridMapExecutor.map`` and ``run_jobs`` all run their
jobs through a MapRun: it submits them (grouped into batches by function and
requests), waits with the progress display, cancels the rest when the failure policy
says so, tells the plugins how the map ended, and hands back the results in input
order.

A map of calls (``grid_map``, ``map``) makes Job objects only where someone needs
them: for every input when a plugin or notifier listens to every job's events, else
only for the jobs that fail, die or are resubmitted. A map of prepared jobs
(``process_jobs``) fills in each Job's outcome fields.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from gridmap_core.backend import Batch, JobSpec
from gridmap_core.face.runtime import Runtime
from gridmap_core.map.runs import Run, wait_all
from gridmap_core.model.events import JobSubmitted, MapFinished
from gridmap_core.model.job import Job, JobException, JobState
from gridmap_core.model.serialization import check_picklable

__all__ = ["FAILURE_POLICIES", "MapRun", "check_on_failure"]

FAILURE_POLICIES = ("raise", "return", "cancel")


def check_on_failure(value: object) -> str:
    """Validate a failure policy: raise, return or cancel."""
    if value not in FAILURE_POLICIES:
        raise ValueError(
            f"on_failure={value!r}: use 'raise' (JobException after all jobs ended), "
            "'return' (exceptions in place of results) or 'cancel' (cancel the rest at "
            "the first failure, then raise)"
        )
    return str(value)


class MapRun:
    """One map's jobs, submitted; :meth:`run` waits, finishes and returns the results.

    Make one with :meth:`of_calls` (a function over inputs) or :meth:`of_jobs`
    (prepared jobs); both submit at once.
    """

    def __init__(self, runtime: Runtime, runs: list[Run], size: int, name: str, *,
                 jobs: Sequence[Job] | None = None,
                 make_job: Callable[[int], Job] | None = None,
                 on_failure: str = "raise", completion_mail: bool = False) -> None:
        self.runtime = runtime
        self.runs = runs
        self.size = size
        self.name = name
        self.jobs = list(jobs) if jobs is not None else None
        self._make_job = make_job
        self.on_failure = check_on_failure(on_failure)
        self.completion_mail = completion_mail
        self.started = time.monotonic()
        self.cancelled = 0

    # -- submit -------------------------------------------------------------------------

    @classmethod
    def of_calls(cls, runtime: Runtime, fn: Callable[..., Any], args: Sequence[Any],
                 name: str | None = None, **policy: Any) -> MapRun:
        """Submit ``fn(*a)`` for each ``a`` in ``args`` as one batch."""
        check_picklable(fn, "the function")
        check_picklable(args, "args_list")
        base = name or runtime.job_options.name
        template = Job(fn, [], **runtime.job_options.replace(name=base).as_dict())
        spec = runtime.spec_for(template)

        def make_job(index: int) -> Job:
            return runtime.new_job(fn, args[index], f"{base}{index}")

        if runtime.observes_every_job():
            # Plugins watch each job: real Job objects, every event told.
            jobs = [make_job(index) for index in range(len(args))]
            return cls.of_jobs(runtime, jobs, base, specs=[spec] * len(jobs), **policy)
        runtime.show_status(base)
        if runtime.observed():  # only failures are heard of: Job objects for those alone
            run = Run(len(args), events=runtime, make_job=make_job)
        else:
            run = Run(len(args))
        runtime.track(run)
        if args:
            runtime.open().submit(Batch(spec, args, None, run))
        return cls(runtime, [run], len(args), base, make_job=make_job, **policy)

    @classmethod
    def of_jobs(cls, runtime: Runtime, jobs: Sequence[Job], name: str | None = None, *,
                specs: Sequence[JobSpec] | None = None, **policy: Any) -> MapRun:
        """Submit prepared jobs; jobs that share a function and requests go to the
        backend as one batch."""
        check_picklable([(job.function, job.args, job.kwlist) for job in jobs], "jobs")
        if name is None:
            name = jobs[0].name if jobs else ""
        groups: dict[int, list[Job]] = {}
        by_key: dict[int, JobSpec] = {}
        for index, job in enumerate(jobs):
            spec = specs[index] if specs is not None else runtime.spec_for(job)
            by_key[spec.key] = spec
            groups.setdefault(spec.key, []).append(job)
        events = runtime if runtime.observed() else None
        runtime.show_status(name)
        session = runtime.open()
        condition = threading.Condition()
        runs = []
        for key, members in groups.items():
            for job in members:
                job.reset()
                job.state = JobState.SUBMITTED
                job.backend = runtime.backend_name
                runtime.emit(JobSubmitted(job))
            run = Run(len(members), members, events, condition)
            runtime.track(run)
            kwargs = [job.kwlist for job in members]
            args = [tuple(job.args) for job in members]
            session.submit(Batch(by_key[key], args, kwargs if any(kwargs) else None, run))
            runs.append(run)
        return cls(runtime, runs, len(jobs), name, jobs=jobs, **policy)

    # -- wait, cancel, finish -----------------------------------------------------------

    def wait(self) -> None:
        """Wait until every job ended, showing progress; with ``on_failure="cancel"``,
        cancel the rest at the first failure."""
        with self.runtime.progress(self.runs, self.name):
            stopped = wait_all(self.runs, stop_on_failure=self.on_failure == "cancel")
        if stopped:
            self.cancel()

    def cancel(self) -> None:
        """Cancel every job of the executor: queued ones never start, running ones are
        stopped. The executor cannot be used afterwards."""
        self.runtime.shutdown(wait=False, cancel_futures=True)
        if self.jobs is None:
            self.cancelled = sum(run.remaining for run in self.runs)
            return
        for job in self.jobs:
            if job.state in (JobState.SUBMITTED, JobState.RUNNING):
                job.state = JobState.CANCELLED
                self.cancelled += 1

    def failed_jobs(self) -> list[Job]:
        """The jobs that failed or died, in input order (Job objects made for them on
        the fast path)."""
        if self.jobs is not None:
            return [job for job in self.jobs if job.failed]
        return [self.job_at(index) for index in sorted(self.runs[0].failures)]

    def job_at(self, index: int) -> Job:
        """The Job object of input ``index``: made on demand, with its failure, where the
        map runs without Job objects."""
        if self.jobs is not None:
            return self.jobs[index]
        run = self.runs[0]
        job = run.made.get(index)
        if job is None:
            assert self._make_job is not None
            job = run.made[index] = self._make_job(index)
            if index in run.failures:
                job.record_failure(run.failures[index])
        return job

    def finish(self) -> None:
        """Tell plugins how the map ended; raise JobException if any job failed, unless
        ``on_failure="return"``. Per-job events were sent as each job ended."""
        failed = self.failed_jobs()
        self.runtime.emit(MapFinished(
            jobs=self.jobs if self.jobs is not None else failed,
            summary={
                "name": self.name,
                "backend": self.runtime.backend_name,
                "total": self.size,
                "succeeded": self.size - len(failed) - self.cancelled,
                "failed": len(failed),
                "cancelled": self.cancelled,
                "wall_time": time.monotonic() - self.started,
                "completion_mail": self.completion_mail,
            },
        ))
        if failed and self.on_failure != "return":
            raise JobException(failed, total=self.size, cancelled=self.cancelled,
                               log_dir=self.runtime.kept_log_dir())

    # -- results ------------------------------------------------------------------------

    def results(self) -> list[Any]:
        """Each job's return value in input order; in place of a job that raised, its
        exception; of one that died, a JobException saying why."""
        if self.jobs is not None:
            return [JobException([job]) if job.state is JobState.DEAD else job.ret
                    for job in self.jobs]
        run = self.runs[0]
        results = list(run.values)
        for index in run.failures:
            if run.failures[index].cause_of_death:
                results[index] = JobException([self.job_at(index)])
        return results

    def result_at(self, index: int, timeout: float | None = None) -> Any:
        """Input ``index``'s result once it ended (TimeoutError after ``timeout``);
        a failed job raises JobException."""
        run = self.runs[0]
        if not run.wait_for(index, timeout):
            raise TimeoutError(f"job {index} did not finish within {timeout} s")
        if index in run.failures:
            raise JobException([self.job_at(index)], log_dir=self.runtime.kept_log_dir())
        return run.values[index]

    def run(self) -> list[Any]:
        """Wait, finish (raising per the failure policy) and return the results."""
        self.wait()
        self.finish()
        return self.results()
