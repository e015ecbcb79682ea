"""The monitor's tasks: one job across its attempts, and the table of those not yet ended."""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gridmap_core.backend import Batch, DeathKind, Failure
from gridmap_core.wire.protocol import ReplayGuard

__all__ = [
    "ENDED", "MAX_TRACK", "QUEUED", "RUNNING", "NoRecord", "Recorder", "Task", "TaskTable",
    "failure_of", "job_name",
]

QUEUED, RUNNING, ENDED = "queued", "running", "ended"
# Heartbeats kept per job for track_cpu/track_mem: the most recent 2,000 (5.5 hours
# at one beat per 10 s), so a long map's memory stays bounded.
MAX_TRACK = 2000


@dataclass(eq=False)
class Task:
    """One job of a batch, across its attempts."""

    id: int
    batch: Batch
    index: int
    attempt: int = 0
    job_id: str = ""
    state: str = QUEUED
    last_seen: float = 0.0  # monotonic time of its last message
    running_since: float | None = None  # when the scheduler first said running
    host_name: str = ""  # where this attempt runs, as its runner said
    # Where the scheduler runs (or last ran) this attempt, as it names the node: what a
    # job that dies before its runner said where it runs is known by.
    scheduler_host: str = ""
    idle_since: float | None = None  # monotonic time from which its beats show it idle
    idle_warned: bool = False
    resubmits: int = 0
    track_cpu: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_TRACK))
    track_mem: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_TRACK))
    heart_beat: dict[str, Any] | None = None
    note: str = ""  # why the scheduler says it waits, as last told to its sink
    suspended_at: float | None = None  # when the scheduler was first seen suspending it


class Recorder(Protocol):
    """Keeps the map's record as its tasks change (the journal,
    :class:`~gridmap_core.map.journaling.MapJournal`). A ``result`` is staged; the
    ``commit`` after it keeps it for good, and only then is its runner answered."""

    def launched(self, tasks: Sequence[Task]) -> None: ...

    def taken(self, task: Task) -> None: ...

    def started(self, task: Task, host: str) -> None: ...

    def result(self, task: Task, payload: Any, *, ok: bool, host: str) -> None: ...

    def commit(self) -> None: ...

    def resubmitted(self, task: Task, cause: str, kind: str) -> None: ...

    def dead(self, task: Task, cause: str, kind: str) -> None: ...

    def cancelled(self, tasks: Sequence[Task]) -> None: ...


class NoRecord:
    """A :class:`Recorder` that keeps nothing (a table on its own, in tests)."""

    def launched(self, tasks: Sequence[Task]) -> None:
        pass

    def taken(self, task: Task) -> None:
        pass

    def started(self, task: Task, host: str) -> None:
        pass

    def result(self, task: Task, payload: Any, *, ok: bool, host: str) -> None:
        pass

    def commit(self) -> None:
        pass

    def resubmitted(self, task: Task, cause: str, kind: str) -> None:
        pass

    def dead(self, task: Task, cause: str, kind: str) -> None:
        pass

    def cancelled(self, tasks: Sequence[Task]) -> None:
        pass


def job_name(task: Task) -> str:
    """The job's own name: a batch's spec carries only one job's name (the first
    of those that share it), so the sink is asked first."""
    return task.batch.sink.job_name(task.index) or f"{task.batch.spec.name}{task.index}"


def failure_of(task: Task, exception: BaseException | None, traceback: str | None,
               cause: str | None, host: str = "", kind: DeathKind | None = None) -> Failure:
    """The :class:`Failure` a task's sink is told, with the task's history."""
    return Failure(exception, traceback, host or task.host_name or task.scheduler_host,
                   cause, task.resubmits,
                   tuple(task.track_cpu), tuple(task.track_mem), task.heart_beat,
                   task.job_id, kind)


