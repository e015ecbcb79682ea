"""The Slurm :class:`~gridmap_core.backend.scheduler.Scheduler` over the command-line tools.

A launch is one ``sbatch --array`` (split when it is longer than MaxArraySize allows);
a poll is one ``squeue`` for every job of the session, with ``sacct`` (or the job
completion log) asked only about jobs squeue no longer lists; a cancel is one
``scancel``. Job ids are ``ARRAY_INDEX`` (``123_4``) throughout, as Slurm prints them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.resources import Resources

from .cluster import Cluster
from .commands import Commands, SlurmError, is_transient
from .options import SlurmOptions, job_name, job_options
from .states import Record, describe, parse_jobcomp, parse_sacct, parse_squeue

__all__ = ["SlurmScheduler", "job_environment"]
logger = logging.getLogger(__name__)

_SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,exit_code:|"
# A job squeue stopped listing is looked up in accounting after this long (slurmctld
# forgets ended jobs after MinJobAge), and is unknown to Slurm after _ABSENT_FOR.
_ASK_ACCOUNTING_AFTER = 2.0
_ABSENT_FOR = 30.0
_JOBCOMP_TAIL = 4 * 2**20  # bytes of the completion log read (it grows without limit)


@dataclass
class _Job:
    resources: Resources
    array: str
    err_log: str
    absent_since: float | None = None
    cancelled: bool = False


def job_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment sbatch runs with (and, with ``--export=ALL``, the job's):
    without the variables Slurm sets per job, which would mislead a job submitted
    from inside another job, but with SLURM_CONF, which the tools need."""
    return {name: value for name, value in environment.items()
            if not name.startswith("SLURM_") or name == "SLURM_CONF"}


