"""Giving memory back to the system after a flood of dropped messages.

A flood of garbage sent to the monitor leaves no Python object behind, but it can
leave the process hundreds of MB larger: ZeroMQ allocates each message it receives
with ``malloc`` in its I/O thread, and while the monitor's loop works through a
backlog of large messages, glibc's heap grows to hold them. Freed, that memory stays
in the heap (glibc raised its ``mmap`` threshold after the first large block it
freed, so the later ones came from the heap, not from ``mmap``), to be reused by
the next messages but not returned. ``malloc_trim(0)`` returns it, in a few ms.
See "Memory after a flood of garbage" in docs/protocol.md.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

__all__ = ["TRIM_AFTER_BYTES", "TRIM_AFTER_DROPS", "HeapTrim", "malloc_trim"]
logger = logging.getLogger("gridmap_core.map.monitor")

# A burst of at least this many dropped messages, or of this many bytes, is followed
# by one trim. Below both, what a burst can leave in the heap is not worth a trim.
TRIM_AFTER_DROPS = 1000
TRIM_AFTER_BYTES = 16 * 2**20


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


malloc_trim = _load_malloc_trim()


class HeapTrim:
    """Trims the C heap once a burst of dropped messages is over.

    :meth:`check` is called about once a second with the counts of messages dropped
    so far and their bytes. It trims when the counts have not moved since the last
    call (the burst is over) and have grown, since the last trim, by at least
    ``after_drops`` messages or ``after_bytes`` bytes. So a flood costs one trim after
    it ends, never one per message, and a monitor that drops nothing never trims.
    """

    def __init__(self, trim: Callable[[int], int] | None = malloc_trim, *,
                 after_drops: int = TRIM_AFTER_DROPS,
                 after_bytes: int = TRIM_AFTER_BYTES) -> None:
        self._trim = trim
        self.after_drops = after_drops
        self.after_bytes = after_bytes
        self.trims = 0  # how many times the heap was trimmed
        self._seen = (0, 0)  # the counts at the last check
        self._trimmed = (0, 0)  # the counts at the last trim

    def check(self, dropped: int, dropped_bytes: int) -> bool:
        """Trim if a large enough burst of drops has ended; True if it did."""
        counts = (dropped, dropped_bytes)
        quiet, self._seen = counts == self._seen, counts
        if (self._trim is None or not quiet
                or (dropped - self._trimmed[0] < self.after_drops
                    and dropped_bytes - self._trimmed[1] < self.after_bytes)):
            return False
        self._trimmed = counts
        self._trim(0)
        self.trims += 1
        logger.debug("returned the heap's free memory to the system after %d dropped "
                     "messages", dropped)
        return True
