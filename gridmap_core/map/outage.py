"""Whether the scheduler answers: a controller restarting (``slurmctld``, ``sge_qmaster``)
or a network hiccup on the way to it.

Jobs that run go on while their scheduler is away, and their runners keep talking to
the monitor, so an outage is no reason to count anything dead. The user is told once
when the scheduler stops answering and once when it is back, not at every poll.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["Outage"]
# One logger for the whole monitor, whichever module speaks: the name users (and
# tests) configure.
logger = logging.getLogger("gridmap_core.map.monitor")


class Outage:
    """The scheduler's calls report here how they went (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None  # monotonic time of the first failed call
        self.failures = 0  # failed calls since then

    @property
    def away(self) -> bool:
        """Whether the last call to the scheduler failed."""
        return self.since is not None

    def failed(self, what: str, error: BaseException | str) -> None:
        """A call (``what``: "ask about 48 jobs", "cancel 3 jobs") failed."""
        with self._lock:
            first = self.since is None
            if first:
                self.since = time.monotonic()
            self.failures += 1
        message = str(error).strip().replace("\n", " ")
        if first:
            logger.warning(
                "the scheduler does not answer (could not %s: %s). Jobs that run go on "
                "and keep reporting here; what needs the scheduler (polls, cancels) is "
                "retried until it is back", what, message)
        else:
            logger.debug("the scheduler still does not answer (could not %s: %s)", what,
                         message)

    def answered(self) -> None:
        """A call succeeded: if the scheduler was away, say that it is back."""
        with self._lock:
            since, failures = self.since, self.failures
            self.since, self.failures = None, 0
        if since is not None:
            logger.warning("the scheduler answers again, after %.0f s and %d failed "
                           "call%s", time.monotonic() - since, failures,
                           "" if failures == 1 else "s")
