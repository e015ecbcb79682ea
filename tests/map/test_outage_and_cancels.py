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
from gridmap_core.map.liveness import Verdict
from gridmap_core.map.outage import Outage
from gridmap_core.map.tasks import ENDED, QUEUED, Task
from gridmap_core.model.death import DeathKind


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


class RefusingLaunches:
    """Refuses launches while ``away``; polls answer that every job runs."""

    def __init__(self) -> None:
        self.away = True
        self.launched = 0

    def launch(self, launch: Launch) -> list[str]:
        if self.away:
            raise RuntimeError("unable to contact qmaster")
        self.launched += 1
        return [f"new{self.launched}"]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {job_id: JobStatus(Status.RUNNING) for job_id in ids}

    def cancel(self, ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


def dead(watch: job_watch.JobWatch, task: Task) -> None:
    watch.died(task, Verdict("no heartbeat for 31 s", kind=DeathKind.NO_HEARTBEAT))


def test_a_resubmission_the_scheduler_refuses_while_away_is_made_when_it_is_back() -> None:
    from tests.map.test_node_failures import watch_of

    scheduler = RefusingLaunches()
    watch, [first, second], sink = watch_of(scheduler, 2)
    dead(watch, first)
    assert first.state == QUEUED and not first.job_id and sink.failures == []
    watch.poll()  # the map's other job is asked about, and the scheduler answers ...
    assert first.state == ENDED  # ... yet refuses again: the job fails, with both causes
    [(index, failure)] = sink.failures
    assert index == 0
    assert "then could not be resubmitted: unable to contact qmaster" in str(
        failure.cause_of_death)
    dead(watch, second)
    scheduler.away = False
    watch.start_poll()  # nothing left to ask about: the launch itself is tried
    assert second.job_id == "new1" and second.state == QUEUED
    assert len(sink.failures) == 1
