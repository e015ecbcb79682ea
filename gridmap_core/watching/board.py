"""What the status page shows: every job of an executor's maps, kept up to date by
the lifecycle events, and read as snapshots by the page's server.

Events arrive on the monitor's thread and must cost it next to nothing: each only
stamps its job's row with a new version under a short lock. Rows are built from the
Job objects when the page asks, on the server's thread, and only for jobs whose stamp
is newer than what the page already has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from gridmap_core.model.job import Job, JobState

__all__ = ["TRACK_POINTS", "Board"]

TRACK_POINTS = 500  # at most this many points of a job's CPU or memory track are sent
LOG_TAIL = 4096  # characters of a job's log on its page
STATES = tuple(state.value for state in JobState if state is not JobState.CREATED)


class Board:
    """The jobs of one executor, as the status page sees them.

    It is a notifier: a plugin of its executor's own manager, whose ``gridmap_*``
    methods hear every event of that executor's jobs.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.backend = ""
        self.started = time.time()
        self.finished: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._rows: dict[int, int] = {}  # id(job) -> its row
        self._stamps: list[int] = []
        # Per row, the causes of death of its earlier attempts: a resubmitted job's
        # row no longer shows a cause, its page lists them.
        self._history: list[list[str]] = []
        # Per row, why the scheduler says the job waits in its queue (the monitor's
        # note); shown while the job is queued.
        self._waiting: list[str] = []
        self.version = 0

    # -- events (the monitor's thread) --------------------------------------------------

    def _touch(self, job: Job, *, waiting: str | None = None,
               died_of: str | None = None) -> None:
        """Stamp ``job``'s row (made if new) with a new version, with its new note on
        why it waits or the cause of an earlier attempt's death: under one lock with
        the stamp, so that no snapshot has the one without the other."""
        with self._lock:
            self.version += 1
            row = self._rows.get(id(job))
            if row is None:
                row = self._rows[id(job)] = len(self._jobs)
                self._jobs.append(job)
                self._stamps.append(self.version)
                self._history.append([])
                self._waiting.append("")
            else:
                self._stamps[row] = self.version
            if waiting is not None:
                self._waiting[row] = waiting
            if died_of is not None:
                self._history[row].append(died_of)

    def gridmap_job_submitted(self, job: Job) -> None:
        self.backend = job.backend or self.backend
        self._touch(job)

    def gridmap_job_waiting(self, job: Job, note: str) -> None:
        self._touch(job, waiting=note)

    def gridmap_job_started(self, job: Job) -> None:
        self._touch(job)

    def gridmap_job_heartbeat(self, job: Job, heartbeat: dict[str, Any]) -> None:
        self._touch(job)

    def gridmap_job_finished(self, job: Job) -> None:
        self._touch(job)

    def gridmap_job_failed(self, job: Job) -> None:
        self._touch(job)

    def gridmap_job_died(self, job: Job) -> None:
        self._touch(job)

    def gridmap_job_resubmitted(self, job: Job) -> None:
        # Queued again: what the scheduler said of its earlier wait no longer holds.
        self._touch(job, waiting="", died_of=job.cause_of_death or "no cause given")

    def gridmap_map_finished(self, jobs: Sequence[Job], summary: dict[str, Any]) -> None:
        for job in jobs:  # a cancelled job has no event of its own
            if id(job) in self._rows:
                self._touch(job)
        with self._lock:
            self.finished = {k: summary.get(k) for k in ("total", "succeeded", "failed",
                                                          "wall_time")}
            self.version += 1

    # -- snapshots (the server's threads) -----------------------------------------------

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """The map's state: counts of every state, and the rows changed after ``since``."""
        with self._lock:
            version = self.version
            jobs = list(self._jobs)
            stamps = list(self._stamps)
            waiting = list(self._waiting)
            finished = self.finished
        counts = dict.fromkeys(STATES, 0)
        changed = []
        for index, (job, stamp) in enumerate(zip(jobs, stamps, strict=True)):
            state = job.state.value
            counts[state] = counts.get(state, 0) + 1
            if stamp > since:
                changed.append(row_of(index, job, waiting[index]))
        return {"version": version, "name": self.name, "backend": self.backend,
                "started": self.started, "total": len(jobs), "counts": counts,
                "finished": finished, "jobs": changed}

    def job(self, index: int) -> Job | None:
        with self._lock:
            return self._jobs[index] if 0 <= index < len(self._jobs) else None

    def detail(self, index: int) -> dict[str, Any] | None:
        """One job's row with its CPU and memory tracks, log tail and traceback."""
        job = self.job(index)
        if job is None:
            return None
        beat = job.heart_beat or {}
        with self._lock:
            history = list(self._history[index])
            waiting = self._waiting[index]
        return {**row_of(index, job, waiting), "version": self.version, "history": history,
                "track_cpu": thin(list(job.track_cpu)),
                "track_mem": thin(list(job.track_mem)),
                "log_tail": str(beat.get("log_tail") or "")[-LOG_TAIL:],
                "traceback": job.traceback or "",
                "error": _error_of(job)}


def row_of(index: int, job: Job, waiting: str = "") -> dict[str, Any]:
    """A job's line in the table. ``waiting`` is why the scheduler says it waits
    (shown while it is queued); ``warning`` what the monitor warns of while it runs
    (that it has been idle and will be killed)."""
    live = job.state is JobState.RUNNING
    queued = job.state is JobState.SUBMITTED
    beat = job.heart_beat or {}
    return {"index": index, "name": job.name, "state": job.state.value,
            "host": job.host_name or "", "id": str(job.id) if job.id not in (None, -1) else "",
            "cpu": job.track_cpu[-1] if live and job.track_cpu else None,
            "memory": round(job.track_mem[-1], 1) if live and job.track_mem else None,
            "resubmits": job.num_resubmits, "cause": cause_of(job),
            "waiting": waiting if queued else "",
            "warning": str(beat.get("warning") or "") if live else ""}


def cause_of(job: Job) -> str:
    """Why the job died, while it is dead: a resubmitted job is alive again (the
    cause of its earlier death stays in its history)."""
    return (job.cause_of_death or "") if job.state is JobState.DEAD else ""


def thin(values: list[float], points: int = TRACK_POINTS) -> list[float]:
    """At most ``points`` values, evenly picked, the last one always kept."""
    if len(values) <= points:
        return values
    step = (len(values) - 1) / (points - 1)
    return [values[round(i * step)] for i in range(points)]


def _error_of(job: Job) -> str:
    if job.state is not JobState.FAILED or not isinstance(job.ret, BaseException):
        return ""
    return f"{type(job.ret).__name__}: {job.ret}"
