"""The scheduler away and back: one warning each way, and cancels retried off the
monitor's thread until the scheduler takes them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

import pytest

from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.map import job_watch
from gridmap_core.map.cancels import Canceller
from gridmap_core.map.outage import Outage


class AwayScheduler:
    """Refuses every cancel while ``away`` is set; records what it cancelled."""

    def __init__(self) -> None:
        self.away = threading.Event()
        self.cancelled: list[str] = []
        self.calls = 0
        self.threads: set[str] = set()

    def launch(self, launch: Launch) -> list[str]:
        raise AssertionError("not launched here")

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {}

    def cancel(self, ids: Sequence[str]) -> None:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.away.is_set():
            raise RuntimeError("unable to contact qmaster")
        self.cancelled.extend(ids)

    def close(self) -> None:
        pass


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def test_one_warning_when_the_scheduler_goes_away_and_one_when_it_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage()
    with caplog.at_level(logging.DEBUG, logger="gridmap_core.map.monitor"):
        for _ in range(5):
            outage.failed("ask about 48 jobs", "error: unable to contact qmaster")
        assert outage.away
        outage.answered()
        outage.answered()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "does not answer" in warnings[0] and "unable to contact qmaster" in warnings[0]
    assert "answers again" in warnings[1] and "5 failed calls" in warnings[1]
    assert not outage.away


def test_cancels_run_off_the_callers_thread_and_are_retried_until_taken() -> None:
    scheduler = AwayScheduler()
    scheduler.away.set()
    canceller = Canceller(scheduler, Outage(), retry_every=0.05)
    canceller.cancel(["1.1", "1.2"])
    canceller.cancel(["1.3"])
    wait_for(lambda: scheduler.calls >= 3)
    assert scheduler.cancelled == []
    assert sorted(canceller.pending) == ["1.1", "1.2", "1.3"]
    scheduler.away.clear()
    wait_for(lambda: len(scheduler.cancelled) == 3)
    assert sorted(scheduler.cancelled) == ["1.1", "1.2", "1.3"]
    assert threading.current_thread().name not in scheduler.threads
    assert canceller.close(5.0) == []


def test_closing_hands_back_what_the_scheduler_still_refuses() -> None:
    scheduler = AwayScheduler()
    scheduler.away.set()
    canceller = Canceller(scheduler, Outage(), retry_every=60.0)
    canceller.cancel(["7.1", "7.2"])
    wait_for(lambda: scheduler.calls >= 1)
    # Closing wakes the thread from its 60 s pause for one more try, which fails too.
    left = canceller.close(5.0)
    assert sorted(left) == ["7.1", "7.2"]
    assert scheduler.calls == 2


def test_a_canceller_never_used_closes_at_once() -> None:
    assert Canceller(AwayScheduler(), Outage()).close(1.0) == []


class BlockingScheduler(AwayScheduler):
    """Its polls wait until ``answer`` is set, as squeue waits for a restarting
    slurmctld; it says the jobs run."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = threading.Event()

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        self.answer.wait(30)
        return {job_id: JobStatus(Status.RUNNING) for job_id in ids}


def test_a_slow_poll_runs_beside_the_monitor_and_is_told(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.map.test_node_failures import watch_of

    monkeypatch.setattr(job_watch, "SLOW_POLL", 0.2)
    scheduler = BlockingScheduler()
    watch, [task], _ = watch_of(scheduler)
    with caplog.at_level(logging.WARNING, logger="gridmap_core.map.monitor"):
        watch.start_poll()  # returns at once: the poll waits on a thread of its own
        assert watch.in_flight is not None

        def told() -> bool:
            watch.collect()
            return bool(caplog.records)

        def answered() -> bool:
            watch.collect()
            return watch.in_flight is None

        def applied() -> bool:  # the scheduler's "running" reached the task
            return task.running_since is not None

        wait_for(told)
        assert "does not answer" in caplog.records[0].getMessage()
        assert not applied()
        watch.start_poll()  # one poll at a time
        scheduler.answer.set()
        wait_for(answered)
    assert applied()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2 and "answers again" in messages[1], messages
