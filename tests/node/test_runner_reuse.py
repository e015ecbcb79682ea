"""REUSE_RUNNERS: a runner that finishes its job takes another queued job of the same
request, under that job's id; the scheduler job that job was submitted as never runs
it. Local backend, runner mode: real runner processes and the real monitor."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from gridmap_local.processes import ProcessScheduler

from gridmap_core import Job
from gridmap_core.backend import Batch, JobSpec, SessionOptions
from gridmap_core.backend.scheduler import Status
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run
from gridmap_core.model.config import load_settings
from gridmap_core.node.runner import EXIT_STOPPED
from gridmap_core.testing import EventRecorder
from tests.support import monitored


def test_runners_take_on_queued_jobs_and_results_stay_in_order() -> None:
    jobs = [Job(monitored.where, [x], name=f"job{x}") for x in range(12)]
    with EventRecorder().listening() as recorder, \
            monitored.runner_executor(max_processes=2) as executor:
        executor.run_jobs(jobs)
    assert [job.ret[0] for job in jobs] == [x * x for x in range(12)]
    # Each job runs in a process forked from its runner: the runner is its parent.
    runners = {job.ret[3] for job in jobs}
    assert len(runners) < len(jobs), "no runner took on a second job"
    # A job's id is the scheduler job of the runner that ran it: one id per runner.
    by_runner: dict[int, set[str | int]] = {}
    for job in jobs:
        by_runner.setdefault(job.ret[3], set()).add(job.id)
        assert job.ret[2][0].endswith("gridmap_core/node/runner.py")
    assert all(len(ids) == 1 for ids in by_runner.values()), by_runner
    assert len({job.id for job in jobs}) == len(runners)
    for job in jobs:
        assert recorder.of(job.name) == ["submitted", "started", "finished"], job.name
        assert set(recorder.ids(job.name)[1:]) == {job.id}
        assert job.num_resubmits == 0


def test_off_each_job_has_a_runner_of_its_own() -> None:
    jobs = [Job(monitored.where, [x]) for x in range(6)]
    with monitored.runner_executor({"REUSE_RUNNERS": False}, max_processes=2) as executor:
        executor.run_jobs(jobs)
    assert len({job.ret[3] for job in jobs}) == 6
    assert len({job.id for job in jobs}) == 6


def test_jobs_with_a_runtime_limit_are_never_taken_on() -> None:
    # h_rt is a limit on the scheduler job: a runner that ran two jobs could exceed it.
    jobs = [Job(monitored.where, [x], h_rt=600) for x in range(6)]
    with monitored.runner_executor(max_processes=2) as executor:
        executor.run_jobs(jobs)
    assert len({job.ret[3] for job in jobs}) == 6


def test_jobs_of_another_request_are_not_taken_on() -> None:
    jobs = [Job(monitored.where, [x], mem_free=f"{x + 1}G") for x in range(6)]
    with monitored.runner_executor(max_processes=2) as executor:
        executor.run_jobs(jobs)
    assert [job.ret[0] for job in jobs] == [x * x for x in range(6)]
    assert len({job.ret[3] for job in jobs}) == 6


def record_pid_then(marker: str, seconds: float, value: int) -> tuple[int, int]:
    """The value and the pid of the runner (the parent of the job's process); the
    first call with ``marker`` writes the job's pid and its runner's there and sleeps
    ``seconds`` first."""
    path = Path(marker)
    if not path.exists():
        path.write_text(f"{os.getpid()} {os.getppid()}")  # job, runner
        time.sleep(seconds)
    return value, os.getppid()


def test_a_taken_job_whose_runner_is_killed_is_resubmitted(tmp_path: Path) -> None:
    # One runner at a time, and one function (a request) for all three jobs: the first
    # runner, done with "first", takes the last queued job, which records its runner's
    # pid and sleeps. Killing that runner kills the taken job (its process dies with
    # the runner).
    done, marker = tmp_path / "done", tmp_path / "taken"
    done.write_text("")
    jobs = [Job(record_pid_then, [str(done), 0, 3], name="first"),
            Job(record_pid_then, [str(done), 0, 4], name="second"),
            Job(record_pid_then, [str(marker), 300, 7], name="taken")]
    with EventRecorder().listening() as recorder, \
            monitored.runner_executor(max_processes=1) as executor:
        running = threading.Thread(target=executor.run_jobs, args=(jobs,))
        running.start()
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()):
            assert time.monotonic() < deadline, "the taken job never ran"
            time.sleep(0.05)
        os.kill(int(marker.read_text().split()[1]), signal.SIGKILL)
        running.join(60)
        assert not running.is_alive()
    assert int(marker.read_text().split()[1]) == jobs[0].ret[1], \
        "the job was not taken by first's runner"
    assert [job.ret[0] for job in jobs] == [3, 4, 7]
    assert jobs[2].num_resubmits == 1 and jobs[2].cause_of_death
    assert recorder.of("taken") == ["submitted", "started", "resubmitted", "started",
                                    "finished"]
    first_id, *_, last_id = recorder.ids("taken")[1:]
    assert first_id == jobs[0].id and last_id == jobs[2].id != first_id


class DeafToCancels(ProcessScheduler):
    """Starts every runner it was asked to, cancelled or not, and keeps their ends."""

    def __init__(self, max_processes: int) -> None:
        super().__init__(max_processes)
        self.cancelled: list[str] = []

    def cancel(self, ids: Sequence[str]) -> None:
        self.cancelled.extend(ids)


def test_a_runner_whose_job_was_taken_is_told_to_stop_if_it_starts(tmp_path: Path) -> None:
    settings = load_settings({**monitored.FAST, "NUM_RESUBMITS": 0})
    scheduler = DeafToCancels(1)  # one runner at a time: the first takes the others
    session = MonitoredSession(scheduler, SessionOptions(settings=settings),
                               work_dir=str(tmp_path))
    run = Run(4)
    try:
        session.submit(Batch(JobSpec(monitored.where), [(x,) for x in range(4)], None, run))
        assert run.wait(timeout=60)
        taken = list(scheduler.cancelled)
        assert taken, "no job was taken on"
        # The runners of the taken jobs start anyway, fetch, and are told to stop.
        deadline = time.monotonic() + 30
        while True:
            ends = scheduler.poll(taken)
            if all(status.status is Status.ENDED for status in ends.values()):
                break
            assert time.monotonic() < deadline, ends
            time.sleep(0.1)
    finally:
        session.close()
    assert run.failures == {}
    assert [value[0] for value in run.values] == [0, 1, 4, 9]
    assert len({value[3] for value in run.values}) == 1  # all in the first runner
    assert {status.exit_status for status in ends.values()} == {EXIT_STOPPED}, ends
