"""What ``gridmap watch`` reads of a map's journal: the summary, the failures, a page
of the job table, one job, and the throughput over time.

Every figure is read afresh from the journal each time it is asked for (another
process, the map's monitor, may be writing it). Each read is one query bounded by
what the page shows: counts come from the index on the task state, a page of the
table is at most :data:`PAGE_ROWS` rows, and the failures shown at most
:data:`FAILURES_SHOWN`; nothing reads every row into Python, so a map of 100,000
jobs costs a request a few tens of milliseconds.

The journal is opened read-only (SQLite's ``mode=ro``): watching a map can never
change it.
"""

from __future__ import annotations

import contextlib
import os
import pickletools
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmap_core.journal.store import (
    ENDED_STATES,
    JOURNAL,
    LIVE_STATES,
    Journal,
    JournalError,
    MapRecord,
    TaskRow,
)
from gridmap_core.wire.beacon import MONITOR_FILE, read_monitor

__all__ = [
    "FAILURES_SHOWN",
    "PAGE_ROWS",
    "STATES",
    "JournalReader",
    "Summary",
    "error_of",
    "failures",
    "history",
    "interval_for",
    "last_line",
    "monitor_note",
    "page_of_tasks",
    "summary",
    "task_at",
    "throughput",
    "traceback_in",
]

PAGE_ROWS = 100  # rows of the job table per page
FAILURES_SHOWN = 50  # failed and dead jobs listed on top; the rest are a filter away
STATES = (*LIVE_STATES, *ENDED_STATES)
FAILED_STATES = ("dead", "failed")
# How many bars the throughput chart has at most: the interval is the first of these
# steps (seconds) that spreads the map's span over no more.
CHART_BARS = 120
STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
         43200, 86400)
# A failed job's error is read from its RESULT payload's traceback text; payloads
# larger than this are not scanned for it.
# A monitor touches its monitor.json about every second: one that has not for this
# long is said to be silent.
SILENT_MONITOR = 5.0
ERROR_SCAN_LIMIT = 4 << 20
_TASK_COLUMNS = ("id, spec, position, name, state, attempt, job_id, host, resubmits, "
                 "cause, kind, result, started, ended")


class JournalReader:
    """The journal of one session directory, opened read-only when first read and
    opened again when the file was replaced or a read failed (the monitor of a
    resumed map may have written a new one)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL
        self._journal: Journal | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def journal(self) -> Journal:
        """The journal, ready to read; JournalError naming the file if it cannot be."""
        with self._lock:
            try:
                status = self.path.stat()
            except OSError:
                self._drop()
                raise JournalError(
                    f"map journal {self.path} does not exist: the map's session directory "
                    "was removed (its MAP_KEEP_TIME ran out), or it belongs to a map of an "
                    "older gridmap") from None
            identity = (status.st_dev, status.st_ino)
            if self._journal is None or identity != self._identity:
                self._drop()
                self._journal = _open_readonly(self.path)
                self._identity = identity
            return self._journal

    def forget(self) -> None:
        """Open the file again at the next read (this one failed)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._journal is not None:
            with contextlib.suppress(Exception):
                self._journal.close()
        self._journal = None
        self._identity = None

    def close(self) -> None:
        self.forget()


def _open_readonly(path: Path) -> Journal:
    """A read-only connection to the journal at ``path``, wrapped as a Journal."""
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False,
                             isolation_level=None, timeout=10.0)
    except sqlite3.Error as error:
        raise JournalError(f"map journal {path}: {error}: check that the file is "
                           "readable by you") from error
    journal = Journal(path, db, readonly=True)
    try:
        if not journal.query("SELECT id FROM map"):
            raise JournalError(f"map journal {path} holds no map: it was cut short as the "
                               "map started; nothing of the map was recorded")
    except JournalError:
        db.close()
        raise
    return journal


@dataclass(frozen=True)
class Summary:
    """The figures on top of the page, and the JSON the page refreshes them from."""

    map: MapRecord
    counts: dict[str, int]
    now: float
    monitor: str = ""  # what monitor.json says of the monitor, while the map runs

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ended(self) -> int:
        return sum(self.counts[state] for state in ENDED_STATES)

    @property
    def failures(self) -> int:
        return sum(self.counts[state] for state in FAILED_STATES)

    @property
    def seconds(self) -> float:
        """The map's wall time once it ended, its age while it runs."""
        end = self.map.ended if self.map.ended is not None else self.now
        return max(0.0, end - self.map.created)

    def as_dict(self) -> dict[str, Any]:
        record = self.map
        return {"id": record.id, "name": record.name, "backend": record.backend,
                "state": record.state, "created": record.created, "ended": record.ended,
                "host": record.host, "pid": record.pid, "now": self.now,
                "seconds": self.seconds, "total": self.total, "done": self.ended,
                "counts": self.counts, "monitor": self.monitor}


