"""The local ProcessScheduler adopting jobs of another process: their runners died with
it, so they are reported ended, and the runners have no command to cancel with."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gridmap_local.processes import ProcessScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import Launch, Status
from gridmap_core.model.death import DeathKind

pytestmark = pytest.mark.timeout(60)


def _noop() -> None:
    pass


@pytest.fixture
def scheduler() -> Iterator[ProcessScheduler]:
    made = ProcessScheduler(max_processes=2)
    yield made
    made.close()


def test_adopted_ids_are_reported_ended_at_the_next_poll(scheduler: ProcessScheduler) -> None:
    other = ProcessScheduler(max_processes=1)  # the submitter that died
    try:
        launch = Launch(spec=JobSpec(function=_noop), tasks=[0, 1], attempt=0,
                        log_dir="/tmp", runner=[sys.executable, "-c", "pass"])
        ids = other.launch(launch)  # only the ids outlive it
    finally:
        other.close()
    soon: list[bool] = []
    scheduler.poll_soon = lambda: soon.append(True)
    scheduler.adopt(ids)
    report = scheduler.poll(ids)
    assert set(report) == set(ids)
    for status in report.values():
        assert status.status is Status.ENDED, status
        assert status.kind is DeathKind.VANISHED
        assert "ended with it" in status.cause and status.resubmit
    assert soon  # the monitor hears of it without waiting for its next poll


def test_adopting_does_not_touch_jobs_of_its_own(tmp_path: Path,
                                                scheduler: ProcessScheduler) -> None:
    launch = Launch(spec=JobSpec(function=_noop, working_dir=str(tmp_path)), tasks=[0],
                    attempt=0, log_dir=str(tmp_path),
                    runner=[sys.executable, "-c", "import time; time.sleep(30)"])
    [own] = scheduler.launch(launch)
    scheduler.adopt([own])
    assert scheduler.poll([own])[own].status in (Status.QUEUED, Status.RUNNING)
    scheduler.cancel([own])


def test_local_runners_have_no_cancel_command(scheduler: ProcessScheduler) -> None:
    assert scheduler.cancel_command() == []
