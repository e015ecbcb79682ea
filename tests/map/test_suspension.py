"""A job the scheduler suspends is not dead: its liveness clock stands still while the
scheduler says it is suspended, and goes on when it is resumed. The monitor with a
scheduler that only reports, and the local backend's runner mode with SIGSTOP and
SIGCONT."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from gridmap_local.processes import stopped

from gridmap_core import Job
from gridmap_core.backend import Batch, JobSpec, SessionOptions
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run
from gridmap_core.model.config import load_settings
from tests.support import monitored, suspension_jobs
from tests.support.monitored import runner_executor


class ReportingScheduler:
    """Launches nothing; reports every job in the state the test sets."""

    def __init__(self) -> None:
        self.status = Status.RUNNING
        self.polls = 0

    def launch(self, launch: Launch) -> list[str]:
        return [f"9.{task}" for task in launch.tasks]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        self.polls += 1
        return {job_id: JobStatus(self.status) for job_id in ids}

    def cancel(self, ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


def _polls_after(scheduler: ReportingScheduler, count: int) -> None:
    """Wait until the monitor has polled ``count`` more times."""
    until = scheduler.polls + count
    deadline = time.monotonic() + 30
    while scheduler.polls < until:
        assert time.monotonic() < deadline, "the monitor stopped polling"
        time.sleep(0.05)


def test_a_suspended_job_is_not_dead_and_its_clock_goes_on_when_resumed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({**monitored.FAST, "CHECK_FREQUENCY": 0.2,
                              "MAX_TIME_BETWEEN_HEARTBEATS": 2, "NUM_RESUBMITS": 0})
    scheduler = ReportingScheduler()
    session = MonitoredSession(scheduler, SessionOptions(settings=settings),
                               work_dir=str(tmp_path))
    run = Run(1)
    caplog.set_level(logging.INFO, logger="gridmap_core.map.monitor")
    try:
        session.submit(Batch(JobSpec(monitored.sleep_for), [(1,)], None, run))
        _polls_after(scheduler, 1)  # seen running: its clock started
        scheduler.status = Status.SUSPENDED
        _polls_after(scheduler, 2)
        # Suspended for far longer than MAX_TIME_BETWEEN_HEARTBEATS: still alive.
        time.sleep(5)
        assert run.failures == {} and run.remaining == 1
        scheduler.status = Status.RUNNING  # resumed: it never contacts the monitor
        assert run.wait(timeout=30)
    finally:
        session.close()
    cause = run.failures[0].cause_of_death
    assert cause is not None and "without contacting the monitor" in cause
    messages = [record.getMessage() for record in caplog.records]
    assert any("is suspended by the scheduler" in m for m in messages)
    assert any("was resumed after" in m for m in messages)


def test_a_runner_stopped_and_continued_locally_finishes_without_resubmission(
        tmp_path: Path) -> None:
    marker = tmp_path / "group"
    jobs = [Job(suspension_jobs.freeze_once, [str(marker)], name="frozen"),
            Job(monitored.sleep_for, [0.5], name="other")]

    def resume_later() -> None:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the job never stopped itself"
            time.sleep(0.05)
        group = int(marker.read_text())
        while not stopped(group):
            time.sleep(0.05)
        time.sleep(6)  # three times MAX_TIME_BETWEEN_HEARTBEATS
        os.killpg(group, signal.SIGCONT)

    resumer = threading.Thread(target=resume_later)
    resumer.start()
    settings = {"MAX_TIME_BETWEEN_HEARTBEATS": 2, "CHECK_FREQUENCY": 0.2, "NUM_RESUBMITS": 1}
    with runner_executor(settings) as executor:
        executor.run_jobs(jobs)
    resumer.join()
    assert [job.ret for job in jobs] == ["resumed", 0.5]
    assert jobs[0].num_resubmits == 0
