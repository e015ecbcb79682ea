"""What a map shows while it runs with ``quiet=False``: a progress bar (tqdm) when its
output is a terminal, a plain line every PROGRESS_INTERVAL seconds when it is not.

Both read the counters that a :class:`~gridmap_core.map.runs.Run` keeps anyway, from a
thread of their own: showing progress costs the jobs nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any, NamedTuple

from gridmap_core.map.runs import Run
from gridmap_core.watching.around import route_around_bars, stop_routing

__all__ = ["Counts", "Progress", "counts_of"]
logger = logging.getLogger("gridmap.progress")

BAR_REFRESH = 0.25  # seconds between redraws of the bar


class Counts(NamedTuple):
    """Where the jobs of a map stand."""

    total: int
    succeeded: int
    failed: int
    running: int
    queued: int

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed

    def describe(self) -> str:
        return (f"{self.ended}/{self.total} done ({self.failed} failed), "
                f"{self.running} running, {self.queued} queued")


def counts_of(runs: Sequence[Run]) -> Counts:
    """The counts of the runs of one map, read without a lock (they are only shown)."""
    total = failed = ended = running = 0
    for run in runs:
        size = len(run.done)
        total += size
        failed += len(run.failures)
        ended += size - max(0, run.remaining)
        running += max(0, run.running)
    running = min(running, total - ended)
    return Counts(total, ended - failed, failed, running, total - ended - running)


class Progress:
    """Shows the progress of ``runs`` while the ``with`` block runs."""

    def __init__(self, runs: Sequence[Run], name: str, *, interval: float = 30.0,
                 stream: IO[str] | None = None, terminal: bool | None = None) -> None:
        self.runs = runs
        self.name = name or "map"
        self.interval = max(0.1, float(interval))
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = _is_terminal(self.stream) if terminal is None else terminal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gridmap-progress",
                                        daemon=True)
        self._started = 0.0
        self._bar: Any = None  # a tqdm bar, on a terminal

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.terminal:
            from tqdm import tqdm  # only maps that show a bar pay for the import

            # A terminal that reports no size (a bare pty) would get no bar at all.
            width, height = _size(self.stream)
            self._bar = tqdm(total=counts_of(self.runs).total, desc=self.name, unit="job",
                             file=self.stream, dynamic_ncols=width > 0,
                             ncols=None if width > 0 else 100,
                             nrows=None if height > 0 else 24, leave=True)
            # Log records and warnings written meanwhile go on lines of their own.
            route_around_bars(self.stream)
        else:
            self._line("started", counts_of(self.runs))
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        counts = counts_of(self.runs)
        if exc_type is None:
            outcome = "finished"
        elif issubclass(exc_type, KeyboardInterrupt):
            outcome = "interrupted"
        else:
            outcome = "stopped"
        if self._bar is not None:
            try:
                self._draw(counts)
                if exc_type is not None:
                    self._bar.set_description_str(f"{self.name} ({outcome})")
                self._bar.close()
            finally:
                stop_routing()
        else:
            self._line(outcome, counts)

    def _loop(self) -> None:
        wait = BAR_REFRESH if self.terminal else self.interval
        while not self._stop.wait(wait):
            counts = counts_of(self.runs)
            if self._bar is not None:
                self._draw(counts)
            else:
                self._line("running", counts)

    def _draw(self, counts: Counts) -> None:
        bar = self._bar
        assert bar is not None
        bar.n = counts.ended
        bar.set_postfix_str(f"running {counts.running}, queued {counts.queued}, "
                            f"failed {counts.failed}", refresh=False)
        bar.refresh()

    def _line(self, what: str, counts: Counts) -> None:
        elapsed = time.monotonic() - self._started
        text = f"gridmap: {self.name}: {what}: {counts.describe()}, {elapsed:.0f} s"
        # Through logging where the program has set it up to show this; otherwise
        # straight to the stream: quiet=False asked for these lines.
        if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
            logger.info("%s", text.removeprefix("gridmap: "))
        else:
            print(text, file=self.stream, flush=True)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def _size(stream: IO[str]) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return 0, 0
    return size.columns, size.lines
