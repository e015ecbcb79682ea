"""The runner's conversation with the monitor: signed requests, checked replies, retries."""

from __future__ import annotations

import logging
import time

from gridmap_core.node.ending import end_runner
from gridmap_core.transports import Client, TransportTimeout
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
    """One task's conversation with the monitor: signed requests, checked replies."""

    def __init__(self, client: Client, codec: Codec, task: int, attempt: int) -> None:
        self.client = client
        self.codec = codec
        self.task = task
        self.attempt = attempt

    def exchange(self, kind: Kind, payload: bytes | bytearray | memoryview,
                 timeout: float) -> Message:
        """Send one request and return its authentic reply; TransportTimeout when none
        came. Encoded afresh on every call, so a retry is never taken for a replay."""
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
        if the monitor never answered.

        A RESULT answered STOP ends the runner with status 4: the monitor has given
        up this attempt (the job was counted dead and launched again, as after a
        network cut, or it has ended) and ignores its result."""
        deadline = time.monotonic() + give_up
        pause = 0.1
        tries = 0
        while True:
            tries += 1
            left = deadline - time.monotonic()
            try:
                reply = self.exchange(kind, payload, max(0.1, min(timeout, left)))
            except TransportTimeout:
                if time.monotonic() + pause >= deadline:
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
            pause = min(pause * 2, 5.0)
