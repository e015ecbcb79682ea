"""The Grid Engine :class:`~gridmap_core.backend.scheduler.Scheduler`: DRMAA to submit and
cancel, DRMAA's reaped endings and one ``qstat -xml`` per poll to watch.

A launch of several tasks is one array job (``runBulkJobs``), so submitting 10,000
jobs costs one request to the qmaster, not 10,000.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gridmap_core.backend.drmaa import (
    INCREMENT_PLACEHOLDER,
    DrmaaConnection,
    DrmaaError,
    submission,
)
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.resources import Resources

from .endings import describe_ending
from .native import NativeOptions, job_name, native_specification
from .qstat import Snapshot, accounting_failure, error_reason, queue_note, run_qstat

__all__ = ["SgeScheduler"]
logger = logging.getLogger(__name__)

# Variables Grid Engine sets for each job. When the submitting process itself runs
# in a Grid Engine job, copying its values into the jobs would mislead them.
_JOB_VARIABLES = frozenset({
    "JOB_ID", "JOB_NAME", "JOB_SCRIPT", "NSLOTS", "NHOSTS", "NQUEUES", "PE",
    "PE_HOSTFILE", "QUEUE", "RESTARTED", "TMPDIR", "TMP", "ENVIRONMENT", "HOSTNAME",
    "REQUEST", "ARC", "SGE_ARCH",
})
_JOB_PREFIXES = ("SGE_TASK_", "SGE_O_", "SGE_STDOUT_PATH", "SGE_STDERR_PATH",
                 "SGE_STDIN_PATH", "SGE_JOB_", "SGE_CWD_PATH", "SGE_BINARY_PATH")
# A job qstat stopped listing, with no ending reaped from DRMAA, is unknown to Grid
# Engine only after this long: DRMAA hears of endings a moment after qstat does.
_ABSENT_FOR = 30.0
_QUEUE_CHECK_EVERY = 60.0  # seconds between checks of why jobs are still waiting
# Job state letters of a job stopped to go on later: suspended by qmod -sj (s), with
# its queue (S, a subordinate queue's), or by a queue's suspend threshold (T).
_SUSPENDED = "sST"


@dataclass
class _Job:
    resources: Resources
    number: str  # the Grid Engine job number (an array's, for its elements)
    err_log: str
    queues: tuple[str, ...]
    absent_since: float | None = None
    cancelled: bool = False


def job_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` without the variables Grid Engine sets per job."""
    return {
        name: value for name, value in environment.items()
        if name not in _JOB_VARIABLES and not name.startswith(_JOB_PREFIXES)
    }


