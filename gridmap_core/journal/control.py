"""Acting on a map from its session directory: finding a job's logs, cancelling the
map (``gridmap logs`` and ``gridmap cancel``).

A job's logs are named as its launch named them (``Launch.log_path`` and the array
forms of the backends): ``NAME.TASK.ATTEMPT.out`` for a job launched alone, and
``NAME.FIRST-LAST.ELEMENT.ATTEMPT.out`` for element ELEMENT (from 1) of an array
over tasks FIRST to LAST; ``.err`` likewise.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gridmap_core.journal.catalog import LOGS, submitter_alive
from gridmap_core.journal.store import LIVE_STATES, Journal, JournalError, TaskRow
from gridmap_core.model.death import DeathKind
from gridmap_core.wire import beacon

__all__ = ["LogFile", "cancel", "log_files"]

_ALONE = re.compile(r"\.(?P<task>\d+)\.(?P<attempt>\d+)\.(?P<stream>out|err)$")
_ARRAY = re.compile(r"\.(?P<first>\d+)-(?P<last>\d+)\.(?P<element>\d+)\.(?P<attempt>\d+)"
                    r"\.(?P<stream>out|err)$")
# How long the scheduler's cancel command may take (Slurm's controller may be away).
CANCEL_TIMEOUT = 120.0


@dataclass(frozen=True)
class LogFile:
    """One log file of a job's attempt."""

    attempt: int
    stream: str  # "out" or "err"
    path: Path
    job_id: str = ""  # the scheduler job the attempt ran in ("": not recorded)
    # The task (its position) the scheduler job was launched for, when a runner
    # launched for another task took this one on: the file holds both.
    launched_for: int | None = None


def _task_of(name: str) -> tuple[int, int, str] | None:
    """(task, attempt, stream) of the log file ``name``; None for another file."""
    array = _ARRAY.search(name)
    if array:
        first, last, element = (int(array[part]) for part in ("first", "last", "element"))
        task = first + element - 1
        if not first <= task <= last:
            return None
        return task, int(array["attempt"]), array["stream"]
    alone = _ALONE.search(name)
    if alone:
        return int(alone["task"]), int(alone["attempt"]), alone["stream"]
    return None


def _files(directory: Path) -> dict[tuple[int, int], list[tuple[str, Path]]]:
    """The log files of ``directory``, by the (task, attempt) they were launched for."""
    found: dict[tuple[int, int], list[tuple[str, Path]]] = {}
    try:
        entries = list(os.scandir(directory / LOGS))
    except OSError:
        return found
    for entry in entries:
        parsed = _task_of(entry.name)
        if parsed is not None and entry.is_file():
            found.setdefault(parsed[:2], []).append((parsed[2], Path(entry.path)))
    return found


def log_files(journal: Journal, task: TaskRow) -> list[LogFile]:
    """The log files of every attempt of ``task``, stdout before stderr.

    A log file is named after the task and attempt its scheduler job was launched
    for; a runner that finished its own task may take on another one, whose output
    then goes to the runner's files. The journal's transitions say which scheduler
    job ran each attempt, and which task and attempt that job was launched for."""
    files = _files(journal.directory)
    jobs: dict[int, str] = {}
    for attempt, job_id in journal.query(
            "SELECT attempt, job_id FROM transitions WHERE task=? AND job_id != '' "
            "ORDER BY at, rowid", (task.id,)):
        jobs.setdefault(int(attempt), str(job_id))
    found = []
    for attempt in range(task.attempt + 1):
        job_id = jobs.get(attempt, "")
        origin, launched_for = (task.id, attempt), None
        if job_id:
            first = journal.query(
                "SELECT t.task, t.attempt, k.position FROM transitions t JOIN tasks k ON "
                "k.id = t.task WHERE t.job_id=? AND t.state='queued' ORDER BY t.at, t.rowid "
                "LIMIT 1", (job_id,))
            if first and (first[0][0], first[0][1]) != origin:
                origin, launched_for = (int(first[0][0]), int(first[0][1])), int(first[0][2])
        found += [LogFile(attempt, stream, path, job_id, launched_for)
                  for stream, path in files.get(origin, [])]
    return sorted(found, key=lambda log: (log.attempt, log.stream != "out"))


def _cancel_jobs(directory: Path) -> tuple[list[str], bool]:
    """Cancel the map's scheduler jobs that may still run, in one call of the command
    the scheduler named; what was done, in lines, and whether it could be."""
    ids, command = beacon.launched(directory)
    with contextlib.suppress(JournalError), \
            contextlib.closing(Journal.open(directory)) as journal:
        # Jobs of ended tasks are left alone: the scheduler would only say they are gone.
        # But a runner whose job ended may have taken on another, still unfinished.
        states = dict(journal.query("SELECT job_id, max(state IN (?, ?)) FROM tasks "
                                    "GROUP BY job_id", LIVE_STATES))
        ids = [job_id for job_id in ids if states.get(job_id, 1)]
    if not ids:
        return ["no scheduler job of the map is left to cancel"], True
    if not command:
        return [f"the scheduler named no command that cancels jobs, so its {len(ids)} "
                "job(s) were not cancelled here; the mark stops runners that wait for a "
                "monitor, and a monitor ends the map on seeing it"], True
    argv = [*command, *ids]
    shown = " ".join(argv) if len(argv) <= 12 else " ".join([*argv[:12], "..."])
    try:
        done_run = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=CANCEL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [f"could not cancel the map's {len(ids)} scheduler job(s) with {shown}: "
                f"{error}; run it by hand"], False
    line = f"cancelled the map's {len(ids)} scheduler job(s): {shown}"
    if done_run.returncode != 0:
        said = (done_run.stderr or done_run.stdout).strip().replace("\n", "; ")
        line += (f" (it exited {done_run.returncode}: {said[:500]}; jobs that had "
                 "ended already are not there to cancel)")
    return [line], True


def _end_in_journal(directory: Path) -> list[str]:
    """With no monitor alive to do it, end the map in its journal as cancelled."""
    with contextlib.closing(Journal.open(directory, readonly=False)) as journal:
        state = journal.map_record().state
        if state not in ("running", "abandoned"):
            return [f"the journal says the map had ended already ({state}); left so"]
        unfinished = journal.tasks(LIVE_STATES)
        for task in unfinished:
            journal.ended(task.id, task.attempt, "cancelled", "the map was cancelled "
                          "(gridmap cancel)", DeathKind.CANCELLED.value)
        journal.flush()
        journal.set_state("cancelled")
    return [f"no monitor serves the map: its journal now says cancelled, with "
            f"{len(unfinished)} unfinished job(s) cancelled"]


def cancel(directory: Path) -> tuple[list[str], bool]:
    """Cancel the map of ``directory``: write the ``cancelled`` mark (runners that wait
    for a monitor exit on it, a monitor ends the map on it), cancel its scheduler
    jobs, and end it in its journal when no monitor lives to. What was done, in
    lines, and whether all of it could be."""
    made = beacon.mark(directory, beacon.CANCELLED,
                       f"gridmap cancel, pid {os.getpid()} on {socket.gethostname()}")
    lines = [f"{'wrote' if made else 'found'} the cancelled mark in {directory}"]
    told, ok = _cancel_jobs(directory)
    lines += told
    if submitter_alive(directory):
        lines.append("a monitor serves the map: it ends the map on seeing the mark")
        return lines, ok
    try:
        lines += _end_in_journal(directory)
    except JournalError as error:
        lines.append(f"could not mark the map cancelled in its journal: {error}")
        ok = False
    return lines, ok
