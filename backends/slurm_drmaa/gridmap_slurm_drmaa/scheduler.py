"""The slurm-drmaa :class:`~gridmap_core.backend.scheduler.Scheduler`: DRMAA to submit and
cancel, the sbatch backend's watching (:class:`gridmap_slurm.tracking.SlurmJobs`: one
``squeue`` per poll, ``sacct`` or the job completion log for jobs squeue forgot).

What slurm-drmaa does with a submission (natefoo/slurm-drmaa, ``slurm_drmaa/session.c``
and ``job.c``), and so what this module relies on:

- ``runBulkJobs(1, N, 1)`` submits one Slurm job array over indices 1..N, so each
  element finds its index in ``SLURM_ARRAY_TASK_ID``; ``runJob`` submits a plain job.
- Current releases return ``ARRAY_INDEX`` ids (``"123_4"``) for array elements and the
  job number (``"123"``) for a plain job. Older ones returned each element's own job
  number (``"125"``), which squeue shows as ``123_4``: such ids are translated with one
  squeue call, so that polls and cancels see ``ARRAY_INDEX`` ids throughout.
- DRMAA's increment placeholder in output paths becomes Slurm's ``%a``.
- The command goes into a ``#!/bin/bash`` script: the program as it is, each argument
  in single quotes.
- A job's environment is the submitting process's, then the template's (bash keeps the
  later of two values, so the template's wins).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import Commands, is_transient
from gridmap_slurm.options import SlurmOptions, allowed_nodes, job_name
from gridmap_slurm.scheduler import job_environment
from gridmap_slurm.tracking import SlurmJobs

from gridmap_core.backend.drmaa import (
    INCREMENT_PLACEHOLDER,
    DrmaaConnection,
    DrmaaError,
    submission,
)
from gridmap_core.backend.scheduler import JobStatus, Launch

from .native import check_job, native_specification

__all__ = ["SlurmDrmaaScheduler"]
logger = logging.getLogger(__name__)

# What may stand unquoted at the start of slurm-drmaa's bash script.
_PLAIN_WORD = re.compile(r"[\w@%+=:,./-]+")


def _check_command(command: Sequence[str]) -> None:
    if not _PLAIN_WORD.fullmatch(command[0]) or any("'" in word for word in command[1:]):
        raise DrmaaError(
            f"slurm-drmaa writes the job's command into a bash script without quoting the "
            f"program and with each argument in single quotes, so it cannot run "
            f"{command[0]!r} with these arguments: set the backend option 'python' to an "
            "interpreter path without blanks or shell characters"
        )


def _environment(launch: Launch) -> dict[str, str]:
    """The job's environment as sbatch would give it. sbatch exports
    ``SLURM_CPUS_PER_TASK`` into the job when ``--cpus-per-task`` is asked for; slurmd
    does not, and slurm-drmaa passes only the submitting process's environment. Without
    it a job granted N CPUs cannot tell, and an ``srun`` inside it starts its tasks with
    one CPU each."""
    environment = job_environment(launch.environment)
    slots = launch.spec.resources.num_slots
    if slots > 1:
        environment["SLURM_CPUS_PER_TASK"] = str(slots)
    return environment


class SlurmDrmaaScheduler:
    """Submits runners through slurm-drmaa and reports on them with squeue (thread-safe).

    slurm-drmaa cannot throttle an array (no %N in its array request): no max_running.
    """

    def __init__(self, connection: DrmaaConnection, cluster: Cluster, options: SlurmOptions,
                 *, commands: Commands | None = None) -> None:
        self.connection = connection
        self.cluster = cluster
        self.options = options
        self.commands = commands or Commands()
        self.jobs = SlurmJobs(cluster, self.commands)  # submitted, not yet seen ended
        self._lock = threading.Lock()  # guards what follows
        self._library_ids: dict[str, str] = {}  # our id -> slurm-drmaa's, while it runs
        self._unreaped: set[str] = set()  # slurm-drmaa's ids whose ending is not drained
        self._drain_failed = False
        self._released = False
        # Jobs and arrays another process submitted (adopt): not this DRMAA session's,
        # which may refuse to cancel them, or take them for ended.
        self._adopted: set[str] = set()

    # -- launching -------------------------------------------------------------------

    def launch(self, launch: Launch) -> list[str]:
        check_job(launch.spec)
        # The sbatch backend's options, each checked against what slurm-drmaa reads: a
        # site's native_specification is checked here at the latest.
        native = native_specification(launch.spec, self.options, launch.avoid)
        return self.jobs.launch(launch, functools.partial(self._submit, native=native),
                                self._terminate)

    def _submit(self, launch: Launch, native: str) -> tuple[str, list[str]]:
        """Submit ``launch`` as one array (one job for one task); return the array's id
        and its elements' ids, having recorded each with :meth:`SlurmJobs.record`."""
        spec = launch.spec
        count = len(launch.tasks)
        name = job_name(launch.name)
        command, out, err = submission(launch, "SLURM_ARRAY_TASK_ID")
        _check_command(command)
        request: dict[str, Any] = {
            "command": command, "environment": _environment(launch),
            "working_dir": os.path.abspath(spec.working_dir),
            # Slurm expands %-patterns in these paths (%j, %a, …); "%%" is a plain "%".
            "output": out.replace("%", "%%"), "error": err.replace("%", "%%"),
            "name": name, "count": count,
        }
        try:
            given = self._submit_retrying(request, native)
        except DrmaaError as error:
            raise DrmaaError(f"Slurm refused {count} job(s) named {launch.name!r}: {error} "
                             f"(requested with: {native or 'no options'})") from None
        try:
            array, library = self._our_ids(given, count)
        except BaseException:
            self._terminate(given)  # nothing of a launch that cannot be watched may run
            raise
        ids = list(library)
        with self._lock:
            self._library_ids.update(library)
            self._unreaped.update(given)
        self.jobs.record(ids, spec.resources,
                         [err.replace(INCREMENT_PLACEHOLDER, str(i)) for i in range(1, count + 1)],
                         allowed_nodes(spec.resources, self.options, launch.avoid))
        logger.debug("submitted %d job(s) as %s with %r", count, array, native)
        return array, ids

    def _submit_retrying(self, request: dict[str, Any], native: str) -> list[str]:
        """Submit; while slurmctld does not answer, retry for up to ``retry_for`` seconds,
        as the sbatch backend does. The request carries a unique ``--comment``, looked
        for in squeue before each retry, so one that was accepted after all is not
        submitted twice."""
        token = f"gridmap-{secrets.token_hex(8)}"
        # A job's own --comment would replace the token: then a failure is final.
        tagged = not any(word.startswith("--comment=") for word in native.split())
        tagged_native = f"{native} --comment={token}".strip() if tagged else native
        deadline = time.monotonic() + self.commands.retry_for
        pause = self.commands.first_pause
        warned = False
        while True:
            try:
                given: list[str] = self.connection.submit(native=tagged_native, **request)
                return given
            except DrmaaError as error:
                if not (tagged and is_transient(str(error))) or time.monotonic() + pause > deadline:
                    raise
                if not warned:
                    logger.warning("slurm-drmaa could not submit, retrying for up to %.0f s: %s",
                                   self.commands.retry_for, error)
                    warned = True
            self.commands.sleep(pause)
            pause = min(pause * 2, self.commands.longest_pause)
            found = self.jobs.submitted_as(token)
            if found is not None:
                array, count = found.stdout.strip(), request["count"]
                return [array] if count == 1 else [f"{array}_{i}" for i in range(1, count + 1)]

    def _our_ids(self, given: Sequence[str], count: int) -> tuple[str, dict[str, str]]:
        """The array (or job) number and ``{our id: slurm-drmaa's id}`` in element order,
        our ids being ``ARRAY_INDEX`` for array elements, as squeue prints them."""
        if len(given) != count:
            raise DrmaaError(f"slurm-drmaa returned {len(given)} job id(s) for {count} jobs: "
                             f"{', '.join(given)}")
        if count == 1:
            return given[0].partition("_")[0], {given[0]: given[0]}
        if all("_" in job_id for job_id in given):
            array = given[0].partition("_")[0]
            ours = [f"{array}_{index}" for index in range(1, count + 1)]
            if sorted(given) != sorted(ours):
                raise DrmaaError(f"slurm-drmaa returned ids that are not the elements 1-{count}"
                                 f" of one array: {', '.join(given)}")
            return array, {job_id: job_id for job_id in ours}
        # Each element's own job number (older slurm-drmaa): squeue knows its array index.
        done = self.commands.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(given),
                                  "-O", "JobID:|,JobArrayID:|"])
        elements: dict[str, str] = {}
        for line in done.stdout.splitlines():
            number, _, rest = line.partition("|")
            elements[number.strip()] = rest.split("|")[0].strip()
        array = elements.get(given[0], "").partition("_")[0]
        by_index = {elements.get(job_id, ""): job_id for job_id in given}
        ours = [f"{array}_{index}" for index in range(1, count + 1)]
        if not array or set(by_index) != set(ours):
            raise DrmaaError(f"slurm-drmaa returned job numbers squeue does not show as the "
                             f"elements 1-{count} of one array: {', '.join(given)}")
        return array, {job_id: by_index[job_id] for job_id in ours}

    # -- watching --------------------------------------------------------------------

    def peers(self) -> tuple[str, ...]:
        """The cluster's nodes (sinfo), whose route here the monitor advertises."""
        return self.cluster.nodes or ()

    def down_hosts(self) -> Mapping[str, str]:
        """The nodes Slurm counts failed (DOWN, NOT_RESPONDING, FAIL), with its words."""
        return self.jobs.down_hosts()

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        self._drain()
        answer = self.jobs.poll(ids)
        with self._lock:
            for job_id in [i for i in self._library_ids if i not in self.jobs]:
                del self._library_ids[job_id]
        return answer

    def adopt(self, ids: Sequence[str]) -> None:
        """Watch jobs another process submitted (``123_4``), as if launched here: with
        squeue and sacct, as every job, and cancelled with scancel. Their causes of
        death lack the limits they asked for."""
        with self._lock:
            self._adopted.update(ids)
            self._adopted.update(job_id.partition("_")[0] for job_id in ids)
        self.jobs.adopt(ids)

    def cancel_command(self) -> list[str]:
        """scancel, by its path here: the runners' way to cancel their jobs."""
        return [shutil.which("scancel") or "scancel"]

    def _drain(self) -> None:
        """Take slurm-drmaa's reports of ended jobs, and drop them: states come from
        squeue. Reaping is what removes a job from slurm-drmaa's own list, whose every
        job it asks slurmctld about, one request each, on each round of its wait thread."""
        try:
            self.connection.reap()
        except DrmaaError as error:
            if not self._drain_failed:
                logger.warning("slurm-drmaa could not report ended jobs (%s); job states "
                               "still come from squeue", error)
            self._drain_failed = True
            return
        with self._lock:
            unreaped = list(self._unreaped)
        taken = self.connection.take(unreaped)
        with self._lock:
            self._unreaped.difference_update(taken)

    # -- stopping --------------------------------------------------------------------

    def cancel(self, ids: Sequence[str]) -> None:
        # A whole array by its id when every element still out is being cancelled
        # (Ctrl-C); otherwise element by element.
        targets = self.jobs.cancel(ids)
        if targets:
            try:
                self._terminate(targets)
            except BaseException:
                self.jobs.uncancel(targets)  # the monitor tries again later
                raise

    def _terminate(self, targets: Sequence[str]) -> None:
        """Cancel jobs and whole arrays (given by their array id) through slurm-drmaa;
        adopted ones, and what slurm-drmaa refuses, with scancel."""
        with self._lock:
            given = [self._library_ids.get(target, target) for target in targets]
            with_scancel = [target for target in targets if target in self._adopted]
        for target, job_id in zip(targets, given, strict=True):
            if target in with_scancel:
                continue
            try:
                self.connection.terminate(job_id)
            except DrmaaError as error:
                logger.debug("slurm-drmaa could not cancel %s (%s): using scancel", job_id,
                             error)
                with_scancel.append(target)
        if with_scancel:
            # Releases that parse a job id as a plain number refuse "123_4"; scancel
            # reads every form.
            self.jobs.scancel(with_scancel)

    def close(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
            unreaped = list(self._unreaped)
            self._unreaped.clear()
            self._library_ids.clear()
        self.connection.take(unreaped)
        self.jobs.clear()
        self.connection.release()
