"""Fakes and helpers shared by the Slurm backend's unit tests: job specs, completion
log lines, a clock, Slurm's tools as a test sets them up (answering as Slurm 22.05
does, see shared/notes/slurm-single-node.md, "How job endings look") and a harness
that drives the scheduler through them."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import Commands
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm.scheduler import SlurmScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import JobStatus, Launch
from gridmap_core.model.resources import Resources

RUNNER = ["python3", "-m", "gridmap_core.node.runner", "--address", "tcp://head:5555"]
SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,exit_code:|,NodeList:|"
CONTROLLER_DOWN = "squeue: error: Unable to contact slurm controller (connect failure)"


def make_spec(*, extra: Mapping[str, str] | None = None, **resources: Any) -> JobSpec:
    return JobSpec(function=print, resources=Resources.parse(**resources),
                   extra=dict(extra or {}))


def jobcomp_line(job_id: int, state: str, exit_code: str, *, name: str = "wrap",
                 array: tuple[int, int] | None = None) -> str:
    """A line of jobcomp/filetxt's log as Slurm 22.05 writes it."""
    line = (
        f"JobId={job_id} UserId=alice(1000) GroupId=alice(1000) Name={name} "
        f"JobState={state} Partition=debug TimeLimit=UNLIMITED "
        "StartTime=2024-05-01T10:00:00 EndTime=2024-05-01T10:00:05 NodeList=vm NodeCnt=1 "
        "ProcCnt=1 WorkDir=/home/alice ReservationName= "
        "Tres=cpu=1,mem=200M,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown "
        "SubmitTime=2024-05-01T09:59:59 EligibleTime=2024-05-01T09:59:59 "
    )
    if array:
        line += f"ArrayJobId={array[0]} ArrayTaskId={array[1]} "
    return line + f"DerivedExitCode=0:0 ExitCode={exit_code} "  # sic: a trailing space


def done(argv: Sequence[str], code: int = 0, out: str = "", err: str = ""
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(argv), code, out, err)


class Clock:
    """Stands in for a module's ``time``: a monotonic clock that sleeping moves on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class FakeSlurm(Commands):
    """Slurm's tools as a test sets them up: sbatch numbers arrays from 878, squeue and
    sacct print ``squeue_lines`` and ``sacct_lines``; ``replies`` holds answers
    (exit status, stdout, stderr) a tool gives first. Every call is recorded."""

    def __init__(self) -> None:
        super().__init__(retry_for=60.0, first_pause=0.5, longest_pause=4.0)
        self.pauses: list[float] = []
        self.sleep = self.pauses.append
        self.calls: list[list[str]] = []  # each with the program's name, not its path
        self.programs: list[str] = []  # each program as it was run
        self.envs: list[dict[str, str] | None] = []
        self.replies: dict[str, list[tuple[int, str, str]]] = {}
        self.squeue_lines: list[str] = []
        self.sacct_lines: list[str] = []
        self.next_array = 878

    def once(self, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        self.programs.append(argv[0])
        argv = [os.path.basename(argv[0]), *argv[1:]]
        self.calls.append(argv)
        self.envs.append(None if env is None else dict(env))
        queued = self.replies.get(argv[0])
        if queued:
            code, out, err = queued.pop(0)
            return done(argv, code, out, err)
        if argv[0] == "sbatch":
            number = self.next_array
            self.next_array += 1
            return done(argv, 0, f"{number}\n")
        if argv[0] == "squeue":
            return done(argv, 0, "".join(f"{line}\n" for line in self.squeue_lines))
        if argv[0] == "sacct":
            return done(argv, 0, "".join(f"{line}\n" for line in self.sacct_lines))
        return done(argv)

    def of(self, tool: str) -> list[list[str]]:
        return [argv for argv in self.calls if argv[0] == tool]


def option(argv: Sequence[str], name: str) -> str:
    """The value of ``--name=value`` in ``argv``."""
    [value] = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


class Harness:
    def __init__(self, tmp_path: Path, *, cluster: Cluster | None = None,
                 options: SlurmOptions | None = None, max_running: int | None = None) -> None:
        self.tmp_path = tmp_path
        self.slurm = FakeSlurm()
        self.scheduler = SlurmScheduler(cluster or Cluster(), options or SlurmOptions(),
                                        max_running=max_running, commands=self.slurm)

    def launch_of(self, tasks: Sequence[int], *, name: str = "batch", attempt: int = 0,
                  add_env: Mapping[str, str] | None = None, copy_env: bool = False,
                  shell: str | None = None, runner: Sequence[str] = tuple(RUNNER),
                  **resources: Any) -> Launch:
        spec = JobSpec(function=print, resources=Resources.parse(**resources), name=name,
                       working_dir=str(self.tmp_path), copy_env=copy_env,
                       add_env=dict(add_env or {}), interpreting_shell=shell)
        return Launch(spec=spec, tasks=list(tasks), attempt=attempt, log_dir=str(self.tmp_path),
                      runner=list(runner), name=name)

    def launch(self, tasks: Sequence[int], **kwargs: Any) -> list[str]:
        ids: list[str] = self.scheduler.launch(self.launch_of(tasks, **kwargs))
        return ids

    def poll(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        return dict(self.scheduler.poll(ids))


def squeue_call(arrays: str) -> list[str]:
    return ["squeue", "-h", "-r", "-t", "all", "-j", arrays, "-O", SQUEUE_FORMAT]


def fake_tools(directory: Path, names: Sequence[str], scontrol: str = "exit 0") -> None:
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text(f"#!/bin/sh\n{scontrol if name == 'scontrol' else 'exit 0'}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
