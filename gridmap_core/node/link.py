"""The runner's conversation with the monitor: signed requests, checked replies, retries.

With a :class:`~gridmap_core.node.monitor_watch.MonitorWatch`, the link follows the map
to a new monitor (the address monitor.json names), and does not give up on a monitor
that is gone: the watch ends the runner when the grace is over.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from gridmap_core.node.ending import end_runner
from gridmap_core.node.monitor_watch import WAIT_TRY, MonitorWatch, Verdict
from gridmap_core.transports import Client, TransportError, TransportTimeout
from gridmap_core.wire.exits import EXIT_STOPPED
from gridmap_core.wire.protocol import (
    FROM_MONITOR,
    Codec,
    Kind,
    Message,
    ProtocolError,
    is_reply_to,
)

__all__ = ["Link", "Stopped"]

# The runner's one logger, "gridmap.runner", whichever of its modules speaks.
logger = logging.getLogger("gridmap.runner")


class Stopped(Exception):
    """The monitor answered STOP."""


class Link:
    """One task's conversation with the monitor: signed requests, checked replies.

    ``watch`` (optional) is told of every request and answer; ``address``, the
    ``transport``'s name and ``connect`` (a client for another address, with the same
    options) let the link follow the map to a new monitor that the watch finds."""

    def __init__(self, client: Client, codec: Codec, task: int, attempt: int, *,
                 watch: MonitorWatch | None = None, address: str = "", transport: str = "",
                 connect: Callable[[str], Client] | None = None) -> None:
        self.client = client
        self.codec = codec
        self.task = task
        self.attempt = attempt
        self.watch = watch
        self.address = address
        self.transport = transport
        self._connect = connect
        self._swap = threading.Lock()
        self._refused: str | None = None  # a monitor record not followed, said once
        self._connected_at = -math.inf  # when the link moved to a new monitor's address

    def exchange(self, kind: Kind, payload: bytes | bytearray | memoryview,
                 timeout: float) -> Message:
        """Send one request and return its authentic reply; TransportTimeout when none
        came. Encoded afresh on every call, so a retry is never taken for a replay."""
        self.follow()
        if self.watch is not None:
            self.watch.asking(kind.value)
        reply = self._exchange(kind, payload, timeout)
        if self.watch is not None:
            self.watch.answered()
        return reply

    def _exchange(self, kind: Kind, payload: bytes | bytearray | memoryview,
                  timeout: float) -> Message:
        header = self.codec.header(kind, self.task, self.attempt)
        deadline = time.monotonic() + timeout
        reply_frames = self.client.request(self.codec.encode_header(header, payload), timeout)
        while True:
            try:
                reply = self.codec.decode(reply_frames, expect=FROM_MONITOR)
            except ProtocolError as error:
                logger.warning("dropped a reply that failed authentication: %s", error)
            else:
                if is_reply_to(reply.header, header):
                    return reply
                logger.warning("dropped a reply meant for another task")
            # Not ours: ask again (as a new message) in the time left.
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(f"no valid reply within {timeout:.0f} s")
            header = self.codec.header(kind, self.task, self.attempt)
            reply_frames = self.client.request(self.codec.encode_header(header, payload), left)

    def call(self, kind: Kind, payload: bytes | bytearray | memoryview, *, give_up: float,
             timeout: float) -> Message | None:
        """:meth:`exchange` with retries until ``give_up`` seconds have passed; None
        if the monitor never answered. A monitor that the watch finds gone is not
        given up on: the retries go on, every few seconds, until the watch ends the
        runner (a mark, or the grace is over) or a monitor answers.

        A RESULT answered STOP ends the runner with status 4: the monitor has given
        up this attempt (the job was counted dead and launched again, as after a
        network cut, or it has ended) and ignores its result."""
        started = time.monotonic()
        pause = 0.1
        tries = 0
        while True:
            tries += 1
            # A new monitor gets the whole give-up from when it was first tried.
            deadline = max(started, self.monitor_since()) + give_up
            left = deadline - time.monotonic()
            try_for = max(0.1, min(timeout, left))
            if self.waiting(left):
                try_for = min(timeout, WAIT_TRY)
            try:
                reply = self.exchange(kind, payload, try_for)
            except TransportTimeout:
                self.follow()  # a new monitor found meanwhile is tried before giving up
                deadline = max(started, self.monitor_since()) + give_up
                if time.monotonic() + pause >= deadline and self.may_give_up():
                    logger.error(
                        "no answer from the monitor to %s after %d tries over %.0f s",
                        kind.value, tries, give_up,
                    )
                    return None
            else:
                if kind is Kind.RESULT and reply.header.kind is Kind.STOP:
                    reason = bytes(reply.payload).decode("utf-8", "replace")
                    end_runner(EXIT_STOPPED, f"the monitor ignored the result of task "
                               f"{self.task} attempt {self.attempt} and says stop: "
                               f"{reason or 'no reason given'}")
                return reply
            time.sleep(pause)
            pause = min(pause * 2, WAIT_TRY)

    # -- a monitor that does not answer ----------------------------------------------

    def may_give_up(self) -> bool:
        """Whether the usual give-up applies: the monitor lives (out of reach), or its
        session directory says nothing of it (no watch, no monitor.json)."""
        return self.watch is None or self.watch.verdict() in (None, Verdict.ALIVE)

    def waiting(self, left: float) -> bool:
        """Whether the runner is waiting for a monitor rather than talking to one: the
        watch finds it gone, or cannot tell yet though the give-up (``left`` seconds
        away) has come. Requests are then short and frequent."""
        if self.watch is None:
            return False
        verdict = self.watch.verdict()
        return verdict is Verdict.GONE or (verdict is Verdict.UNKNOWN and left <= 0)

    def monitor_since(self) -> float:
        """When the monitor last answered, or a new one appeared and the link first
        tried it, whichever is latest (-inf without a watch)."""
        if self.watch is None:
            return -math.inf
        return max(self.watch.since(), self._connected_at)

    def follow(self) -> None:
        """Connect to the address monitor.json names, when it is not this link's."""
        record = self.watch.record if self.watch is not None else None
        if record is None or self._connect is None or record.address == self.address:
            return
        if record.transport != self.transport:
            if self._refused != record.address:
                self._refused = record.address
                logger.error("the map's monitor now listens at %s through transport %s, "
                             "but this runner speaks %s: it cannot follow", record.address,
                             record.transport, self.transport)
            return
        try:
            client = self._connect(record.address)
        except TransportError as error:
            logger.error("cannot connect to the map's new monitor at %s: %s",
                         record.address, error)
            return
        with self._swap:
            old, self.client, self.address = self.client, client, record.address
            self._connected_at = time.monotonic()
        old.close()
        logger.info("talking to the map's monitor at %s now", record.address)