class TaskTable:
    """The session's tasks not yet ended, and what goes with them: what the monitor's
    parts share. The session (:mod:`gridmap_core.map.monitor`) adds tasks and, closing,
    cancels their jobs; the serving of runners (:mod:`gridmap_core.map.serving`) and
    the watching of jobs (:mod:`gridmap_core.map.job_watch`) move them on.

    The submitting thread adds tasks while the monitor's thread ends them, so every
    change is made under :attr:`lock`. The monitor's thread reads one entry of
    :attr:`live` without it: a single dict read is atomic.
    """

    def __init__(self, guard: ReplayGuard, *, reuse_runners: bool) -> None:
        # The replay guard remembers each live task; it forgets a task with the table.
        self.guard = guard
        self.reuse_runners = reuse_runners
        self.lock = threading.Lock()
        self.live: dict[int, Task] = {}  # tasks not yet ended
        self.ended: set[int] = set()  # ids of ended tasks, to acknowledge retried results
        # Per spec key, tasks in submission order that a finishing runner may take
        # (those that started meanwhile are skipped as they come up).
        self.takeable: dict[int, list[Task]] = {}
        self.superseded: list[str] = []  # scheduler jobs whose task a runner took
        self.functions: dict[int, bytes] = {}  # spec key -> pickled function
        # Set when the session closes: from then on no task is resubmitted or taken.
        self.closed = False
        self.failures = 0  # jobs reported failed: their logs are kept
        self.record: Recorder = NoRecord()  # the map's journal
        self._next_id = 0

    def add(self, batch: Batch, indices: Sequence[int]) -> list[Task]:
        """New tasks for the jobs ``indices`` of ``batch``, with consecutive ids."""
        with self.lock:
            first = self._next_id
            self._next_id += len(indices)
            tasks = [Task(first + n, batch, index) for n, index in enumerate(indices)]
            for task in tasks:
                self.live[task.id] = task
        return tasks

    def adopt(self, tasks: Sequence[Task], ended: Sequence[int]) -> None:
        """Take on the unfinished ``tasks`` of a map served before by another
        monitor, whose tasks ``ended`` had ended; new tasks get ids after them all."""
        with self.lock:
            for task in tasks:
                self.live[task.id] = task
            self.ended.update(ended)
            self._next_id = max([self._next_id, *(t.id + 1 for t in tasks),
                                 *(i + 1 for i in ended)])

    def discard(self, tasks: Sequence[Task]) -> None:
        """Forget tasks that could not be launched."""
        with self.lock:
            for task in tasks:
                del self.live[task.id]

    def launched(self, tasks: Sequence[Task], job_ids: Sequence[str]) -> None:
        """``tasks`` run as the scheduler jobs ``job_ids``. With REUSE_RUNNERS, a
        finishing runner may take them on, unless they have an ``h_rt``: its runtime
        limit belongs to the scheduler job, and would be shared."""
        with self.lock:
            for task, job_id in zip(tasks, job_ids, strict=True):
                task.job_id = job_id
                if self.reuse_runners and task.batch.spec.resources.h_rt is None:
                    self.takeable.setdefault(task.batch.spec.key, []).append(task)
        self.record.launched(tasks)

    def take(self, done: Task) -> Task | None:
        """A queued task of ``done``'s request, moved to ``done``'s scheduler job under
        its next attempt; None when none waits.

        Tasks are taken from the end of the queue, whose scheduler jobs are the least
        likely to have started. The job a taken task was submitted as goes to
        :attr:`superseded`, to be cancelled; should it start anyway, its fetch names
        the old attempt and is answered STOP."""
        with self.lock:
            queue = self.takeable.get(done.batch.spec.key)
            while queue:
                task = queue.pop()
                if task.state == QUEUED and task.job_id and task.id in self.live:
                    break
            else:
                return None
            self.superseded.append(task.job_id)
            self.guard.forget(task.id, task.attempt)
            task.attempt += 1
            task.job_id = done.job_id
        self.record.taken(task)
        return task

    def pop_superseded(self) -> list[str]:
        """The scheduler jobs whose tasks runners took, now to be cancelled."""
        with self.lock:
            ids, self.superseded = self.superseded, []
        return ids

    def end(self, task: Task) -> None:
        """A task is over: forget it, so its arguments and history can be freed."""
        task.state = ENDED
        self.guard.forget(task.id)
        with self.lock:
            self.live.pop(task.id, None)
            self.ended.add(task.id)

    def by_job(self) -> dict[str, Task]:
        """The live tasks that have a scheduler job, by its id."""
        with self.lock:
            return {task.job_id: task for task in self.live.values() if task.job_id}

    def job_ids(self) -> list[str]:
        """Every scheduler job of the session still to be ended: its live tasks' and
        those superseded and not cancelled yet."""
        with self.lock:
            return [task.job_id for task in self.live.values() if task.job_id] \
                + self.superseded

    def snapshot(self) -> list[Task]:
        """The live tasks. Started and ended tasks leave the takeable queues here, not
        one by one, so their arguments and histories can be freed."""
        with self.lock:
            tasks = list(self.live.values())
            for key, queue in list(self.takeable.items()):
                queue[:] = [task for task in queue if task.state == QUEUED]
                if not queue:
                    del self.takeable[key]
        return tasks
