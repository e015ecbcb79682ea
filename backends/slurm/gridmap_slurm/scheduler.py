"""The Slurm :class:`~gridmap_core.backend.scheduler.Scheduler` over the command-line tools.

A launch is one ``sbatch --array`` (split when it is longer than MaxArraySize allows);
a cancel is one ``scancel``. Polls are :class:`~gridmap_slurm.tracking.SlurmJobs`'s:
one ``squeue`` for every job of the session, with ``sacct`` (or the job completion
log) asked only about jobs squeue no longer lists. Job ids are ``ARRAY_INDEX``
(``123_4``) throughout, as Slurm prints them.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shlex
import shutil
from collections.abc import Mapping, Sequence

from gridmap_core.backend.scheduler import JobStatus, Launch

from .cluster import Cluster
from .commands import Commands, SlurmError
from .options import SlurmOptions, allowed_nodes, job_name, job_options
from .tracking import SlurmJobs

__all__ = ["SlurmScheduler", "job_environment"]
logger = logging.getLogger(__name__)


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
        self.jobs = SlurmJobs(cluster, self.commands)  # submitted, not yet seen ended

    # -- launching -------------------------------------------------------------------

    def launch(self, launch: Launch) -> list[str]:
        options = job_options(launch.spec, self.options, launch.avoid)
        return self.jobs.launch(launch, functools.partial(self._submit, options=options),
                                self.jobs.scancel)

    def _submit(self, launch: Launch, options: list[str]) -> tuple[str, list[str]]:
        """Submit ``launch`` as one array; return its array id and its elements' ids,
        having recorded each with :meth:`SlurmJobs.record`."""
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
                                     before_retry=(lambda: self.jobs.submitted_as(token))
                                     if token else None)
        except SlurmError as error:
            raise SlurmError(f"Slurm refused {count} job(s) named {launch.name!r}: "
                             f"{str(error).split(': ', 1)[-1]} (requested with: "
                             f"{shlex.join(options) or 'no options'})") from None
        except BaseException:
            # Interrupted (Ctrl-C) while sbatch ran: its array may exist all the same,
            # and nothing else knows its id. Find it by its token and cancel it.
            found = self.jobs.submitted_as(token) if token else None
            if found is not None and found.stdout.isdigit():
                self.jobs.scancel([found.stdout])
            raise
        array = done.stdout.strip().split(";")[0]
        if not array.isdigit():
            raise SlurmError(f"sbatch printed no job id: {done.stdout.strip()!r}")
        ids = [f"{array}_{index}" for index in range(1, count + 1)]
        err_logs = [f"{base}.{i}.{launch.attempt}.err" for i in range(1, count + 1)]
        self.jobs.record(ids, spec.resources, err_logs,
                         allowed_nodes(spec.resources, self.options, launch.avoid))
        logger.debug("submitted %d job(s) as array %s with %s", count, array, options)
        return array, ids

    # -- watching and stopping ---------------------------------------------------------

    def peers(self) -> tuple[str, ...]:
        """The cluster's nodes (sinfo), whose route here the monitor advertises."""
        return self.cluster.nodes or ()

    def down_hosts(self) -> Mapping[str, str]:
        """The nodes Slurm counts failed (DOWN, NOT_RESPONDING, FAIL), with its words."""
        return self.jobs.down_hosts()

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return self.jobs.poll(ids)

    def adopt(self, ids: Sequence[str]) -> None:
        """Watch jobs another process submitted (``123_4``), as if launched here; their
        causes of death lack the limits they asked for."""
        self.jobs.adopt(ids)

    def cancel_command(self) -> list[str]:
        """scancel, by its path here: the runners' way to cancel their jobs."""
        return [shutil.which("scancel") or "scancel"]

    def cancel(self, ids: Sequence[str]) -> None:
        # A whole array in one word when every element still out is being cancelled
        # (Ctrl-C); otherwise element by element, in the same call.
        targets = self.jobs.cancel(ids)
        if targets:
            try:
                self.jobs.scancel(targets)
            except BaseException:
                self.jobs.uncancel(targets)  # the monitor tries again later
                raise

    def close(self) -> None:
        self.jobs.clear()
