"""The runner's heartbeats: the job's health, sent to the monitor while the job runs."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from gridmap_core.node.ending import end_runner
from gridmap_core.node.link import Link
from gridmap_core.node.monitor_watch import WAIT_TRY
from gridmap_core.node.usage import UsageSampler
from gridmap_core.transports import TransportError, TransportTimeout
from gridmap_core.wire.exits import EXIT_LOST, EXIT_STOPPED, tail
from gridmap_core.wire.messages import Heartbeat, encode_heartbeat
from gridmap_core.wire.protocol import Kind, ProtocolError

__all__ = ["HeartbeatThread"]

# The runner's one logger, "gridmap.runner", whichever of its modules speaks.
logger = logging.getLogger("gridmap.runner")


def _log_file() -> str | None:
    """Where this process's stdout goes, if it is a file (the job's log)."""
    try:
        target = os.readlink("/proc/self/fd/1")
    except OSError:
        return None
    return target if target.startswith("/") and os.path.isfile(target) else None


class HeartbeatThread(threading.Thread):
    """Sends the job's health every ``interval`` seconds; ends the process when the
    monitor says stop or cannot be reached for ``give_up`` seconds. A monitor that the
    link's watch finds gone is not given up on: the job runs on and the beats go on,
    every few seconds, until a monitor answers or the watch ends the runner.

    The job runs in a child process (``job_pid`` while it lives), so the beats go on
    whatever the job does with its GIL. CPU and memory are those of the whole
    process tree; the status is that of the job's process.
    """

    def __init__(self, link: Link, interval: float, give_up: float) -> None:
        super().__init__(name="gridmap-heartbeat", daemon=True)
        self.link = link
        self.interval = interval
        self.give_up = give_up
        self.finished = threading.Event()
        self.host_name = socket.gethostname()
        self.log_file = _log_file()
        # The job's process is forked from this one and shares most of its pages,
        # which its own RSS counts: this process counts only the pages it alone has.
        self.sampler = UsageSampler(unique_root=True)
        self.told = ""  # the log tail of the last heartbeat the monitor answered
        self.job_pid: int | None = None
        self.silent = False  # the last beat went unanswered
        self.backoff = 0.5  # the pause between beats while waiting for a monitor
        # Held for each whole beat, and by the runner while it forks the job's
        # process: whatever lock a beat takes (a stream's, a module's being imported)
        # would stay taken for ever in the child if the fork came in the middle.
        self.busy = threading.Lock()

    def watch(self, pid: int | None) -> None:
        """The job's process, whose status the heartbeats report (None: it ended)."""
        self.job_pid = pid

    def beat(self, log_tail: str | None = None) -> Heartbeat:
        usage = self.sampler.sample(status_of=self.job_pid)
        if log_tail is None:
            log_tail = tail(self.log_file, 2048) if self.log_file else ""
        return Heartbeat(
            cpu=round(usage.cpu_percent, 2),
            memory=usage.rss_bytes,
            host_name=self.host_name,
            status=usage.status,
            processes=usage.processes,
            log_tail=log_tail,
        )

    def last_lines(self, timeout: float) -> None:
        """Once the job has returned and the beats have stopped: one more heartbeat if
        its log grew since the last one, so that what the job printed last reaches the
        monitor (its status page, an error mail) before its result does. A job that
        printed nothing new costs no message. Best effort: the result matters more."""
        log_tail = tail(self.log_file, 2048) if self.log_file else ""
        if log_tail == self.told:
            return
        if self.silent and self._watched() and self.link.waiting(0.0):
            timeout = min(timeout, WAIT_TRY)  # no monitor to tell: on to the result
        try:
            reply = self.link.exchange(Kind.HEARTBEAT, encode_heartbeat(self.beat(log_tail)),
                                       timeout)
        except (TransportError, ProtocolError, OSError) as error:
            logger.warning("the job's last log lines were not sent: %s", error)
            return
        if reply.header.kind is Kind.STOP:
            reason = bytes(reply.payload).decode("utf-8", "replace") or "no reason given"
            end_runner(EXIT_STOPPED, f"the monitor says stop: {reason}")

    def stop(self) -> None:
        """End the beats, waiting for one in flight."""
        self.finished.set()
        self.join()

    def run(self) -> None:
        last_answer = time.monotonic()
        while not self.finished.wait(self._pause(last_answer)):
            with self.busy:
                last_answer = self._beat_once(last_answer)

    def _left(self, last_answer: float) -> float:
        """Seconds until the runner gives up on a monitor that last answered then (or
        on a new monitor that appeared later)."""
        since = max(last_answer, self.link.monitor_since()) if self._watched() else last_answer
        return self.give_up - (time.monotonic() - since)

    def _watched(self) -> bool:
        """Whether the link has a watch on the session directory (a stand-in may not)."""
        return getattr(self.link, "watch", None) is not None

    def _waiting(self, last_answer: float) -> bool:
        """Whether the beats wait for a monitor (see :meth:`Link.waiting`)."""
        return self.silent and self._watched() and self.link.waiting(self._left(last_answer))

    def _pause(self, last_answer: float) -> float:
        """Seconds to the next beat: the interval, or less when the give-up comes first;
        a short back-off while waiting for a monitor."""
        if self._waiting(last_answer):
            pause, self.backoff = self.backoff, min(self.backoff * 2, WAIT_TRY)
            return pause
        return max(0.0, min(self.interval, self._left(last_answer)))

    def _beat_once(self, last_answer: float) -> float:
        """Send one heartbeat and obey the answer; when the monitor last answered.

        The runner gives up ``give_up`` seconds after the monitor's last answer, not up
        to a beat and a timeout later: the monitor counts the job dead and launches it
        again after as many seconds of silence (MAX_TIME_BETWEEN_HEARTBEATS), and a
        runner cut off from it that ran on would run beside the new copy. So a beat
        after which the next would come too late waits for its answer until then."""
        beat = self.beat()
        payload = encode_heartbeat(beat)
        left = self._left(last_answer)
        timeout = max(self.interval, 5.0)
        if self._waiting(last_answer):
            timeout = WAIT_TRY
        elif left - timeout < self.interval:
            timeout = max(0.1, left)
        try:
            reply = self.link.exchange(Kind.HEARTBEAT, payload, timeout)
        except TransportTimeout:
            self.silent = True
            if self._watched():
                self.link.follow()  # a new monitor found meanwhile is tried before giving up
            silent = self.give_up - self._left(last_answer)
            if silent >= self.give_up and not self.finished.is_set() and self._may_give_up():
                end_runner(EXIT_LOST, f"lost the monitor: no answer for {silent:.0f} s; stopping "
                           "the job (the submitting process has ended, or this node lost "
                           "the network: the monitor counts the job dead by now)")
            return last_answer
        except (TransportError, ProtocolError, OSError) as error:
            logger.warning("heartbeat not sent: %s", error)
            return last_answer
        self.silent = False
        self.backoff = 0.5
        self.told = beat.log_tail
        if reply.header.kind is Kind.STOP and not self.finished.is_set():
            reason = bytes(reply.payload).decode("utf-8", "replace") or "no reason given"
            end_runner(EXIT_STOPPED, f"the monitor says stop: {reason}")
        return time.monotonic()

    def _may_give_up(self) -> bool:
        """Whether the usual give-up applies (see :meth:`Link.may_give_up`)."""
        return not self._watched() or self.link.may_give_up()
