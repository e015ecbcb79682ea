"""GridMapExecutor behaves as a concurrent.futures.Executor."""

from __future__ import annotations

import time
from concurrent.futures import CancelledError, Executor, as_completed

import pytest

from gridmap_core import GridMapExecutor, Job, JobException
from tests.support import jobs


def test_is_an_executor_with_futures() -> None:
    with GridMapExecutor("local", max_processes=2) as executor:
        assert isinstance(executor, Executor)
        futures = [executor.submit(jobs.add, i, 1, c=10) for i in range(6)]
        assert sorted(f.result(timeout=30) for f in as_completed(futures)) == [
            11, 12, 13, 14, 15, 16]


def test_map_in_order_with_several_iterables() -> None:
    with GridMapExecutor("local", max_processes=2) as executor:
        assert list(executor.map(jobs.add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
        assert list(executor.map(jobs.double, [])) == []


def test_future_raises_the_remote_exception_with_its_traceback() -> None:
    with GridMapExecutor("local") as executor:
        future = executor.submit(jobs.fail_on, 3)
        with pytest.raises(ValueError, match="bad input 3") as info:
            future.result(timeout=30)
    notes = "".join(getattr(info.value, "__notes__", []))
    assert "Remote traceback" in notes
    assert "fail_on" in notes


def test_map_raises_at_the_failed_item() -> None:
    with GridMapExecutor("local") as executor:
        results = executor.map(jobs.fail_on, [1, 3, 4])
        assert next(results) == 1
        with pytest.raises(JobException, match="bad input 3"):
            next(results)


def test_futures_can_be_cancelled_before_they_run() -> None:
    with GridMapExecutor("local", max_processes=1) as executor:
        first = executor.submit(jobs.sleep_then, 1.0)
        queued = [executor.submit(jobs.double, i) for i in range(3)]
        time.sleep(0.2)  # the single worker is now busy with the first job
        assert all(f.cancel() for f in queued)
        assert first.result(timeout=30) == 1.0
    assert all(f.cancelled() for f in queued)
    with pytest.raises(CancelledError):
        queued[0].result()


def test_submit_job_fills_the_job() -> None:
    job = Job(jobs.double, [21], name="answer")
    with GridMapExecutor("local") as executor:
        assert executor.submit_job(job).result(timeout=30) == 42
    assert job.ret == 42
    assert job.backend == "local"


def test_no_submissions_after_shutdown() -> None:
    executor = GridMapExecutor("local")
    executor.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(jobs.double, 1)


def test_job_options_are_validated_up_front() -> None:
    with pytest.raises(ValueError, match="mem_free='x'"):
        GridMapExecutor("local", mem_free="x")
    with pytest.raises(TypeError, match="unknown job option"):
        GridMapExecutor("local", memory="1G")


def test_shutdown_without_wait_lets_submitted_jobs_finish() -> None:
    executor = GridMapExecutor("local")
    future = executor.submit(jobs.sleep_then, 0.5)
    started = time.monotonic()
    executor.shutdown(wait=False)
    assert time.monotonic() - started < 0.3
    assert future.result(timeout=30) == 0.5


def test_a_loop_of_submits_shares_chunks_and_keeps_every_result() -> None:
    with GridMapExecutor("local", max_processes=2) as executor:
        futures = [executor.submit(jobs.add, i, i) for i in range(500)]
        slow = [executor.submit(jobs.sleep_then, 0.15) for _ in range(3)]
        assert [f.result(timeout=60) for f in futures] == [2 * i for i in range(500)]
        assert [f.result(timeout=60) for f in slow] == [0.15] * 3