class SlurmScheduler:
    """Submits runners with sbatch and reports on them (thread-safe)."""

    def __init__(self, cluster: Cluster, options: SlurmOptions, *,
                 max_running: int | None = None, commands: Commands | None = None) -> None:
        self.cluster = cluster
        self.options = options
        self.max_running = max_running
        self.commands = commands or Commands()
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # submitted, not yet seen ended
        self._poll_again_at = 0.0  # after a transient squeue failure
        self._poll_pause = 0.0

    # -- launching -------------------------------------------------------------------

    def launch(self, launch: Launch) -> list[str]:
        options = job_options(launch.spec, self.options)
        chunk = self.cluster.max_array_size - 1  # indices 1..chunk
        ids: list[str] = []
        arrays: list[str] = []
        try:
            for start in range(0, len(launch.tasks), chunk):
                part = dataclasses.replace(launch, tasks=launch.tasks[start:start + chunk])
                array, part_ids = self._submit(part, options)
                arrays.append(array)
                ids += part_ids
        except BaseException:
            if arrays:  # nothing of a refused launch may stay queued
                self._terminate(arrays)
                with self._lock:
                    for job_id in ids:
                        self._jobs.pop(job_id, None)
            raise
        return ids

    def _submit(self, launch: Launch, options: list[str]) -> tuple[str, list[str]]:
        """Submit ``launch`` as one array; return its array id and its elements' ids,
        having recorded each with :meth:`_record`."""
        spec = launch.spec
        count = len(launch.tasks)
        span = f"{launch.tasks[0]}-{launch.tasks[-1]}"
        base = os.path.join(launch.log_dir, f"{launch.name}.{span}")
        script = f"{base}.{launch.attempt}.sh"
        command = launch.shell_line(launch.array_command("SLURM_ARRAY_TASK_ID", 1))
        shell = spec.interpreting_shell or "/bin/sh"
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(f"#!{shell}\nexec {command}\n")
        throttle = f"%{self.max_running}" if self.max_running else ""
        # A job's own --comment replaces the token that finds a timed-out submission.
        token = None if any(o.startswith("--comment=") for o in options) else \
            f"gridmap-{secrets.token_hex(8)}"
        # Slurm expands %-patterns in these paths: only %a (the element) is wanted.
        pattern = base.replace("%", "%%")
        out, err = f"{pattern}.%a.{launch.attempt}.out", f"{pattern}.%a.{launch.attempt}.err"
        argv = [
            "sbatch", "--parsable", f"--array=1-{count}{throttle}",
            f"--job-name={job_name(launch.name)}", f"--output={out}", f"--error={err}",
            f"--chdir={os.path.abspath(spec.working_dir)}", "--export=ALL",
            *([f"--comment={token}"] if token else []), *options, script,
        ]
        # sbatch's environment becomes the job's (--export=ALL). Without copy_env it
        # may lack PATH and SLURM_CONF, which sbatch itself needs.
        environment = job_environment(launch.environment)
        if "SLURM_CONF" in os.environ:
            environment.setdefault("SLURM_CONF", os.environ["SLURM_CONF"])
        argv[0] = shutil.which("sbatch") or "sbatch"
        try:
            done = self.commands.run(argv, env=environment,
                                     before_retry=(lambda: self._submitted_as(token))
                                     if token else None)
        except SlurmError as error:
            raise SlurmError(f"Slurm refused {count} job(s) named {launch.name!r}: "
                             f"{str(error).split(': ', 1)[-1]} (requested with: "
                             f"{shlex.join(options) or 'no options'})") from None
        except BaseException:
            # Interrupted (Ctrl-C) while sbatch ran: its array may exist all the same,
            # and nothing else knows its id. Find it by its token and cancel it.
            found = self._submitted_as(token) if token else None
            if found is not None and found.stdout.isdigit():
                self._terminate([found.stdout])
            raise
        array = done.stdout.strip().split(";")[0]
        if not array.isdigit():
            raise SlurmError(f"sbatch printed no job id: {done.stdout.strip()!r}")
        ids = [f"{array}_{index}" for index in range(1, count + 1)]
        err_logs = [f"{base}.{i}.{launch.attempt}.err" for i in range(1, count + 1)]
        self._record(ids, spec.resources, err_logs)
        logger.debug("submitted %d job(s) as array %s with %s", count, array, options)
        return array, ids

    def _record(self, ids: Sequence[str], resources: Resources, err_logs: Sequence[str]) -> None:
        """Watch these new jobs (``ARRAY_INDEX`` ids, or plain job ids)."""
        with self._lock:
            for job_id, err_log in zip(ids, err_logs, strict=True):
                self._jobs[job_id] = _Job(resources, job_id.partition("_")[0], err_log)

    def _submitted_as(self, token: str) -> subprocess.CompletedProcess[str] | None:
        """After sbatch timed out: the array it submitted anyway, if it did."""
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
        now = time.monotonic()
        if now < self._poll_again_at:
            return {}
        with self._lock:
            asked = {i: self._jobs[i] for i in ids if i in self._jobs}
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
                    job.absent_since = job.absent_since or now
                    if now - job.absent_since >= _ASK_ACCOUNTING_AFTER:
                        missing.append(job_id)
                    continue
                job.absent_since = None
                answer[job_id] = describe(record, job.resources, job.err_log)
        if missing:
            found = self._finished(missing)
            for job_id in missing:
                job = asked[job_id]
                if job_id in found:
                    answer[job_id] = describe(found[job_id], job.resources, job.err_log)
                elif job.absent_since is not None and now - job.absent_since >= _ABSENT_FOR:
                    answer[job_id] = JobStatus(Status.UNKNOWN, f"Slurm no longer knows job "
                                               f"{job_id} and has no record of its end")
        with self._lock:
            for job_id, status in answer.items():
                if status.status in (Status.ENDED, Status.UNKNOWN):
                    self._jobs.pop(job_id, None)
        return {job_id: status for job_id, status in answer.items()
                if not asked[job_id].cancelled}

    def _squeue(self, arrays: Sequence[str]) -> dict[str, Record] | None:
        """One squeue for all arrays; None while the controller cannot be reached."""
        done = self.commands.once(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays),
                                   "-O", _SQUEUE_FORMAT])
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

    def _finished(self, ids: Sequence[str]) -> dict[str, Record]:
        """Final records of jobs squeue no longer lists: sacct where slurmdbd runs,
        else the job completion log."""
        if self.cluster.accounting:
            done = self.commands.once(["sacct", "-X", "-n", "-P", "-j", ",".join(ids),
                                       "-o", "JobID,State,ExitCode,Reason"])
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

    def cancel(self, ids: Sequence[str]) -> None:
        with self._lock:
            wanted = [i for i in ids if i in self._jobs and not self._jobs[i].cancelled]
            for job_id in wanted:
                self._jobs[job_id].cancelled = True
            by_array: dict[str, list[str]] = {}
            for job_id in wanted:
                by_array.setdefault(self._jobs[job_id].array, []).append(job_id)
            targets: list[str] = []
            for array, members in by_array.items():
                # A whole array in one word when every element still out is being
                # cancelled (Ctrl-C); otherwise element by element, in the same call.
                everyone = [j for j in self._jobs.values() if j.array == array]
                if len(members) > 1 and all(j.cancelled for j in everyone):
                    targets.append(array)
                else:
                    targets.extend(members)
        if targets:
            self._terminate(targets)

    def _terminate(self, targets: Sequence[str]) -> None:
        """Cancel jobs and whole arrays (given by their array id), in one request."""
        self.commands.run(["scancel", *targets])

    def close(self) -> None:
        with self._lock:
            self._jobs.clear()
