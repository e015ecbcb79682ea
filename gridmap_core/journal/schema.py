"""What a map's journal is made of: its SQLite schema, the names of its files, the
states of its jobs, the records read back from it, and the error raised when it cannot
be read or written. The journal itself is :class:`~gridmap_core.journal.store.Journal`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmap_core.errors import GridMapError

__all__ = [
    "ENDED_STATES",
    "INLINE_RESULT",
    "JOURNAL",
    "LIVE_STATES",
    "RESULTS",
    "SCHEMA_VERSION",
    "JournalError",
    "MapRecord",
    "TaskRow",
]

JOURNAL = "journal.sqlite"
RESULTS = "results"
# Results up to this size live in the journal; larger ones in a file of their own.
INLINE_RESULT = 1 << 20
LIVE_STATES = ("queued", "running")
ENDED_STATES = ("succeeded", "failed", "dead", "cancelled")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS map (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL,
    created REAL NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    temp_dir TEXT NOT NULL, state TEXT NOT NULL, ended REAL,
    settings TEXT NOT NULL,          -- JSON: the settings' values, for reading
    session BLOB,                    -- pickle: how the session was opened, for attach
    search_path TEXT NOT NULL,       -- JSON: the submitter's sys.path entries
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS specs (
    key INTEGER PRIMARY KEY,
    spec BLOB NOT NULL,              -- pickle: the JobSpec without its function
    function BLOB NOT NULL           -- the function, pickled as runners get it
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, spec INTEGER NOT NULL, position INTEGER NOT NULL,
    name TEXT NOT NULL, inputs BLOB NOT NULL,   -- pickle: (args, kwargs)
    state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
    job_id TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '',
    resubmits INTEGER NOT NULL DEFAULT 0, cause TEXT, kind TEXT,
    result TEXT,                     -- where the result is: 'journal' or a file
    started REAL, ended REAL, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state);
CREATE INDEX IF NOT EXISTS tasks_position ON tasks (position);
CREATE TABLE IF NOT EXISTS results (
    task INTEGER PRIMARY KEY, attempt INTEGER NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    task INTEGER NOT NULL, at REAL NOT NULL, state TEXT NOT NULL,
    attempt INTEGER NOT NULL, job_id TEXT NOT NULL DEFAULT '', detail TEXT
);
CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at);
"""


class JournalError(GridMapError):
    """A journal that cannot be read or written: it names the file and what to do."""


@dataclass(frozen=True)
class MapRecord:
    """What the journal says of the map itself."""

    id: str
    name: str
    backend: str
    created: float
    host: str
    pid: int
    temp_dir: str
    state: str  # running, succeeded, failed or cancelled (abandoned: a mark file)
    ended: float | None
    settings: dict[str, Any]


@dataclass(frozen=True)
class TaskRow:
    """One job as the journal has it."""

    id: int
    spec: int
    position: int
    name: str
    state: str
    attempt: int
    job_id: str
    host: str
    resubmits: int
    cause: str | None
    kind: str | None
    result: str | None
    started: float | None
    ended: float | None


_TASK_COLUMNS = ("id, spec, position, name, state, attempt, job_id, host, resubmits, "
                 "cause, kind, result, started, ended")


def _explain(path: Path, error: sqlite3.Error) -> JournalError:
    what = str(error)
    damaged = isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.OperationalError)
    if damaged or "malformed" in what or "not a database" in what:
        advice = ("the file is damaged or truncated (a full disk?). The results it "
                  "names in its results folder are still on disk; `gridmap status` "
                  "shows what it can read")
    elif "locked" in what or "busy" in what:
        advice = "another process holds it; try again in a moment"
    else:
        advice = "check that the session directory is on a disk with space and is yours"
    return JournalError(f"map journal {path}: {what}: {advice}")
