"""Watching the map's session directory while the monitor does not answer.

A map outlives the process that submitted it: when its monitor goes, a new one
(``gridmap attach``) may take the map over from a new address, which it writes to
``monitor.json`` in the session directory (:mod:`gridmap_core.wire.beacon`). A monitor
touches that file about every second while it lives. So a runner whose requests go
unanswered looks at the file about once a second, and tells:

* a monitor **alive but out of reach** (a network cut): the file's modification time
  keeps changing. The runner keeps its usual course and gives up at ``--give-up``
  seconds, when the monitor counts the job dead and launches it again;
* a monitor **gone**: the time has not changed for :data:`LIVE_WINDOW` seconds, or
  the file went. The job runs on, a finished result is kept, and the runner waits for
  a new monitor until ``--grace`` seconds after the last answer; then it gives the map
  up (:mod:`gridmap_core.node.giving_up`);
* a **new monitor**: the file names another monitor; the link connects to its address.

Only whether the time changes is observed, against the runner's own monotonic clock:
the file's times come from another host's clock. A runner whose session directory has
never held a ``monitor.json`` (its monitor writes none) keeps its usual course.

While it watches, a mark in the directory (``cancelled``, ``abandoned``, ``ended``),
or the directory's removal, ends the runner at once with
:data:`~gridmap_core.wire.exits.EXIT_MAP_ENDED`.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import socket
import threading
import time

from gridmap_core.node.ending import end_runner
from gridmap_core.node.giving_up import abandon_map
from gridmap_core.wire import beacon
from gridmap_core.wire.beacon import MonitorRecord
from gridmap_core.wire.exits import EXIT_MAP_ENDED

__all__ = ["LIVE_WINDOW", "LOOK_EVERY", "WAIT_TRY", "MonitorWatch", "Verdict"]

# The runner's one logger, "gridmap.runner", whichever of its modules speaks.
logger = logging.getLogger("gridmap.runner")

# A monitor whose file changed within this many seconds lives: it touches the file
# every second, and this leaves room for a monitor busy with a slow scheduler poll.
LIVE_WINDOW = 10.0
# Seconds between looks while the monitor is silent, and once it is known gone (a
# change is still seen between two looks, and many waiting runners load a shared file
# system less).
LOOK_EVERY = 1.0
LOOK_WHILE_GONE = 5.0
# Longest request, and longest pause between requests, while the monitor is gone:
# nothing listens, and a new monitor must be reached soon after it appears.
WAIT_TRY = 5.0


class Verdict(enum.Enum):
    """What the session directory says of a monitor that does not answer."""

    ALIVE = "alive"  # monitor.json keeps changing: alive, out of reach
    GONE = "gone"  # unchanged for LIVE_WINDOW, or missing: no monitor serves the map
    UNKNOWN = "unknown"  # not watched long enough to tell


class MonitorWatch:
    """The session directory of a runner's map, looked at while the monitor is silent.

    The link calls :meth:`asking` before each request and :meth:`answered` on each
    authentic reply; a thread of the watch looks at the directory about every second
    while a request goes unanswered. Its looks are made under :attr:`busy`, which the
    runner holds while it forks the job's process."""

    def __init__(self, directory: str, grace: float) -> None:
        self.directory = directory
        self.grace = grace
        self.busy = threading.Lock()
        self._lock = threading.Lock()
        self._asking = threading.Event()
        now = time.monotonic()
        self._last_answer = now
        self._record: MonitorRecord | None = None
        self._record_since = -math.inf  # when the current monitor was first seen
        self._stamp: int | None = None  # monitor.json's st_mtime_ns, as last seen
        self._same_since = now  # when that stamp was first seen (or the last answer)
        self._changed_at: float | None = None  # when a change was seen between looks
        self._looked = now
        self._looking_since: float | None = None  # a look under way began then
        self._unreadable = ""  # why the last look could not read the directory
        self._said: Verdict | None = None  # the verdict logged last, under _lock
        self._asking_for = ""  # the kind of the request that goes unanswered
        self._thread: threading.Thread | None = None
        self._look(now)

    # -- what the link and the heartbeats ask ----------------------------------------

    @property
    def record(self) -> MonitorRecord | None:
        """The monitor that monitor.json names now (None: no file seen yet)."""
        with self._lock:
            return self._record

    def verdict(self) -> Verdict | None:
        """ALIVE, GONE or UNKNOWN, from the looks while the monitor was silent; None
        when the directory says nothing (the usual give-up applies): it never held a
        monitor.json, or this node cannot read it now (a look failed, or hangs)."""
        now = time.monotonic()
        with self._lock:
            # A node cut off from the network may lose its shared file system too: what
            # it cannot read is no sign that the monitor has gone.
            hung = self._looking_since is not None and now - self._looking_since > LIVE_WINDOW
            if self._stamp is None or self._unreadable or hung:
                return None
            if self._changed_at is not None and now - self._changed_at <= LIVE_WINDOW:
                return Verdict.ALIVE
            if self._looked - self._same_since >= LIVE_WINDOW:
                return Verdict.GONE
            return Verdict.UNKNOWN

    def since(self) -> float:
        """The monotonic time silence counts from: the last answer, or when a new
        monitor appeared if later (it has had no chance to answer yet)."""
        with self._lock:
            return max(self._last_answer, self._record_since)

    def asking(self, what: str = "") -> None:
        """A request goes out (``what``: fetch, heartbeat, result): look at the
        directory if no answer comes soon."""
        self._asking_for = what
        self._start()
        self._asking.set()

    def answered(self) -> None:
        """An authentic reply came: the monitor lives; looks stop."""
        self._asking.clear()
        now = time.monotonic()
        with self._lock:
            self._last_answer = now
            # Unchanged since before this answer says nothing of the monitor now.
            self._same_since = max(self._same_since, now)
            said, self._said = self._said, None
        if said is not None:
            logger.info("the monitor answers again")

    def end_mark(self) -> str | None:
        """The map's end mark (cancelled, abandoned, ended), with what it says."""
        mark = beacon.end_mark(self.directory)
        if mark is None:
            return None
        why = beacon.mark_reason(self.directory, mark)
        return f"{mark}{f' ({why})' if why else ''}"

    # -- the looks -------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gridmap-monitor-watch",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._asking.wait()
            # A request answered within the pause costs no look at a shared file system.
            time.sleep(LOOK_WHILE_GONE if self._said is Verdict.GONE else LOOK_EVERY)
            if self._asking.is_set():
                with self.busy:
                    try:
                        self._look_and_act()
                    except Exception as error:  # the next look may fare better
                        logger.warning("could not look at the session directory %s: %s",
                                       self.directory, error)

    def _look(self, now: float) -> None:
        """Read monitor.json: whether its time changed since the last look, and
        whether it names a new monitor."""
        with self._lock:
            self._looking_since = now
        found = beacon.read_monitor(self.directory)
        unreadable = "" if found is not None else self._unreadable_why()
        with self._lock:
            self._looking_since = None
            if unreadable and not self._unreadable:
                logger.warning("cannot read %s: %s; this node may be cut off, so the runner "
                               "gives up at --give-up as usual", self.directory, unreadable)
            self._unreadable = unreadable
            # A change counts as a sign of life only between two looks close together
            # and both after the last answer: one that may be older says nothing new.
            telling = now - self._looked <= LIVE_WINDOW and self._looked >= self._last_answer
            self._looked = now
            if found is None:
                return  # a missing file is one that does not change
            record, stamp = found
            if record != self._record:
                if self._record is not None:
                    self._record_since = now
                    logger.info("a new monitor serves the map: %s at %s (host %s, pid %d)",
                                record.transport, record.address, record.host, record.pid)
                self._record = record
            if stamp != self._stamp:
                if self._stamp is not None and telling:
                    self._changed_at = now
                self._stamp = stamp
                self._same_since = now

    def _removed(self) -> bool:
        """Whether the session directory is gone (a map that ended and was cleaned
        up, by MAP_KEEP_TIME=0 or by hand): no monitor will ever serve it. A directory
        that cannot be looked at is not gone: the node may be cut off from it."""
        try:
            os.stat(self.directory)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return False

    def _unreadable_why(self) -> str:
        """Why monitor.json, which read_monitor did not read, cannot be read ('' when it
        is missing, or there but not whole: a file that does not change)."""
        try:
            os.stat(os.path.join(self.directory, beacon.MONITOR_FILE))
        except FileNotFoundError:
            return ""
        except OSError as error:
            return str(error)
        return ""

    def _look_and_act(self) -> None:
        """One look while the monitor is silent: end the runner on a mark, or when a
        monitor gone has not come back within the grace."""
        now = time.monotonic()
        self._look(now)
        mark = self.end_mark()
        if mark is not None:
            end_runner(EXIT_MAP_ENDED, f"the map was {mark}: stopping (the job, if it "
                       "runs, is stopped; a result not delivered is dropped)")
        if self._removed():
            end_runner(EXIT_MAP_ENDED, f"the map's session directory {self.directory} was "
                       "removed: the map is over (the job, if it runs, is stopped; a result "
                       "not delivered is dropped)")
        verdict = self.verdict()
        self._say(verdict)
        silent = now - self.since()
        if verdict is Verdict.GONE and silent >= self.grace:
            why = (f"no monitor answered for {silent:.0f} s, past the grace of "
                   f"{self.grace:g} s (MONITOR_GRACE); given up by the runner on "
                   f"{socket.gethostname()} (pid {os.getpid()})")
            abandon_map(self.directory, why)
            end_runner(EXIT_MAP_ENDED, f"gave the map up: {why}")

    def _say(self, verdict: Verdict | None) -> None:
        """Log what the runner now knows of its silent monitor, once per change."""
        with self._lock:
            if verdict in (None, Verdict.UNKNOWN) or verdict is self._said:
                return
            self._said = verdict
        record = self.record
        where = f"at {record.address} " if record else ""
        if verdict is Verdict.ALIVE:
            logger.warning("the monitor %sdoes not answer but lives (its %s keeps "
                           "changing): this node may be cut off; the runner gives up "
                           "at --give-up as usual", where, beacon.MONITOR_FILE)
            return
        held = {"fetch": "the task is not fetched yet",
                "result": "the job's result is kept"}.get(self._asking_for, "the job runs on")
        left = max(0.0, self.grace - (time.monotonic() - self.since()))
        logger.warning("the monitor %sis gone (its %s has not changed for %.0f s): %s "
                       "while the runner waits up to %.0f s more for a new monitor (gridmap "
                       "attach)", where, beacon.MONITOR_FILE, LIVE_WINDOW, held, left)
