"""A runner cut off from the monitor: it gives up at ``--give-up`` seconds after the
monitor's last answer (when the monitor counts the job dead and launches it again), and a
runner whose result comes too late, the monitor having given its attempt up, stops with
status 4 instead of reporting success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gridmap_core.node.heartbeats as heartbeats
from gridmap_core.node.heartbeats import HeartbeatThread
from gridmap_core.node.runner import EXIT_STOPPED
from gridmap_core.transports import TransportTimeout
from gridmap_core.wire.exits import EXIT_LOST
from gridmap_core.wire.messages import Heartbeat
from gridmap_core.wire.protocol import Kind, Message
from tests.node.test_runner import Frames, Monitor, Received, run_runner, serving, task_of
from tests.support import runner_jobs

pytestmark = pytest.mark.timeout(120)


class Clock:
    """A monotonic clock the test moves: the runner's timing, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class CutLink:
    """A link to a monitor that never answers: each exchange takes its whole timeout."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timeouts: list[float] = []

    def exchange(self, kind: Kind, payload: Any, timeout: float) -> Message:
        self.timeouts.append(timeout)
        self.clock.now += timeout
        raise TransportTimeout(f"no reply within {timeout:g} s")


class Ended(Exception):
    """end_runner was called: (status, message, clock time)."""


def test_a_runner_cut_off_gives_up_when_its_give_up_time_is_over_not_a_beat_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(heartbeats, "time", clock)

    def end_runner(code: int, message: str) -> None:
        raise Ended(code, message, clock.now)

    monkeypatch.setattr(heartbeats, "end_runner", end_runner)
    link = CutLink(clock)
    thread = HeartbeatThread(link, interval=10, give_up=25)  # type: ignore[arg-type]
    monkeypatch.setattr(thread, "beat", lambda log_tail=None: Heartbeat(
        cpu=0.0, memory=0, host_name="node", status="running", processes=1, log_tail=""))
    last_answer = clock.now
    with pytest.raises(Ended) as ended:
        for _ in range(10):  # what run() does, with the clock moved instead of waited on
            clock.now += thread.interval
            last_answer = thread._beat_once(last_answer)
    code, message, when = ended.value.args
    assert code == EXIT_LOST and "lost the monitor" in message
    # The monitor answered last at 1000 and counts the job dead 25 s later: the runner
    # stops its job then, not when a later beat's 10 s timeout runs out (1040 before):
    # the beat after which the next would come too late waits until the give-up.
    assert when == 1025.0
    assert link.timeouts == [15.0]


def test_a_result_answered_stop_ends_the_runner_with_status_4(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    payload = task_of(runner_jobs.add, [20, 22])

    def answer(monitor: Monitor, message: Received) -> Frames:
        if message.header.kind is Kind.RESULT:
            return monitor.reply(message, Kind.STOP, b"superseded by attempt 1")
        return serving(payload)(monitor, message)

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == EXIT_STOPPED, result.err
    assert "ignored the result of task 7 attempt 0" in result.err
    assert "superseded by attempt 1" in result.err
    assert "task 7 done" not in result.err
    assert monitor.kinds().count(Kind.RESULT) == 1
