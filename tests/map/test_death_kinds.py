"""A lost job's kind of death (DeathKind) is decided where its cause is, and reaches
its Job, its Failure and the events, beside the words of its cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmap_core import Job, JobException, JobState
from gridmap_core.backend import Failure
from gridmap_core.model.death import DeathKind
from tests.support import monitored
from tests.support.monitored import runner_executor


def test_a_runner_that_exits_without_a_result_died_of_exiting() -> None:
    jobs = [Job(monitored.sleep_for, [0])]
    with runner_executor({"NUM_RESUBMITS": 0}, python="/bin/false") as executor, \
            pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].state is JobState.DEAD and jobs[0].death_kind is DeathKind.EXITED


def test_a_runner_that_cannot_be_started_is_a_failed_runner(tmp_path: Path) -> None:
    jobs = [Job(monitored.sleep_for, [0])]
    with runner_executor({"NUM_RESUBMITS": 0}, python=str(tmp_path / "no-python")) \
            as executor, pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].death_kind is DeathKind.RUNNER_FAILED


def test_a_job_over_its_memory_limit_died_out_of_memory() -> None:
    jobs = [Job(monitored.hog_memory, [300], h_vmem="150M")]
    with runner_executor({"NUM_RESUBMITS": 0}) as executor, pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].death_kind is DeathKind.OUT_OF_MEMORY


def test_a_job_that_raised_has_no_kind_of_death() -> None:
    jobs = [Job(monitored.raise_value_error, [7])]
    with runner_executor() as executor, pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].state is JobState.FAILED and jobs[0].death_kind is None


def test_a_death_the_backend_gave_no_kind_for_is_other() -> None:
    untold, told = Job(monitored.sleep_for, [0]), Job(monitored.sleep_for, [0])
    untold.record_failure(Failure(None, None, "node1", "the worker vanished"))
    told.record_failure(Failure(None, None, "node1", "killed", death_kind=DeathKind.KILLED))
    assert (untold.death_kind, told.death_kind) == (DeathKind.OTHER, DeathKind.KILLED)