def summary(journal: Journal) -> Summary:
    counts = dict.fromkeys(STATES, 0)
    for state, count in journal.counts().items():
        counts[state] = counts.get(state, 0) + int(count)
    record = journal.map_record()
    now = time.time()
    monitor = monitor_note(journal.directory, now) if record.state == "running" else ""
    return Summary(record, counts, now, monitor)


def monitor_note(directory: Path, now: float) -> str:
    """Whether a monitor serves the running map now, from its monitor.json: the file
    names it, and its modification time moves on while it lives."""
    found = read_monitor(directory)
    if found is None:
        return f"none: the session directory has no readable {MONITOR_FILE}"
    record, changed = found
    silent = now - changed / 1e9
    where = f"{record.host} (process {record.pid})"
    if silent < SILENT_MONITOR:
        return f"serving, on {where}"
    return (f"silent for {silent:.0f} s, last on {where}: the map's monitor is gone unless "
            "it comes back; its runners give up after MONITOR_GRACE")


def failures(journal: Journal, limit: int = FAILURES_SHOWN) -> list[TaskRow]:
    """The first ``limit`` dead and failed jobs, dead ones first, each in map order."""
    return journal.tasks(FAILED_STATES, limit=limit, failures_first=True)


def page_of_tasks(journal: Journal, page: int, states: tuple[str, ...] = (),
                  rows: int = PAGE_ROWS) -> tuple[list[TaskRow], int, int]:
    """Page ``page`` (from 1) of the jobs in ``states`` (all when empty), in map order:
    its rows, the page shown (``page`` brought within the pages there are) and how
    many pages there are."""
    where = f" WHERE state IN ({','.join('?' * len(states))})" if states else ""
    count = int(journal.query(f"SELECT count(*) FROM tasks{where}", states)[0][0])
    pages = max(1, -(-count // rows))
    page = min(max(1, page), pages)
    return journal.tasks(states or None, offset=(page - 1) * rows, limit=rows), page, pages


def task_at(journal: Journal, position: int) -> TaskRow | None:
    """The job at ``position`` in the map."""
    found = journal.query(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE position=?", (position,))
    return TaskRow(*found[0]) if found else None


def history(journal: Journal, task: int) -> list[tuple[float, str, int, str, str]]:
    """(time, state, attempt, scheduler job, detail) of each of the job's transitions."""
    return [(float(at), str(state), int(attempt), str(job_id or ""), str(detail or ""))
            for at, state, attempt, job_id, detail in journal.query(
                "SELECT at, state, attempt, job_id, detail FROM transitions WHERE task=? "
                "ORDER BY at", (task,))]


def error_of(journal: Journal, row: TaskRow) -> str:
    """The traceback a failed job raised, read from its RESULT payload; empty if it
    holds none that can be read."""
    if row.state != "failed" or not row.result:
        return ""
    if row.result == "journal":
        found = journal.query("SELECT payload FROM results WHERE task=?", (row.id,))
        payload = bytes(found[0][0]) if found else b""
    else:
        path = journal.directory / row.result
        try:
            if path.stat().st_size > ERROR_SCAN_LIMIT:
                return ""
            payload = path.read_bytes()
        except OSError:
            return ""
    return traceback_in(payload)


def traceback_in(payload: bytes) -> str:
    """The formatted traceback in a failed job's RESULT payload, found by reading the
    pickle's opcodes, never by unpickling it: the page must not run code, nor import
    the job's modules, to show it. The payload is ``(False, error, traceback, host)``:
    the traceback is the last string that starts as one does."""
    if len(payload) > ERROR_SCAN_LIMIT:
        return ""
    found = ""
    try:
        for opcode, argument, _ in pickletools.genops(payload):
            if (opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE")
                    and isinstance(argument, str)
                    and argument.startswith("Traceback (most recent call last)")):
                found = argument
    except Exception:  # a payload cut short or not a pickle: show what was found
        pass
    return found


def last_line(text: str) -> str:
    """An error in a line: the last line of its traceback (``ValueError: ...``)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def interval_for(span: float) -> float:
    """Seconds per bar of the throughput chart of a map that has run ``span`` seconds."""
    for step in STEPS:
        if span / step <= CHART_BARS:
            return step
    return STEPS[-1] * max(1, round(span / STEPS[-1] / CHART_BARS))


def throughput(journal: Journal, record: MapRecord, now: float) -> tuple[
        float, float, list[int]]:
    """The jobs that ended in each interval since the map was created: (start of the
    first interval, seconds per interval, jobs ended in each)."""
    found = journal.query("SELECT min(ended), max(ended) FROM tasks")[0]
    first = min(record.created, found[0]) if found[0] is not None else record.created
    last = record.ended if record.ended is not None else now
    if found[1] is not None:
        last = max(last, found[1])
    step = interval_for(max(STEPS[0], last - first))
    start = first - first % step
    bars = [0] * (int((last - start) // step) + 1)
    for at, count in journal.ended_per_interval(step):
        # Both are whole multiples of the step, up to floating point.
        index = round((at - start) / step)
        if 0 <= index < len(bars):
            bars[index] += count
    return start, step, bars
