"""Cancelling scheduler jobs off the monitor's thread, until the scheduler takes it.

The monitor cancels a job that died (before resubmitting it) and the jobs whose tasks
runners took. A cancel can be slow (a scheduler's client retries while its controller
restarts) and can fail (the controller is away); done on the monitor's thread, it would
leave heartbeats unanswered meanwhile, and a failed one would leave its jobs queued,
to start later and hold slots after the map ended. Here a thread of its own cancels,
and keeps what failed to try again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gridmap_core.backend.scheduler import Scheduler
from gridmap_core.map.outage import Outage

__all__ = ["Canceller"]

RETRY_EVERY = 5.0  # seconds between tries while the scheduler refuses


class Canceller:
    """Cancels jobs in the background, in as few calls as it can, retrying failures."""

    def __init__(self, scheduler: Scheduler, outage: Outage, *, name: str = "cancels",
                 retry_every: float = RETRY_EVERY) -> None:
        self.scheduler = scheduler
        self.outage = outage
        self.retry_every = retry_every
        self._name = name
        self._pending: list[str] = []
        self._in_hand: Sequence[str] = ()  # being cancelled now
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def cancel(self, ids: Sequence[str]) -> None:
        """Have these jobs cancelled soon; returns at once."""
        if not ids:
            return
        with self._condition:
            self._pending.extend(ids)
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"gridmap-{self._name}")
                self._thread.start()
            self._condition.notify_all()

    @property
    def pending(self) -> list[str]:
        """The jobs not cancelled yet, being cancelled included."""
        with self._condition:
            return list(self._pending) + list(self._in_hand)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                if not self._pending:
                    return
                ids, self._pending = self._pending, []
                self._in_hand = ids
            try:
                self.scheduler.cancel(ids)
            except Exception as error:
                self.outage.failed(f"cancel {len(ids)} job(s)", error)
                with self._condition:
                    self._pending[:0] = ids
                    self._in_hand = ()
                    if self._closing:
                        return  # what is left goes back to the closing session
                    self._condition.wait(self.retry_every)
                continue
            else:
                self.outage.answered()
            with self._condition:
                self._in_hand = ()
                self._condition.notify_all()

    def close(self, timeout: float) -> list[str]:
        """Stop after one more try of what is pending (waiting up to ``timeout``
        seconds for it); the jobs still not cancelled, for the caller to try last."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._condition:
            left = list(self._pending) + list(self._in_hand)
            self._pending = []
        return left
