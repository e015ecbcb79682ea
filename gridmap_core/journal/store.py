"""A map's journal: an SQLite database in its session directory.

The monitor writes it as the map goes; ``gridmap maps``, ``status``, ``watch`` and
``attach`` read it, while the map runs or long after. It holds:

* the map: its id, name, backend, how its session was opened, when and by whom;
* every job (a *task*): how to run it again (its spec and its arguments), its state,
  scheduler job, attempt, host and cause of death;
* every state transition, with its time;
* each finished job's result: small ones in the journal, large ones in a file of
  the session directory that the journal names.

A result is written (and committed) before the runner is told it arrived, so a
result the monitor acknowledged is never lost with the monitor. Other changes are
gathered and written together, at the next result or within a second: a monitor
killed in between loses at most the last second's transitions, which the next
monitor learns again from the scheduler.

The database runs in WAL mode with ``synchronous=NORMAL``: a commit survives the
process (killed with -9 or not) without waiting for the disk; only a crash of the
host itself may lose the last commits. SQLite's WAL needs the database's host to be
the one writing it; readers on other hosts are not needed (runners never read it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gridmap_core.journal.schema import (
    _SCHEMA,
    _TASK_COLUMNS,
    ENDED_STATES,
    INLINE_RESULT,
    JOURNAL,
    LIVE_STATES,
    RESULTS,
    SCHEMA_VERSION,
    JournalError,
    MapRecord,
    TaskRow,
    _explain,
)

# The schema's names are re-exported: what imported them from here still does.
__all__ = [
    "ENDED_STATES",
    "INLINE_RESULT",
    "JOURNAL",
    "LIVE_STATES",
    "RESULTS",
    "SCHEMA_VERSION",
    "Journal",
    "JournalError",
    "MapRecord",
    "TaskRow",
]

CHECKPOINT_EVERY = 1.0  # seconds between checkpoints of a journal being written


class _Checkpointer(threading.Thread):
    """Checkpoints a journal's WAL every CHECKPOINT_EVERY seconds, on a connection of
    its own; passive ones, which never make a writer wait."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="gridmap-journal-checkpoints", daemon=True)
        self.path = path
        self._stopping = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=0.0)
        except sqlite3.Error:
            return  # the writer checkpoints as it closes
        try:
            while not self._stopping.wait(CHECKPOINT_EVERY):
                with contextlib.suppress(sqlite3.Error):  # busy: next time
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()


