"""Job: one call of a function, its resource requests, and how it ended."""

from __future__ import annotations

import enum
import os
import socket
import time
import traceback as traceback_module
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gridmap_core.errors import GridMapError
from gridmap_core.model.death import DeathKind
from gridmap_core.model.options import JobOptions
from gridmap_core.model.resources import Resources
from gridmap_core.model.spec import Failure, JobSpec

__all__ = ["JOB_NOT_FINISHED", "Job", "JobException", "JobState", "RemoteError"]

# Stands in ``Job.ret`` until a job has run: a job may return None on purpose.
JOB_NOT_FINISHED = "*@#%$*@#___GRIDMAP___NOT___DONE___@#%**#*$&*%"


class JobState(str, enum.Enum):
    """Where a job stands: created -> submitted -> running -> done | failed | dead."""

    CREATED = "created"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the function raised
    DEAD = "dead"  # lost without a result: killed, out of memory, no heartbeat, …
    CANCELLED = "cancelled"


def check_function(function: object) -> None:
    """Raise TypeError unless ``function`` can be called."""
    if not callable(function):
        raise TypeError(
            f"the function to run must be callable, got {type(function).__name__} {function!r:.80}"
        )


class Job:
    """One call ``f(*args, **kwlist)`` to run on a backend, with its outcome.

    The constructor matches the original GridMap's; resource values are validated
    here, so a bad ``mem_free`` or ``h_rt`` fails before anything is submitted.
    After a run, ``ret`` holds the return value (or the exception the function
    raised, with its remote ``traceback``), ``cause_of_death`` why a lost job died
    (and ``death_kind`` what kind of death that was, a :class:`DeathKind`),
    and ``host_name``, ``timestamp``, ``track_cpu``, ``track_mem`` where and how it ran.
    """

    # The options' fields (JobOptions.names()) and what a job learns as it runs.
    __slots__ = (
        "args",
        "backend",
        "cause_of_death",
        "death_kind",
        "function",
        "heart_beat",
        "home_address",
        "host_name",
        "id",
        "kwlist",
        "log_stderr_fn",
        "log_stdout_fn",
        "num_resubmits",
        "path",
        "ret",
        "state",
        "timestamp",
        "traceback",
        "track_cpu",
        "track_mem",
        "uniq_id",
        "white_list",
        "working_dir",
        *JobOptions.names(),
    )
    # The options as typed fields, for type checkers: the same names and types as
    # JobOptions's (a test holds the two together).
    cleanup: bool
    mem_free: str | None
    name: str
    num_slots: int
    queue: str | None
    interpreting_shell: str | None
    copy_env: bool
    add_env: dict[str, str] | None
    project: str | None
    validation_level: str | None
    os_distribution: str | None
    os_minor: str | None
    par_env: str | None
    gpu: int
    h_vmem: str | None
    h_rt: str | int | None
    resources: Sequence[str] | None

    def __init__(
        self,
        f: Callable[..., Any],
        args: Sequence[Any],
        kwlist: Mapping[str, Any] | None = None,
        cleanup: bool = True,
        mem_free: str | None = "1G",
        name: str = "gridmap_job",
        num_slots: int = 1,
        queue: str | None = None,
        interpreting_shell: str | None = None,
        copy_env: bool = True,
        add_env: Mapping[str, str] | None = None,
        project: str | None = None,
        validation_level: str | None = None,
        os_distribution: str | None = None,
        os_minor: str | None = None,
        par_env: str | None = None,
        gpu: int = 0,
        h_vmem: str | None = None,
        h_rt: str | int | None = None,
        resources: Sequence[str] | None = None,
    ) -> None:
        check_function(f)
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise TypeError(
                f"args={args!r:.80} must be a list or tuple of positional arguments; "
                "to pass a single argument x, write [x]"
            )
        if kwlist is not None and not (
            isinstance(kwlist, Mapping) and all(isinstance(k, str) for k in kwlist)
        ):
            raise TypeError(f"kwlist={kwlist!r:.80} must be a dict of keyword arguments")
        # The signature above is the original GridMap's; JobOptions checks its options.
        options = JobOptions.of(locals(), strict=False)
        self.function = f
        self.args = list(args)
        self.kwlist = dict(kwlist) if kwlist else {}
        for option, value in options.as_dict().items():
            setattr(self, option, value)
        self.white_list: list[str] | None = None
        self.working_dir = os.getcwd()
        self.path: str | None = None
        self.uniq_id: str | None = None
        self.home_address = ""
        self.id: str | int = -1
        self.backend = ""
        self.state = JobState.CREATED
        self.reset()
        self.requirements()  # validate now, on the submitting host

    def reset(self) -> None:
        """Forget any earlier outcome, so the job can run again."""
        self.ret: Any = JOB_NOT_FINISHED
        self.traceback: str | None = None
        self.cause_of_death = ""
        self.death_kind: DeathKind | None = None
        self.num_resubmits = 0
        self.log_stdout_fn = ""
        self.log_stderr_fn = ""
        self.timestamp: float | None = None
        self.host_name = ""
        self.heart_beat: dict[str, Any] | None = None
        self.track_mem: list[float] = []
        self.track_cpu: list[float] = []

    @property
    def options(self) -> JobOptions:
        """The job's options as they stand now (its fields may be changed after creation)."""
        return JobOptions.of({name: getattr(self, name) for name in JobOptions.names()})

    def requirements(self, defaults: Mapping[str, Any] | None = None) -> Resources:
        """The job's resource requests, validated (raises ResourceError).

        ``defaults`` fill what the job leaves unset: ``queue``, ``par_env``, ``white_list``.
        """
        defaults = defaults or {}
        return Resources.parse(
            mem_free=self.mem_free,
            h_vmem=self.h_vmem,
            h_rt=self.h_rt,
            num_slots=self.num_slots,
            par_env=self.par_env or defaults.get("par_env"),
            gpu=self.gpu,
            queue=self.queue or defaults.get("queue"),
            white_list=self.white_list or defaults.get("white_list"),
            resources=self.resources,
        )

    @property
    def environment(self) -> dict[str, str]:
        """The environment the job will run with (copy_env, then add_env on top)."""
        env = dict(os.environ) if self.copy_env else {}
        env.update(self.add_env or {})
        return env

    @property
    def failed(self) -> bool:
        """True when the job raised or died."""
        return self.state in (JobState.FAILED, JobState.DEAD)

    def spec(self, defaults: Mapping[str, Any] | None = None) -> JobSpec:
        """The :class:`JobSpec` this job runs with; ``defaults`` fill unset fields."""
        resources = self.requirements(defaults)
        extra = {
            k: v
            for k, v in (
                ("project", self.project),
                ("validation_level", self.validation_level),
                ("os_distribution", self.os_distribution),
                ("os_minor", self.os_minor),
            )
            if v
        }
        return JobSpec(
            function=self.function,
            resources=resources,
            name=self.name,
            working_dir=self.working_dir,
            copy_env=self.copy_env,
            add_env=self.add_env,
            interpreting_shell=self.interpreting_shell,
            cleanup=self.cleanup,
            extra=extra,
        )

    def execute(self) -> None:
        """Run the function here and now, storing its value (or exception) in ``ret``."""
        self.host_name = socket.gethostname()
        self.timestamp = time.time()
        try:
            self.ret = self.function(*self.args, **self.kwlist)
            self.state = JobState.DONE
        except Exception as exception:
            self.ret = exception
            self.traceback = traceback_module.format_exc()
            self.state = JobState.FAILED

    def record_success(self, value: Any, host_name: str) -> None:
        """Store a result reported by a backend."""
        self.ret = value
        self.host_name = host_name
        self.state = JobState.DONE

    def record_heartbeat(self, heartbeat: Mapping[str, Any]) -> None:
        """Store a heartbeat: CPU percent and memory (in MB, as the original's plots)."""
        self.heart_beat = dict(heartbeat)
        self.track_cpu.append(float(heartbeat["cpu"]))
        self.track_mem.append(float(heartbeat["memory"]) / 2**20)
        self.host_name = str(heartbeat.get("host_name") or self.host_name)
        self.state = JobState.RUNNING

    def record_failure(self, failure: Failure) -> None:
        """Store an exception or a death reported by a backend."""
        self.ret = failure.exception
        self.traceback = failure.traceback
        self.host_name = failure.host_name or self.host_name
        if failure.job_id:
            self.id = failure.job_id
        if failure.num_resubmits:
            self.num_resubmits = failure.num_resubmits
        if failure.track_cpu:
            self.track_cpu = list(failure.track_cpu)
            self.track_mem = list(failure.track_mem)
        if failure.heart_beat is not None:
            self.heart_beat = dict(failure.heart_beat)
        if failure.cause_of_death:
            self.cause_of_death = failure.cause_of_death
            self.death_kind = failure.death_kind or DeathKind.OTHER
            self.state = JobState.DEAD
        else:
            self.state = JobState.FAILED

    def describe(self) -> str:
        """One line naming the job for messages."""
        where = f" on {self.host_name}" if self.host_name else ""
        ident = f" (id {self.id})" if self.id not in (-1, "") else ""
        return f"job {self.name}{ident}{where}"

    def __repr__(self) -> str:
        return f"<Job {self.name} {self.state.value}>"


