"""Runners that come back after their attempt was given up (a node cut off from the
network for longer than MAX_TIME_BETWEEN_HEARTBEATS, then plugged back in): the monitor
in this process, with a scheduler that launches nothing, and runners played by hand
with the runner's own Link. Each job's result reaches the user once, from the attempt
that replaced the lost one; what the old runner sends is answered STOP, ignored, and
logged with the job, the attempt and the host."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gridmap_core.backend import Batch, JobSpec, SessionOptions
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run
from gridmap_core.model.config import load_settings
from gridmap_core.node.link import Link
from gridmap_core.transports import Client, load_transport
from gridmap_core.wire.messages import Heartbeat, encode_heartbeat, encode_value
from gridmap_core.wire.protocol import Codec, Kind, read_key_file
from tests.support import monitored

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0  # generous: the machine may be loaded


class RunningScheduler:
    """Launches nothing and reports every job running, as a scheduler does for a job on
    a node it cannot reach yet."""

    def __init__(self) -> None:
        self.launched: list[int] = []  # task ids, one per launch of each

    def launch(self, launch: Launch) -> list[str]:
        self.launched.extend(launch.tasks)
        return [f"7.{task}" for task in launch.tasks]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {job_id: JobStatus(Status.RUNNING) for job_id in ids}

    def cancel(self, ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


class CountingRun(Run):
    """A Run that counts how many times each job's result is delivered."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.deliveries = [0] * size

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        for index in indices:
            self.deliveries[index] += 1
        super().succeeded(indices, values, host_name)


class HandRunner:
    """One attempt of one task, played by the test: the runner's Link over zmq."""

    def __init__(self, session: MonitoredSession, task: int, attempt: int, host: str) -> None:
        keys = read_key_file(session.key_file)
        codec = Codec(keys.mac, session.map_id)
        self.client: Client = load_transport("zmq").connect(session.address,
                                                            {"curve": keys.curve})
        self.link = Link(self.client, codec, task, attempt)
        self.host = host

    def send(self, kind: Kind, payload: bytes = b"") -> tuple[Kind, str]:
        reply = self.link.exchange(kind, payload, WAIT)
        text = "" if reply.header.kind is Kind.TASK else bytes(reply.payload).decode()
        return reply.header.kind, text

    def heartbeat(self) -> tuple[Kind, str]:
        beat = Heartbeat(cpu=50.0, memory=2**20, host_name=self.host, status="running",
                         processes=1, log_tail="")
        return self.send(Kind.HEARTBEAT, encode_heartbeat(beat))

    def result(self, value: Any) -> tuple[Kind, str]:
        return self.send(Kind.RESULT, encode_value(value, self.host))


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "gridmap_core.map.monitor" and record.levelno >= logging.WARNING]


def test_a_runner_back_after_its_job_was_resubmitted_is_stopped_ignored_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({**monitored.FAST, "CHECK_FREQUENCY": 0.2,
                              "MAX_TIME_BETWEEN_HEARTBEATS": 2, "NUM_RESUBMITS": 2,
                              "REUSE_RUNNERS": False})
    scheduler = RunningScheduler()
    session = MonitoredSession(scheduler, SessionOptions(settings=settings),
                               work_dir=str(tmp_path))
    run = CountingRun(2)
    caplog.set_level(logging.INFO, logger="gridmap_core.map.monitor")
    runners: list[HandRunner] = []
    try:
        session.submit(Batch(JobSpec(monitored.sleep_for, name="cut"), [(1,), (2,)], None,
                             run))
        old = [HandRunner(session, task, 0, "old-node") for task in (0, 1)]
        runners += old
        for runner in old:
            assert runner.send(Kind.FETCH)[0] is Kind.TASK
            assert runner.heartbeat() == (Kind.ACK, "")
        # The old runners fall silent (their node is cut off): both jobs are counted
        # dead and launched again, as attempt 1.
        _wait_for(lambda: sorted(scheduler.launched) == [0, 0, 1, 1], "the resubmissions")
        new = [HandRunner(session, task, 1, "new-node") for task in (0, 1)]
        runners += new
        for runner in new:
            assert runner.send(Kind.FETCH)[0] is Kind.TASK
        assert sum("resubmitting" in m for m in _warnings(caplog)) == 2

        # The cut heals while the new attempts run: the old runners are told to stop,
        # the late result is not delivered.
        assert old[0].heartbeat() == (Kind.STOP, "superseded by attempt 1")
        assert old[1].result("late one") == (Kind.STOP, "superseded by attempt 1")
        assert run.deliveries == [0, 0]

        assert new[0].result("first") == (Kind.ACK, "")
        assert new[1].result("second") == (Kind.ACK, "")
        # A result retried by its runner (the acknowledgement was lost) is acknowledged
        # again, and not delivered again.
        assert new[0].result("first") == (Kind.ACK, "")
        # The old runner's result after the job ended: stopped, never delivered.
        assert old[0].result("late zero") == (Kind.STOP, "this job has ended")
        assert run.wait(timeout=WAIT)
    finally:
        for runner in runners:
            runner.client.close()
        session.close()
    assert run.values == ["first", "second"]
    assert run.deliveries == [1, 1]
    assert run.failures == {}
    warnings = _warnings(caplog)
    # Each late message logged once, with the job, the attempt and the host.
    assert [m for m in warnings if m.startswith("a heartbeat")] == [
        "a heartbeat of cut0 (task 0) attempt 0 came from old-node after that attempt was "
        "given up (attempt 1 has replaced it and runs); its runner is told to stop. That copy "
        "of the job ran on out of the monitor's sight, so the job's side effects may have "
        "happened twice"]
    late = [m for m in warnings if m.startswith("ignored the late result")]
    assert late == [
        "ignored the late result of cut1 (task 1) attempt 0 from old-node: that attempt was "
        "given up and attempt 1 has replaced it and runs; its runner is told to stop",
        "ignored the late result of cut0 (task 0) attempt 0 from old-node: that attempt was "
        "given up and the job's result came from attempt 1; its runner is told to stop"]


def test_a_result_after_the_job_failed_for_silence_is_ignored_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({**monitored.FAST, "CHECK_FREQUENCY": 0.2,
                              "MAX_TIME_BETWEEN_HEARTBEATS": 2, "NUM_RESUBMITS": 0})
    scheduler = RunningScheduler()
    session = MonitoredSession(scheduler, SessionOptions(settings=settings),
                               work_dir=str(tmp_path))
    run = CountingRun(1)
    caplog.set_level(logging.INFO, logger="gridmap_core.map.monitor")
    old = HandRunner(session, 0, 0, "old-node")
    try:
        session.submit(Batch(JobSpec(monitored.sleep_for, name="lost"), [(1,)], None, run))
        assert old.send(Kind.FETCH)[0] is Kind.TASK
        assert run.wait(timeout=WAIT)  # silent, and no resubmission left: failed
        assert old.result("too late") == (Kind.STOP, "this job has ended")
    finally:
        old.client.close()
        session.close()
    assert run.deliveries == [0]
    cause = run.failures[0].cause_of_death
    assert cause is not None and cause.startswith("no heartbeat")
    assert [m for m in _warnings(caplog) if m.startswith("ignored")] == [
        "ignored the late result of task 0 attempt 0 from old-node: that attempt was given "
        "up and the job has ended without a result; its runner is told to stop"]