class Journal:
    """A map's journal: one SQLite connection, shared by the threads of one process
    under a lock (the submitting thread adds jobs while the monitor's records them)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.directory = path.parent
        self.readonly = readonly
        self._db = connection
        self._lock = threading.RLock()
        self._pending: list[tuple[str, Sequence[Any]]] = []
        self._last_flush = time.monotonic()
        self._checkpoints: _Checkpointer | None = None
        if not readonly:
            # Copying the WAL back into the database (a checkpoint) syncs the disk: done
            # on a thread of its own, so no commit waits for it.
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpoints = _Checkpointer(path)

    # -- opening --------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike[str], record: MapRecord, *,
               session: bytes | None = None, search_path: Sequence[str] = ()) -> Journal:
        """A new journal in ``directory`` for the map ``record``."""
        path = Path(directory) / JOURNAL
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(descriptor)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT INTO map VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.id, record.name, record.backend, record.created, record.host,
                 record.pid, record.temp_dir, record.state, record.ended,
                 json.dumps(record.settings, default=str), session,
                 json.dumps(list(search_path)), SCHEMA_VERSION))
        except sqlite3.Error as error:
            raise _explain(path, error) from error
        return cls(path, db, readonly=False)

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, readonly: bool = True) -> Journal:
        """The journal of the session directory ``directory``; JournalError naming
        the file when it is missing, damaged or not a journal."""
        path = Path(directory) / JOURNAL
        if not path.is_file():
            raise JournalError(f"map journal {path} does not exist: the session directory "
                               "belongs to a map of an older gridmap, or it was removed")
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                 timeout=10.0)
            if not readonly:
                db.execute("PRAGMA synchronous=NORMAL")
            row = db.execute("SELECT version FROM map").fetchone()
        except sqlite3.Error as error:
            raise _explain(path, error) from error
        if row is None:
            raise JournalError(f"map journal {path} holds no map: it was cut short as the "
                               "map started; nothing of the map was recorded")
        return cls(path, db, readonly=readonly)

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.stop()
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._flush()
                if not self.readonly:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    # -- writing --------------------------------------------------------------------

    def _execute_now(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        try:
            self._db.execute(sql, parameters)
        except sqlite3.Error as error:
            raise _explain(self.path, error) from error

    def later(self, sql: str, parameters: Sequence[Any]) -> None:
        """Gather a change, written at the next :meth:`flush`."""
        with self._lock:
            self._pending.append((sql, parameters))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        if not pending:
            return
        self._db.execute("BEGIN")
        try:
            # Runs of the same statement go in one executemany.
            start = 0
            while start < len(pending):
                sql = pending[start][0]
                stop = start
                while stop < len(pending) and pending[stop][0] == sql:
                    stop += 1
                self._db.executemany(sql, [parameters for _, parameters in pending[start:stop]])
                start = stop
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def flush(self, *, every: float = 0.0) -> None:
        """Write the gathered changes (only when ``every`` seconds have passed since
        the last write, if given)."""
        with self._lock:
            if every and time.monotonic() - self._last_flush < every:
                return
            try:
                self._flush()
            except sqlite3.Error as error:
                raise _explain(self.path, error) from error

    def add_spec(self, key: int, spec: bytes, function: bytes) -> None:
        with self._lock:
            self._execute_now("INSERT OR IGNORE INTO specs VALUES (?,?,?)", (key, spec, function))

    def add_tasks(self, rows: Iterable[tuple[int, int, int, str, bytes]]) -> None:
        """New queued tasks: (id, spec key, position, name, pickled inputs) each."""
        now = time.time()
        with self._lock:
            try:
                self._flush()
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO tasks (id, spec, position, name, inputs, state, updated) "
                    "VALUES (?,?,?,?,?,'queued',?)",
                    ((*row, now) for row in rows))
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise _explain(self.path, error) from error

    def launched(self, tasks: Sequence[tuple[int, int, str]], *, at_once: bool = True
                 ) -> None:
        """Tasks submitted: (id, attempt, scheduler job id) each; written at once, so
        a monitor started later knows every job the scheduler may run (unless not
        ``at_once``: a task taken on by a job already recorded)."""
        now = time.time()
        with self._lock:
            for task, attempt, job_id in tasks:
                self._pending.append((
                    "UPDATE tasks SET state='queued', attempt=?, job_id=?, updated=? "
                    "WHERE id=?", (attempt, job_id, now, task)))
                self._pending.append((
                    "INSERT INTO transitions VALUES (?,?,'queued',?,?,NULL)",
                    (task, now, attempt, job_id)))
            if at_once:
                self.flush()

    def started(self, task: int, attempt: int, job_id: str, host: str) -> None:
        now = time.time()
        self.later("UPDATE tasks SET state='running', host=?, started=coalesce(started, ?), "
                   "updated=? WHERE id=?", (host, now, now, task))
        self.later("INSERT INTO transitions VALUES (?,?,'running',?,?,?)",
                   (task, now, attempt, job_id, host))

    def resubmitted(self, task: int, attempt: int, cause: str, kind: str) -> None:
        """Task ``task`` died of ``cause`` and goes again as ``attempt``."""
        now = time.time()
        self.later("UPDATE tasks SET state='queued', attempt=?, resubmits=resubmits+1, "
                   "cause=?, kind=?, updated=? WHERE id=?", (attempt, cause, kind, now, task))
        self.later("INSERT INTO transitions VALUES (?,?,'died',?,'',?)",
                   (task, now, attempt - 1, cause))

    def store_result(self, task: int, attempt: int, payload: bytes | bytearray | memoryview,
                     *, ok: bool, host: str, commit: bool = True) -> None:
        """Keep a RESULT payload and end its task (succeeded, or failed: the job
        raised); committed before this returns, with every change gathered so far
        (unless not ``commit``: then at the next :meth:`flush`, which the caller
        makes before anyone is told the result was kept)."""
        now = time.time()
        state = "succeeded" if ok else "failed"
        with self._lock:
            if len(payload) > INLINE_RESULT:
                where = self._result_file(task, attempt, payload)
            else:
                where = "journal"
                self._pending.append(("INSERT OR REPLACE INTO results VALUES (?,?,?)",
                                      (task, attempt, bytes(payload))))
            self._pending.append((
                "UPDATE tasks SET state=?, host=?, result=?, ended=?, updated=? WHERE id=?",
                (state, host, where, now, now, task)))
            self._pending.append(("INSERT INTO transitions VALUES (?,?,?,?,'',?)",
                                  (task, now, state, attempt, host)))
            if commit:
                self.flush()

    def _result_file(self, task: int, attempt: int,
                     payload: bytes | bytearray | memoryview) -> str:
        folder = self.directory / RESULTS
        folder.mkdir(mode=0o700, exist_ok=True)
        name = f"{RESULTS}/{task}-{attempt}.result"
        descriptor = os.open(self.directory / name,
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        return name

    def ended(self, task: int, attempt: int, state: str, cause: str | None,
              kind: str | None, host: str = "") -> None:
        """A task ended without a result: ``dead`` (out of resubmissions) or
        ``cancelled``."""
        now = time.time()
        self.later("UPDATE tasks SET state=?, cause=coalesce(?, cause), kind=coalesce(?, kind), "
                   "host=CASE WHEN ?='' THEN host ELSE ? END, ended=?, updated=? WHERE id=?",
                   (state, cause, kind, host, host, now, now, task))
        self.later("INSERT INTO transitions VALUES (?,?,?,?,'',?)",
                   (task, now, state, attempt, cause))

    def set_state(self, state: str) -> None:
        """The map's own state: running, succeeded, failed or cancelled."""
        with self._lock:
            self._pending.append(("UPDATE map SET state=?, ended=? WHERE 1",
                                  (state, None if state == "running" else time.time())))
            self.flush()

    # -- reading --------------------------------------------------------------------

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as error:
                raise _explain(self.path, error) from error

    def map_record(self) -> MapRecord:
        row = self.query("SELECT id, name, backend, created, host, pid, temp_dir, state, "
                          "ended, settings FROM map")[0]
        try:
            settings = json.loads(row[9])
        except ValueError:
            settings = {}
        (identity, name, backend, created, host, pid, temp_dir, state, ended) = row[:9]
        return MapRecord(identity, name, backend, created, host, pid, temp_dir, state, ended,
                         settings)

    def session_options(self) -> bytes | None:
        """The pickled options the map's session was opened with."""
        return self.query("SELECT session FROM map")[0][0]  # type: ignore[no-any-return]

    def search_path(self) -> list[str]:
        return list(json.loads(self.query("SELECT search_path FROM map")[0][0]))

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        return dict(self.query("SELECT state, count(*) FROM tasks GROUP BY state"))

    def tasks(self, states: Sequence[str] | None = None, *, offset: int = 0,
              limit: int = -1, failures_first: bool = False) -> list[TaskRow]:
        """Jobs, in the map's order (failures first if asked), ``limit`` from ``offset``."""
        where = f" WHERE state IN ({','.join('?' * len(states))})" if states else ""
        order = ("CASE state WHEN 'dead' THEN 0 WHEN 'failed' THEN 1 ELSE 2 END, "
                 if failures_first else "")
        rows = self.query(f"SELECT {_TASK_COLUMNS} FROM tasks{where} ORDER BY {order}"
                           "position LIMIT ? OFFSET ?", (*(states or ()), limit, offset))
        return [TaskRow(*row) for row in rows]

    def task(self, key: int | str) -> TaskRow | None:
        """A job by its task id, its position in the map, or its name."""
        if isinstance(key, int) or str(key).isdigit():
            rows = self.query(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE position=?",
                               (int(key),))
        else:
            rows = self.query(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE name=?", (key,))
        return TaskRow(*rows[0]) if rows else None

    def inputs(self, task: int) -> bytes:
        return bytes(self.query("SELECT inputs FROM tasks WHERE id=?", (task,))[0][0])

    def specs(self) -> dict[int, tuple[bytes, bytes]]:
        """Per spec key: the pickled spec (without its function) and the function."""
        return {key: (bytes(spec), bytes(function))
                for key, spec, function in self.query("SELECT key, spec, function FROM specs")}

    def result(self, task: int) -> bytes | None:
        """The RESULT payload stored for ``task``; None when it has none."""
        row = self.query("SELECT result FROM tasks WHERE id=?", (task,))
        if not row or not row[0][0]:
            return None
        where = row[0][0]
        if where == "journal":
            found = self.query("SELECT payload FROM results WHERE task=?", (task,))
            return bytes(found[0][0]) if found else None
        try:
            return bytes((self.directory / where).read_bytes())
        except OSError as error:
            raise JournalError(f"the result of task {task} was in {self.directory / where}, "
                               f"which cannot be read: {error.strerror}") from error

    def transitions(self, since: float = 0.0) -> Iterator[tuple[int, float, str, int, str]]:
        """(task, time, state, attempt, job id) of each transition after ``since``."""
        yield from self.query("SELECT task, at, state, attempt, job_id FROM transitions "
                               "WHERE at > ? ORDER BY at", (since,))

    def ended_per_interval(self, seconds: float) -> list[tuple[float, int]]:
        """(start of interval, jobs that ended in it): the map's throughput."""
        return [(float(start), int(count)) for start, count in self.query(
            "SELECT CAST(ended / ? AS INTEGER) * ?, count(*) FROM tasks "
            "WHERE ended IS NOT NULL GROUP BY 1 ORDER BY 1", (seconds, seconds))]
