"""Watching the jobs a Slurm scheduler launched: one ``squeue`` per poll for every job of
the session, ``sacct`` (or the job completion log) asked only about jobs squeue no longer
lists, and cancels grouped by array.

:class:`SlurmJobs` is what the sbatch backend (:mod:`gridmap_slurm.scheduler`) and the
slurm-drmaa backend share: they differ in how they submit and cancel, not in how they
watch. Job ids are ``ARRAY_INDEX`` (``123_4``) throughout, as Slurm prints them, or a
plain job's number.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from gridmap_core.backend.arrays import TrackedJob, TrackedJobs
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources

from .cluster import Cluster
from .commands import Commands, SlurmError, is_transient, one_line
from .nodes import SINFO_FAILED, failed_nodes, wait_note
from .states import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    Record,
    describe,
    parse_jobcomp,
    parse_sacct,
    parse_squeue,
)

__all__ = ["SlurmJobs"]
logger = logging.getLogger(__name__)

# A job squeue stopped listing is looked up in accounting after this long (slurmctld
# forgets ended jobs after MinJobAge), and is unknown to Slurm after _ABSENT_FOR.
_ASK_ACCOUNTING_AFTER = 2.0
_ABSENT_FOR = 30.0
_JOBCOMP_TAIL = 4 * 2**20  # bytes of the completion log read (it grows without limit)
# While jobs wait, the failed nodes are read again after this long, to explain a wait
# for nodes that no longer work.
_NODES_CHECK_EVERY = 30.0
# A pattern of Slurm's in a log path: "%" and the letter of what it stands for.
_PATTERN = re.compile(r"%(.?)")

#: Submits one part of a launch as one array (or job); returns the array's id and its
#: elements' ids, having recorded them with :meth:`SlurmJobs.record`.
SubmitPart = Callable[[Launch], tuple[str, list[str]]]
#: Cancels jobs and whole arrays (given by their array id).
Terminate = Callable[[Sequence[str]], None]


@dataclasses.dataclass
class _Job(TrackedJob):
    # ``array`` is the array's (or plain job's) number.
    nodes: tuple[str, ...] | None = None  # the nodes it may run on; None: not known
    place: str = ""  # the node it was last seen running on
    adopted: bool = False  # submitted by another process (adopt)


def _slurm_id(job_id: str) -> bool:
    """Whether ``job_id`` reads as a Slurm job id: ``123`` or ``123_4``."""
    array, sep, index = job_id.partition("_")
    return array.isdigit() and (not sep or index.isdigit())


def _expand_path(pattern: str, array: str, index: str) -> str:
    """A stderr path as squeue prints it, with the patterns of an array's paths
    (``%A``, ``%a``, ``%%``) filled in; "" when it holds others, or none was set."""
    if not pattern or pattern in ("(null)", "N/A"):
        return ""
    values = {"A": array, "a": index if index.isdigit() else "", "%": "%"}
    unknown = False

    def fill(match: re.Match[str]) -> str:
        nonlocal unknown
        value = values.get(match.group(1), "")
        unknown = unknown or not value
        return value

    path = _PATTERN.sub(fill, pattern)
    return "" if unknown else path


class SlurmJobs:
    """The jobs of one scheduler, from submission until Slurm reports their end
    (thread-safe). ``commands`` runs squeue, sacct and scancel; ``cluster`` says where
    ended jobs are recorded and how long an array may be."""

    def __init__(self, cluster: Cluster, commands: Commands) -> None:
        self.cluster = cluster
        self.commands = commands
        self._lock = threading.Lock()
        self._jobs: TrackedJobs[_Job] = TrackedJobs()  # not yet seen ended
        self._poll_again_at = 0.0  # after a transient squeue failure
        self._poll_pause = 0.0
        self._down: dict[str, str] = {}  # the failed nodes, as last read while jobs waited
        self._down_read_at = -float("inf")

    # -- launching -------------------------------------------------------------------

    def launch(self, launch: Launch, submit: SubmitPart, terminate: Terminate) -> list[str]:
        """Submit ``launch`` with ``submit``, in arrays no longer than MaxArraySize
        allows; return one id per task. When one part fails, the parts already queued
        are cancelled with ``terminate`` and forgotten: nothing of a refused launch may
        stay queued."""
        chunk = self.cluster.max_array_size - 1  # indices 1..chunk
        ids: list[str] = []
        arrays: list[str] = []
        try:
            for start in range(0, len(launch.tasks), chunk):
                part = dataclasses.replace(launch, tasks=launch.tasks[start:start + chunk])
                array, part_ids = submit(part)
                arrays.append(array)
                ids += part_ids
        except BaseException:
            if arrays:
                terminate(arrays)
                with self._lock:
                    for job_id in ids:
                        self._jobs.pop(job_id)
            raise
        return ids

    def record(self, ids: Sequence[str], resources: Resources, err_logs: Sequence[str],
               nodes: Sequence[str] | None = None) -> None:
        """Watch these new jobs (``ARRAY_INDEX`` ids, or plain job ids), whose stderr
        goes to ``err_logs``, that may run on ``nodes`` (None: not known)."""
        allowed = tuple(nodes) if nodes is not None else None
        with self._lock:
            for job_id, err_log in zip(ids, err_logs, strict=True):
                self._jobs.add(job_id, _Job(job_id.partition("_")[0], resources, err_log,
                                            nodes=allowed))

    def adopt(self, ids: Sequence[str]) -> None:
        """Watch jobs another process submitted (``ARRAY_INDEX`` ids, or plain job ids),
        as if :meth:`record` had: their stderr paths are read from squeue (one call)
        while it lists them; what they asked for is not known. Ids already watched, and
        ids that are not Slurm's, are left out."""
        with self._lock:
            new = [i for i in dict.fromkeys(ids) if i not in self._jobs and _slurm_id(i)]
        if not new:
            return
        err_logs = self._err_logs(sorted({i.partition("_")[0] for i in new}, key=int))
        with self._lock:
            for job_id in new:
                if job_id not in self._jobs:
                    self._jobs.add(job_id, _Job(job_id.partition("_")[0], Resources(),
                                                err_logs.get(job_id, ""), adopted=True))

    def _err_logs(self, arrays: Sequence[str]) -> dict[str, str]:
        """The stderr path of every element of ``arrays`` that squeue lists, by id (no
        answer, no paths: they only add the end of a job's log to its cause of death)."""
        done = self.commands.once(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays),
                                   "-O", "JobArrayID:|,ArrayJobID:|,ArrayTaskID:|,STDERR:|"])
        if done.returncode != 0:
            logger.debug("squeue named no stderr paths of adopted jobs: %s",
                         one_line(done.stderr, "squeue"))
            return {}
        paths = {}
        for line in done.stdout.splitlines():
            fields = [field.strip() for field in line.split("|")]
            if len(fields) >= 4 and fields[0]:
                paths[fields[0]] = _expand_path(fields[3], fields[1], fields[2])
        return {job_id: path for job_id, path in paths.items() if path}

    def job(self, job_id: str) -> TrackedJob | None:
        """What is known of a job still watched; None once its end was reported."""
        with self._lock:
            return self._jobs.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        """Whether the job is still watched (its end not yet reported)."""
        with self._lock:
            return job_id in self._jobs

    def submitted_as(self, token: str) -> subprocess.CompletedProcess[str] | None:
        """After a submission timed out: the array (or job) submitted anyway with
        ``--comment=token``, its id as the answer's stdout; None if there is none."""
        done = self.commands.once(["squeue", "-h", "-t", "all", "--me", "-O",
                                   "Comment:|,ArrayJobID:|"])
        if done.returncode != 0:
            return None
        for line in done.stdout.splitlines():
            comment, _, rest = line.partition("|")
            if comment.strip() == token:
                return subprocess.CompletedProcess([], 0, rest.split("|")[0].strip(), "")
        return None

    # -- watching --------------------------------------------------------------------

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        """The scheduler's ``poll``: the news of ``ids`` that are watched and not
        cancelled. A job that ended, or that Slurm forgot, is no longer watched."""
        now = time.monotonic()
        if now < self._poll_again_at:
            return {}
        with self._lock:
            asked = {i: job for i in ids if (job := self._jobs.get(i)) is not None}
        if not asked:
            return {}
        records = self._squeue(sorted({job.array for job in asked.values()}, key=int))
        if records is None:
            return {}
        answer: dict[str, JobStatus] = {}
        missing: list[str] = []
        with self._lock:
            for job_id, job in asked.items():
                record = records.get(job_id)
                if record is None:
                    # An adopted job was submitted long ago: its end, if squeue forgot
                    # it, is in accounting already.
                    if job.absent(now, _ASK_ACCOUNTING_AFTER) or job.adopted:
                        missing.append(job_id)
                    continue
                job.listed()
                # A job put back in the queue (its node died) keeps the node it ran on.
                job.place = record.node or job.place
                answer[job_id] = describe(record, job.resources, job.err_log)
        if missing:
            found = self.finished(missing)
            for job_id in missing:
                job = asked[job_id]
                if job_id in found:
                    job.place = found[job_id].node or job.place
                    answer[job_id] = describe(found[job_id], job.resources, job.err_log)
                elif job.absent(now, _ABSENT_FOR):
                    answer[job_id] = JobStatus(Status.UNKNOWN, f"Slurm no longer knows job "
                                               f"{job_id} and has no record of its end",
                                               kind=DeathKind.VANISHED)
        with self._lock:
            for job_id, status in answer.items():
                if status.status in (Status.ENDED, Status.UNKNOWN):
                    self._jobs.pop(job_id)
        self._explain_waits(answer, asked, now)
        return {job_id: status._replace(host=status.host or asked[job_id].place)
                for job_id, status in answer.items() if not asked[job_id].cancelled}

    def _explain_waits(self, answer: dict[str, JobStatus], asked: Mapping[str, _Job],
                       now: float) -> None:
        """A job that waits while every node it may run on failed is told so, in
        Slurm's words (its note): the failed nodes are read while jobs wait, every
        _NODES_CHECK_EVERY seconds."""
        waiting = [job_id for job_id, status in answer.items() if status.status is Status.QUEUED]
        if not waiting:
            return
        if now - self._down_read_at >= _NODES_CHECK_EVERY:
            self._down_read_at = now
            try:
                self.down_hosts()
            except SlurmError as error:
                logger.debug("could not read Slurm's failed nodes: %s", error)
        if not self._down:
            return
        for job_id in waiting:
            nodes = asked[job_id].nodes
            note = wait_note(nodes if nodes is not None else self.cluster.nodes or (),
                             self._down)
            if note:
                answer[job_id] = answer[job_id]._replace(note=note)

    def down_hosts(self) -> dict[str, str]:
        """The nodes Slurm counts failed (DOWN, NOT_RESPONDING, FAIL), each with Slurm's
        words; one sinfo call."""
        done = self.commands.once(SINFO_FAILED)
        if done.returncode != 0:
            raise SlurmError(f"sinfo failed (exit status {done.returncode}): "
                             f"{one_line(done.stderr or done.stdout, 'sinfo') or 'no message'}")
        # Kept to explain waits, as if read for them.
        self._down, self._down_read_at = failed_nodes(done.stdout), time.monotonic()
        return dict(self._down)

    def _squeue(self, arrays: Sequence[str]) -> dict[str, Record] | None:
        """One squeue for all arrays; None while the controller cannot be reached."""
        done = self.commands.once(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays),
                                   "-O", SQUEUE_FORMAT])
        message = (done.stderr or "").strip()
        if done.returncode == 0:
            if self._poll_pause:
                logger.warning("Slurm answers again")
            self._poll_pause = 0.0
            return parse_squeue(done.stdout)
        if "Invalid job id" in message:
            return {}  # slurmctld forgot every one of them
        if not is_transient(message):
            raise SlurmError(f"squeue failed (exit status {done.returncode}): {message}")
        # Waiting for the controller inside a poll would hold up the monitor's loop:
        # poll less often instead, and keep the jobs as they were.
        if not self._poll_pause:
            logger.warning("Slurm does not answer, polling less often until it does: %s",
                           message)
        self._poll_pause = min(max(self._poll_pause * 2, 1.0), 30.0)
        self._poll_again_at = time.monotonic() + self._poll_pause
        return None

    def finished(self, ids: Sequence[str]) -> dict[str, Record]:
        """Final records of jobs squeue no longer lists: sacct where slurmdbd runs,
        else the job completion log; jobs found in neither are left out."""
        if self.cluster.accounting:
            done = self.commands.once(["sacct", "-X", "-n", "-P", "-j", ",".join(ids),
                                       "-o", SACCT_FIELDS])
            if done.returncode == 0:
                return parse_sacct(done.stdout)
        if self.cluster.jobcomp_log:
            try:
                with open(self.cluster.jobcomp_log, "rb") as handle:
                    handle.seek(max(0, os.fstat(handle.fileno()).st_size - _JOBCOMP_TAIL))
                    lines = handle.read().decode(errors="replace").splitlines()
            except OSError:
                return {}
            wanted = set(ids)
            return {i: r for i, r in parse_jobcomp(lines).items() if i in wanted}
        return {}

    # -- stopping --------------------------------------------------------------------

    def cancel(self, ids: Sequence[str]) -> list[str]:
        """Mark ``ids`` cancelled (their end is not reported); return what to stop: a
        whole array by its id when every element still out is being cancelled (Ctrl-C),
        otherwise the elements. Ids not watched or already cancelled are left out."""
        with self._lock:
            return self._jobs.cancel(ids)

    def uncancel(self, targets: Sequence[str]) -> None:
        """Slurm refused to stop ``targets``: a later cancel asks for them again."""
        with self._lock:
            self._jobs.uncancel(targets)

    def scancel(self, targets: Sequence[str]) -> None:
        """Cancel jobs and whole arrays (given by their array id), in one request."""
        self.commands.run(["scancel", *targets])

    def clear(self) -> None:
        """Forget every job: nothing more is reported or cancelled."""
        with self._lock:
            self._jobs.clear()
