"""Refusing authentic messages seen before: :class:`ReplayGuard`.

The codec (:mod:`gridmap_core.wire.protocol`) proves a message was made with the map's
key; it cannot tell a message sent again by someone who recorded it, or an old one
arriving late. The guard tells those from each header's sequence number.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gridmap_core.wire.header import Header

__all__ = ["ReplayGuard"]


class ReplayGuard:
    """Refuses authentic messages seen before: a recorded message sent again, or an
    old one arriving after a newer one.

    Keyed by (task id, attempt, direction), so the guard holds one integer per live
    task and direction; call :meth:`forget` when a task ends to free it. A forgotten
    task's old messages would pass again, so the monitor must itself refuse messages
    for tasks that have ended (answer STOP). Thread-safe.
    """

    def __init__(self) -> None:
        self._last: dict[int, dict[tuple[int, bool], int]] = {}
        self._lock = threading.Lock()

    def accept(self, header: Header) -> bool:
        """True (and remember ``header.seq``) only if it is higher than the last seq
        accepted for the same task, attempt and direction."""
        key = (header.attempt, header.kind.from_runner)
        with self._lock:
            task = self._last.get(header.task_id)
            if task is None:
                self._last[header.task_id] = {key: header.seq}
                return True
            last = task.get(key)
            if last is not None and header.seq <= last:
                return False
            task[key] = header.seq
            return True

    def forget(self, task_id: int, attempt: int | None = None) -> None:
        """Drop what is remembered of a task (of one attempt, or all of them)."""
        with self._lock:
            if attempt is None:
                self._last.pop(task_id, None)
                return
            task = self._last.get(task_id)
            if task is not None:
                task.pop((attempt, True), None)
                task.pop((attempt, False), None)
                if not task:
                    del self._last[task_id]

    def __len__(self) -> int:
        """Number of tasks remembered."""
        return len(self._last)