class SgeScheduler:
    """Submits runners to Grid Engine and reports on them (thread-safe)."""

    def __init__(self, connection: DrmaaConnection, native: NativeOptions, *,
                 qstat: Callable[..., Snapshot] = run_qstat) -> None:
        self.connection = connection
        self.native = native
        self._qstat = qstat
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # launched, no ending seen yet
        self._arrays: dict[str, set[str]] = {}  # job number -> its ids in _jobs
        self._errors: dict[str, str] = {}  # job number -> error reason
        self._last_queue_check = -float("inf")
        self._waiting = False
        self._closed = False

    # -- launching -------------------------------------------------------------------

    def launch(self, launch: Launch) -> list[str]:
        spec = launch.spec
        count = len(launch.tasks)
        native = native_specification(spec, self.native, array=count > 1)
        name = job_name(launch.name)
        command, out, err = submission(launch, "SGE_TASK_ID")
        environment = job_environment(launch.environment)
        command += self._environment_file(launch, environment)
        try:
            ids = self.connection.submit(
                command=command, environment=environment,
                working_dir=os.path.abspath(spec.working_dir), output=out, error=err,
                native=native, name=name, count=count)
        except DrmaaError as error:
            raise DrmaaError(f"Grid Engine refused {count} job(s) named {name!r}: {error} "
                             f"(requested with: {native or 'no options'})") from None
        queues = tuple(spec.resources.queue.split(",")) if spec.resources.queue else ()
        with self._lock:
            for element, job_id in enumerate(ids, start=1):
                number = job_id.partition(".")[0]
                log = err.replace(INCREMENT_PLACEHOLDER, str(element))
                self._jobs[job_id] = _Job(spec.resources, number, log, queues)
                self._arrays.setdefault(number, set()).add(job_id)
        logger.debug("submitted %d job(s) as %s with %r", count, ids[0].partition(".")[0],
                     native)
        return ids

    @staticmethod
    def _environment_file(launch: Launch, environment: dict[str, str]) -> list[str]:
        """Grid Engine's DRMAA cuts a variable's value at its second '=' ("a=b=c"
        arrives as "a"): such variables go to the runner in a file of their own."""
        cut = {name: value for name, value in environment.items() if "=" in value}
        if not cut:
            return []
        path = os.path.join(launch.log_dir, f"{launch.name}.{launch.tasks[0]}"
                            f".{launch.attempt}.environment.json")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(cut, handle)
        return ["--environment", path]

    # -- watching --------------------------------------------------------------------

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        self.connection.reap()
        with self._lock:
            endings = self.connection.take(list(self._jobs))
            ended = {job_id: self._forget(job_id) for job_id in endings}
            asked = [i for i in ids if i in self._jobs]
        answer = {
            job_id: describe_ending(ending, ended[job_id].resources, ended[job_id].err_log,
                                    accounting_failure(job_id) if ending.aborted else None)
            for job_id, ending in endings.items()
            if not ended[job_id].cancelled
        }
        if not asked:
            return answer
        # Queue states are read (qstat -f) only while jobs wait, once a minute: they
        # explain a wait, and listing every queue instance costs on a big cluster.
        now = time.monotonic()
        full = self._waiting and now - self._last_queue_check >= _QUEUE_CHECK_EVERY
        snapshot = self._qstat(full=full)
        if full:
            self._last_queue_check = now
        waiting = False
        with self._lock:
            for job_id in asked:
                job = self._jobs.get(job_id)
                if job is None:
                    continue
                status = self._status(job_id, job, snapshot, now)
                if status is not None:
                    answer[job_id] = status
                    waiting = waiting or status.status is Status.QUEUED
        self._waiting = waiting
        return answer

    def _status(self, job_id: str, job: _Job, snapshot: Snapshot,
                now: float) -> JobStatus | None:
        state = snapshot.state(job_id)
        if state is None:
            if job.absent_since is None:
                job.absent_since = now
            elif now - job.absent_since >= _ABSENT_FOR:
                return JobStatus(Status.UNKNOWN, f"Grid Engine no longer lists job {job_id}, "
                                 "and reported no ending for it")
            return None
        job.absent_since = None
        if "E" in state:
            if job.number not in self._errors:
                self._errors[job.number] = error_reason(job.number)
            reason = self._errors[job.number] or "see qstat -j " + job.number
            return JobStatus(Status.ERROR, f"Grid Engine put job {job_id} into error state "
                             f"({state}): {reason}", resubmit=False)
        if "q" in state:
            note = ""
            if "h" in state:
                note = f"job {job_id} is on hold ({state}); release it with qrls {job.number}"
            elif snapshot.queues:
                note = queue_note(snapshot.queues, job.queues)
            return JobStatus(Status.QUEUED, note=note)
        if any(letter in state for letter in _SUSPENDED):
            return JobStatus(Status.SUSPENDED)
        return JobStatus(Status.RUNNING)

    # -- stopping --------------------------------------------------------------------

    def cancel(self, ids: Sequence[str]) -> None:
        with self._lock:
            wanted = [i for i in ids if i in self._jobs and not self._jobs[i].cancelled]
            by_number: dict[str, list[str]] = {}
            for job_id in wanted:
                self._jobs[job_id].cancelled = True
                by_number.setdefault(self._jobs[job_id].number, []).append(job_id)
            targets: list[str] = []
            for number, members in by_number.items():
                # A whole array goes in one request when every element still out is
                # being cancelled (Ctrl-C); otherwise element by element.
                everyone = self._arrays.get(number, set())
                if len(members) > 1 and all(self._jobs[i].cancelled for i in everyone):
                    targets.append(number)
                else:
                    targets.extend(members)
        for target in targets:
            self.connection.terminate(target)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.connection.take(list(self._jobs))
            self._jobs.clear()
            self._arrays.clear()
        self.connection.release()

    def _forget(self, job_id: str) -> _Job:
        job = self._jobs.pop(job_id)
        members = self._arrays.get(job.number)
        if members is not None:
            members.discard(job_id)
            if not members:
                del self._arrays[job.number]
        return job
