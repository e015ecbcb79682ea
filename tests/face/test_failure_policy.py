"""on_failure: raise after every job ended, return exceptions, or cancel the rest."""

from __future__ import annotations

import time

import pytest

from gridmap_core import Job, JobException, JobState, grid_map, process_jobs
from tests.support import jobs


def slow_or_fail(x: int) -> int:
    if x == 0:
        raise ValueError("first one fails")
    time.sleep(0.3)
    return x


def test_raise_is_the_default_and_waits_for_every_job() -> None:
    with pytest.raises(JobException) as info:
        grid_map(slow_or_fail, range(4), local=True, max_processes=2)
    assert info.value.cancelled == 0
    assert "1 of 4 jobs failed:" in str(info.value)


def test_return_puts_exceptions_in_place_of_results() -> None:
    results = grid_map(lambda x: jobs.fail_on(x, (1, 3)), range(5), local=True,
                       on_failure="return")
    assert [type(r).__name__ for r in results] == ["int", "ValueError", "int", "ValueError",
                                                    "int"]
    assert results[0] == 0 and results[4] == 4


def test_return_gives_a_job_exception_for_a_job_that_died() -> None:
    results = grid_map(jobs.kill_self_on, range(4), local=True, on_failure="return")
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], JobException)
    assert "killed by SIGKILL" in str(results[2])


def test_cancel_stops_the_rest_at_the_first_failure() -> None:
    started = time.monotonic()
    with pytest.raises(JobException) as info:
        grid_map(slow_or_fail, range(40), local=True, max_processes=2, on_failure="cancel")
    elapsed = time.monotonic() - started
    error = info.value
    assert [job.name for job in error.jobs] == ["gridmap_job0"]
    assert error.cancelled > 20  # 40 jobs of 0.3 s on 2 workers would take 6 s
    assert "more cancelled after the first failure" in str(error)
    assert elapsed < 4


def test_cancel_with_process_jobs_marks_jobs_cancelled() -> None:
    job_list = [Job(slow_or_fail, [x]) for x in range(20)]
    with pytest.raises(JobException) as info:
        process_jobs(job_list, local=True, max_processes=2, on_failure="cancel")
    assert job_list[0].state is JobState.FAILED
    states = {job.state for job in job_list[1:]}
    assert JobState.CANCELLED in states
    assert states <= {JobState.CANCELLED, JobState.DONE}
    assert info.value.cancelled == sum(j.state is JobState.CANCELLED for j in job_list)


def test_process_jobs_return_policy() -> None:
    job_list = [Job(jobs.fail_on, [x]) for x in (1, 3)]
    results = process_jobs(job_list, local=True, on_failure="return")
    assert results[0] == 1
    assert isinstance(results[1], ValueError)


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="on_failure='ignore'"):
        grid_map(jobs.double, [1], local=True, on_failure="ignore")
