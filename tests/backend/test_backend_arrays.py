"""The backend kit's shared pieces, without a scheduler: the tracking of launched jobs
(cancelling a whole array in one request, noticing a job the scheduler stopped listing)
that the Grid Engine and Slurm schedulers use, and opening a monitored session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gridmap_core.backend import SessionOptions
from gridmap_core.backend.arrays import TrackedJob, TrackedJobs
from gridmap_core.backend.scheduler import JobStatus, Launch
from gridmap_core.map.monitor import MonitoredSession, open_monitored
from gridmap_core.model.config import load_settings
from gridmap_core.model.resources import Resources


def track(jobs: TrackedJobs[TrackedJob], array: str, count: int) -> list[str]:
    """Add an array of ``count`` elements, ids ``ARRAY.1`` …; return the ids."""
    ids = [f"{array}.{i}" for i in range(1, count + 1)]
    for job_id in ids:
        jobs.add(job_id, TrackedJob(array, Resources(), f"/logs/{job_id}.err"))
    return ids


@pytest.fixture
def jobs() -> TrackedJobs[TrackedJob]:
    return TrackedJobs()


# -- cancelling ------------------------------------------------------------------------


def test_a_refused_cancel_is_asked_again(jobs: TrackedJobs[TrackedJob]) -> None:
    # The scheduler's controller was away: the request failed, so the next cancel of the
    # same jobs must ask again, not count them stopped.
    ids = track(jobs, "200", 3)
    single = track(jobs, "300", 1)
    targets = jobs.cancel([*ids, *single])
    assert targets == ["200", "300.1"]
    assert jobs.cancel([*ids, *single]) == []
    jobs.uncancel(targets)
    assert jobs.cancel([*ids, *single]) == ["200", "300.1"]
    jobs.uncancel(["300.1"])
    assert jobs.cancel(single) == ["300.1"]


def test_cancelling_every_element_is_the_array(jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 3)
    assert jobs.cancel(ids) == ["100"]
    assert all(job.cancelled for job in map(jobs.get, ids) if job)


def test_cancelling_part_of_an_array_names_the_elements(
        jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 3)
    assert jobs.cancel([ids[2], ids[0]]) == [ids[2], ids[0]]  # in the order asked
    # The last one still out completes the array, but alone it is named as itself.
    assert jobs.cancel(ids) == [ids[1]]


def test_cancelling_twice_stops_once(jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 2)
    assert jobs.cancel(ids) == ["100"]
    assert jobs.cancel(ids) == []
    assert jobs.cancel([*ids, ids[0]]) == []


def test_ids_not_tracked_are_left_out(jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 2)
    assert jobs.cancel(["999.1", "999"]) == []
    assert jobs.cancel([*ids, "999.2"]) == ["100"]


def test_cancelling_the_rest_of_an_array_is_the_array(jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 4)
    assert jobs.pop(ids[0]) is not None  # ended and reported: no longer out
    assert jobs.cancel(ids[1:]) == ["100"]


def test_an_array_with_an_element_still_running_is_cancelled_element_by_element(
        jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 3)
    assert jobs.cancel(ids[:2]) == ids[:2]


def test_several_arrays_at_once(jobs: TrackedJobs[TrackedJob]) -> None:
    first = track(jobs, "100", 2)
    second = track(jobs, "200", 3)
    lone = track(jobs, "300", 1)
    assert jobs.cancel([second[1], *first, *lone]) == [second[1], "100", lone[0]]


def test_a_popped_array_is_forgotten_whole(jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 2)
    for job_id in ids:
        assert jobs.pop(job_id) is not None
    assert jobs.pop(ids[0]) is None
    assert len(jobs) == 0 and ids[0] not in jobs and list(jobs) == []
    # An array id used again (a scheduler's numbers wrap) starts with no old members.
    again = track(jobs, "100", 2)
    assert jobs.cancel(again) == ["100"]


def test_clear_forgets_every_job(jobs: TrackedJobs[TrackedJob]) -> None:
    ids = track(jobs, "100", 2)
    jobs.clear()
    assert jobs.cancel(ids) == [] and jobs.get(ids[0]) is None


# -- vanishing from the queue --------------------------------------------------------------


def test_the_first_absence_is_only_noted_whatever_the_limit() -> None:
    job = TrackedJob("100", Resources(), "")
    assert job.absent(1000.0, 0.0) is False
    assert job.absent_since == 1000.0
    assert job.absent(1000.0, 0.0) is True


def test_an_absence_counts_from_its_first_poll() -> None:
    job = TrackedJob("100", Resources(), "")
    assert job.absent(1000.0, 30.0) is False
    assert job.absent(1029.9, 30.0) is False
    assert job.absent(1030.0, 30.0) is True
    # A later, longer limit is measured from the same first absence.
    assert job.absent(1030.0, 30.1) is False


def test_being_listed_again_starts_an_absence_over() -> None:
    job = TrackedJob("100", Resources(), "")
    job.absent(1000.0, 30.0)
    job.listed()
    assert job.absent_since is None
    assert job.absent(1025.0, 30.0) is False
    assert job.absent(1040.0, 30.0) is False
    assert job.absent(1055.0, 30.0) is True


# -- opening a monitored session -----------------------------------------------------------


class ClosingScheduler:
    """A scheduler that only records whether it was closed."""

    def __init__(self) -> None:
        self.closed = 0

    def launch(self, launch: Launch) -> list[str]:
        raise AssertionError("nothing is launched here")

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {}

    def cancel(self, ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        self.closed += 1


def test_a_session_that_cannot_start_closes_its_scheduler(tmp_path: Path) -> None:
    scheduler = ClosingScheduler()
    options = SessionOptions(settings=load_settings({"TRANSPORT": "carrier-pigeon"}),
                             temp_dir=str(tmp_path))
    with pytest.raises(Exception, match="carrier-pigeon"):
        open_monitored(scheduler, options, name="test-monitor")
    assert scheduler.closed == 1


def test_a_session_opens_in_the_work_dir_with_the_python_asked_for(tmp_path: Path) -> None:
    scheduler = ClosingScheduler()
    options = SessionOptions(settings=load_settings({}), temp_dir=str(tmp_path / "unused"))
    session = open_monitored(scheduler, options, name="test-monitor",
                             python="/opt/py/bin/python", work_dir=str(tmp_path))
    try:
        assert isinstance(session, MonitoredSession)
        assert session.directory.parent == tmp_path
        assert session.runner[0] == "/opt/py/bin/python"
        assert scheduler.closed == 0
    finally:
        session.close()
    assert scheduler.closed == 1
