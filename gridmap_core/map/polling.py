"""A scheduler poll on a thread of its own, so that the monitor's loop goes on serving
runners while the scheduler takes its time.

A scheduler's client may wait for its controller rather than fail: ``squeue`` blocked
16 s while ``slurmctld`` restarted on the test clusters, and a poll made on the
monitor's thread left every heartbeat unanswered meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from gridmap_core.backend.scheduler import JobStatus, Scheduler
from gridmap_core.map.tasks import Task

__all__ = ["PollInFlight"]


class PollInFlight:
    """One call of ``scheduler.poll`` about the jobs of ``live``, started now."""

    def __init__(self, scheduler: Scheduler, live: dict[str, Task],
                 then: Callable[[Mapping[str, JobStatus]], None] | None = None) -> None:
        self.live = live  # the tasks asked about, by scheduler job id
        # More to ask on this thread, of the answer, before the poll counts as done.
        self._then = then
        self.began = time.monotonic()
        self.statuses: Mapping[str, JobStatus] = {}
        self.error: Exception | None = None
        self.told_slow = False  # the user was told it is slow
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._ask, args=(scheduler, list(live)),
                                        name="gridmap-poll", daemon=True)
        self._thread.start()

    def _ask(self, scheduler: Scheduler, ids: Sequence[str]) -> None:
        try:
            self.statuses = scheduler.poll(ids)
            if self._then is not None:
                self._then(self.statuses)
        except Exception as error:  # reported by whoever collects the answer
            self.error = error
        finally:
            self._done.set()

    def done(self) -> bool:
        """Whether the scheduler has answered (or failed)."""
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the answer; whether it came."""
        return self._done.wait(timeout)

    @property
    def waited(self) -> float:
        """Seconds since the poll began."""
        return time.monotonic() - self.began