class RemoteError(Exception):
    """Stands in for an exception raised by a job that could not be sent back as it was
    (it could not be pickled or unpickled); its message names the original type."""


class JobException(GridMapError):
    """One or more jobs failed or died; ``jobs`` lists them all.

    The message names every failed job with its cause of death or its remote
    traceback, and ``log_dir``, where the jobs' logs were kept (stdout and stderr of
    each), when the backend keeps them.
    """

    def __init__(self, jobs: Sequence[Job], total: int | None = None, cancelled: int = 0,
                 log_dir: str | None = None) -> None:
        self.jobs = list(jobs)
        self.total = total
        self.cancelled = cancelled
        self.log_dir = log_dir
        super().__init__(self._message())

    def _message(self) -> str:
        count = len(self.jobs)
        out_of = f" of {self.total}" if self.total is not None else ""
        more = (
            f" ({self.cancelled} more cancelled after the first failure)" if self.cancelled else ""
        )
        noun = "job" if (self.total if self.total is not None else count) == 1 else "jobs"
        lines = [f"{count}{out_of} {noun} failed{more}:"]
        for job in self.jobs:
            if job.cause_of_death:
                lines.append(f"- {job.describe()} died: {job.cause_of_death}")
            else:
                error = job.ret
                summary = f"{type(error).__name__}: {error}" if error is not None else "?"
                lines.append(f"- {job.describe()} raised {summary}")
                if job.traceback:
                    lines.append("  Remote traceback:")
                    lines.extend("    " + line for line in job.traceback.rstrip().splitlines())
        if self.log_dir:
            lines.append(f"The jobs' logs (stdout and stderr of each) are kept in {self.log_dir}")
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.jobs, self.total, self.cancelled, self.log_dir))
