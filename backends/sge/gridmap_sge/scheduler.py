"""The Grid Engine :class:`~gridmap_core.backend.scheduler.Scheduler`: DRMAA to submit and
cancel, DRMAA's reaped endings and one ``qstat -xml`` per poll to watch.

A launch of several tasks is one array job (``runBulkJobs``), so submitting 10,000
jobs costs one request to the qmaster, not 10,000. Jobs another process submitted
(``adopt``) are no DRMAA session's here: their ends come from their accounting records
and they are deleted with qdel (:mod:`gridmap_sge.accounting`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gridmap_core.backend.arrays import TrackedJob, TrackedJobs
from gridmap_core.backend.drmaa import (
    INCREMENT_PLACEHOLDER,
    DrmaaConnection,
    DrmaaError,
    submission,
)
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources

from .accounting import Record, delete, describe_record, qdel_path, read_accounting
from .endings import describe_ending
from .native import NativeOptions, job_name, native_specification, placement
from .qstat import (
    QstatError,
    Snapshot,
    accounting_failure,
    error_reason,
    failed_hosts,
    node_failure,
    queue_note,
    run_qstat,
)

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
# Deaths that may have been the node's: a job killed, or gone from Grid Engine's lists,
# while its node failed (a node that goes down takes its jobs with it).
_NODE_SUSPECTS = frozenset({DeathKind.KILLED, DeathKind.VANISHED})


@dataclass
class _Job(TrackedJob):
    # ``array`` is the Grid Engine job number (an array's, for its elements).
    queues: tuple[str, ...] = ()  # the queues it asked for, to explain a wait
    hosts: tuple[str, ...] = ()  # the hosts it may run on (its white_list), likewise
    excluded: tuple[str, ...] = ()  # the hosts it may not run on (their nodes failed)
    place: str = ""  # the queue instance it was last seen running in ("all.q@node1")
    adopted: bool = False  # submitted by another process (adopt): DRMAA does not report it


def _grid_engine_id(job_id: str) -> bool:
    """Whether ``job_id`` reads as a Grid Engine job id: ``123`` or ``123.4``."""
    number, sep, task = job_id.partition(".")
    return number.isdigit() and (not sep or task.isdigit())


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
        self._jobs: TrackedJobs[_Job] = TrackedJobs()  # launched, no ending seen yet
        self._errors: dict[str, str] = {}  # job number -> error reason
        self._last_queue_check = -float("inf")
        self._queues: dict[str, str] = {}  # queue instance states, as last read
        self._waiting = False
        self._closed = False
        self._exec_hosts: tuple[str, ...] = ()  # qconf -sel, once it was needed
        self._adopted: set[str] = set()  # adopted jobs, and their job numbers: for qdel

    # -- launching -------------------------------------------------------------------

    def launch(self, launch: Launch) -> list[str]:
        spec = launch.spec
        count = len(launch.tasks)
        # Every execution host is needed only to keep a resubmission off failed nodes
        # without excluding them all.
        hosts = self._execution_hosts() if launch.avoid else ()
        native = native_specification(spec, self.native, array=count > 1, avoid=launch.avoid,
                                      exec_hosts=hosts)
        where = placement(spec.resources, launch.avoid, hosts)
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
                self._jobs.add(job_id, _Job(number, spec.resources, log, queues=queues,
                                            hosts=where.hosts, excluded=where.excluded))
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

    def peers(self) -> tuple[str, ...]:
        """The cluster's execution hosts (``qconf -sel``), whose route here the monitor
        advertises; none when qconf cannot say."""
        try:
            done = subprocess.run(["qconf", "-sel"], capture_output=True, text=True,
                                  timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ()
        return tuple(done.stdout.split()) if done.returncode == 0 else ()

    def _execution_hosts(self) -> tuple[str, ...]:
        """The cluster's execution hosts, asked once (none while qconf cannot say)."""
        if not self._exec_hosts:
            self._exec_hosts = self.peers()
        return self._exec_hosts

    def down_hosts(self) -> Mapping[str, str]:
        """The hosts whose queue instances say their node failed (state ``u``: its
        execution daemon does not answer, or ``E``), in Grid Engine's words; one
        ``qstat -f``."""
        return failed_hosts(self._read_queues())

    def _read_queues(self) -> dict[str, str]:
        """Every queue instance's state (one ``qstat -f``), kept to explain waits."""
        queues = self._qstat(full=True).queues
        self._queues, self._last_queue_check = queues, time.monotonic()
        return queues

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        self.connection.reap()
        with self._lock:
            endings = self.connection.take(list(self._jobs))
            ended = {job_id: job for job_id in endings
                     if (job := self._jobs.pop(job_id)) is not None}
            asked = [i for i in ids if i in self._jobs]
        answer: dict[str, JobStatus] = {}
        places: dict[str, str] = {}  # where the jobs found dead were last seen running
        for job_id, job in ended.items():
            ending = endings[job_id]
            if not job.cancelled:
                answer[job_id] = describe_ending(
                    ending, job.resources, job.err_log,
                    accounting_failure(job_id) if ending.aborted else None)
                places[job_id] = job.place
        if not asked:
            self._blame_nodes(answer, places, None)
            return _placed(answer, places)
        # Queue states are read (qstat -f) only while jobs wait, once a minute: they
        # explain a wait, and listing every queue instance costs on a big cluster.
        now = time.monotonic()
        full = self._waiting and now - self._last_queue_check >= _QUEUE_CHECK_EVERY
        snapshot = self._qstat(full=full)
        if full:
            self._last_queue_check = now
            self._queues = snapshot.queues
        waiting = False
        unlisted: dict[str, bool] = {}  # adopted jobs qstat does not list: overdue?
        with self._lock:
            for job_id in asked:
                job = self._jobs.get(job_id)
                if job is None:
                    continue
                if job.adopted and snapshot.state(job_id) is None:
                    unlisted[job_id] = job.absent(now, _ABSENT_FOR)
                    continue
                status = self._status(job_id, job, snapshot, now)
                if status is not None:
                    answer[job_id] = status
                    places[job_id] = job.place
                    waiting = waiting or status.status is Status.QUEUED
        self._waiting = waiting
        if unlisted:
            answer.update(self._accounted(unlisted))
        self._blame_nodes(answer, places, snapshot.queues if full else None)
        return _placed(answer, places)

    def _accounted(self, unlisted: Mapping[str, bool]) -> dict[str, JobStatus]:
        """The ends of adopted jobs that qstat no longer lists, from their accounting
        records (one qacct per array); a job without one is unknown once ``unlisted``
        says it is overdue. Those reported are no longer watched, and cancelled ones
        are not reported."""
        records: dict[str, Record] = {}
        for number in sorted({job_id.partition(".")[0] for job_id in unlisted}, key=int):
            records.update(read_accounting(number))
        answer: dict[str, JobStatus] = {}
        with self._lock:
            for job_id, overdue in unlisted.items():
                if job_id in records:
                    status = describe_record(records[job_id])
                elif overdue:
                    status = JobStatus(Status.UNKNOWN, f"Grid Engine no longer lists job "
                                       f"{job_id}, and has no accounting record of its end",
                                       kind=DeathKind.VANISHED)
                else:
                    continue
                job = self._jobs.pop(job_id)
                if job is not None and not job.cancelled:
                    answer[job_id] = status
        return answer

    def _blame_nodes(self, answer: dict[str, JobStatus], places: Mapping[str, str],
                     queues: Mapping[str, str] | None) -> None:
        """Make the deaths in ``answer`` that a failed node explains node failures: a
        job killed or vanished while the queue instance it ran in (``places``) has a
        daemon that does not answer, or is in error state. Queue states are read (one
        qstat -f) only when there are such deaths; ``queues`` are states read already."""
        suspects = {job_id: place for job_id, place in places.items()
                    if place and answer[job_id].kind in _NODE_SUSPECTS}
        if not suspects:
            return
        if queues is None:
            try:
                queues = self._read_queues()
            except QstatError as error:
                logger.debug("could not read queue states to explain %d deaths: %s",
                             len(suspects), error)
                return
        for job_id, place in suspects.items():
            failure = node_failure(queues, place)
            if failure:
                status = answer[job_id]
                answer[job_id] = status._replace(cause=f"{status.cause}; its node failed: "
                                                 f"{failure}", kind=DeathKind.NODE_FAILED)

    def _status(self, job_id: str, job: _Job, snapshot: Snapshot,
                now: float) -> JobStatus | None:
        state = snapshot.state(job_id)
        if state is None:
            if job.absent(now, _ABSENT_FOR):
                return JobStatus(Status.UNKNOWN, f"Grid Engine no longer lists job {job_id}, "
                                 "and reported no ending for it", kind=DeathKind.VANISHED)
            return None
        job.listed()
        job.place = snapshot.place(job_id)
        if "E" in state:
            if job.array not in self._errors:
                self._errors[job.array] = error_reason(job.array)
            reason = self._errors[job.array] or "see qstat -j " + job.array
            return JobStatus(Status.ERROR, f"Grid Engine put job {job_id} into error state "
                             f"({state}): {reason}", resubmit=False,
                             kind=DeathKind.SCHEDULER_ERROR)
        if "q" in state:
            note = ""
            if "h" in state:
                note = f"job {job_id} is on hold ({state}); release it with qrls {job.array}"
            elif self._queues:
                # The states last read (once a minute): the note stays between reads.
                note = queue_note(self._queues, job.queues, job.hosts, job.excluded)
            return JobStatus(Status.QUEUED, note=note)
        if any(letter in state for letter in _SUSPENDED):
            return JobStatus(Status.SUSPENDED)
        return JobStatus(Status.RUNNING)

    # -- stopping --------------------------------------------------------------------

    def cancel(self, ids: Sequence[str]) -> None:
        with self._lock:
            # A whole array by its number when every element still out is being
            # cancelled (Ctrl-C); otherwise element by element, a request each.
            targets = self._jobs.cancel(ids)
            # Adopted jobs are not this DRMAA session's: qdel deletes them, all at once.
            adopted = [target for target in targets if target in self._adopted]
            targets = [target for target in targets if target not in self._adopted]
        try:
            delete(adopted)
        except BaseException:
            with self._lock:  # the monitor tries again later: ask for these then
                self._jobs.uncancel(adopted + targets)
            raise
        for done, target in enumerate(targets):
            try:
                self.connection.terminate(target)
            except BaseException:
                with self._lock:  # the monitor tries again later: ask for these then
                    self._jobs.uncancel(targets[done:])
                raise

    def adopt(self, ids: Sequence[str]) -> None:
        """Watch jobs another process submitted (``123.4``, ``123``), as if launched
        here: with qstat while it lists them, then with their accounting records
        (qacct); deleted with qdel. Their causes of death lack the limits they asked for
        and the end of their logs."""
        with self._lock:
            for job_id in dict.fromkeys(ids):
                if job_id in self._jobs or not _grid_engine_id(job_id):
                    continue
                number = job_id.partition(".")[0]
                self._jobs.add(job_id, _Job(number, Resources(), "", adopted=True))
                self._adopted.update((job_id, number))

    def cancel_command(self) -> list[str]:
        """qdel, by its path here: the runners' way to delete their jobs."""
        return [qdel_path()]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.connection.take(list(self._jobs))
            self._jobs.clear()
        self.connection.release()


def _placed(answer: dict[str, JobStatus], places: Mapping[str, str]) -> dict[str, JobStatus]:
    """``answer`` with the host of each job's queue instance (``places``), where known."""
    return {job_id: status._replace(host=places.get(job_id, "").partition("@")[2])
            if places.get(job_id) else status for job_id, status in answer.items()}
