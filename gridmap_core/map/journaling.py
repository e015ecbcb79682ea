"""What the monitor tells its map's journal, in the monitor's own terms (tasks).

:class:`MapJournal` turns the moments of a task's life (added, launched, started,
resubmitted, ended) into :class:`~gridmap_core.journal.store.Journal` writes, and
keeps the ``launched`` file of the session directory (:mod:`gridmap_core.wire.beacon`)
that runners cancel the map's jobs from when they give it up.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from gridmap_core.backend import Batch, JobSpec
from gridmap_core.journal.store import Journal, JournalError
from gridmap_core.map.tasks import Task
from gridmap_core.model.serialization import dumps
from gridmap_core.wire import beacon

__all__ = ["MapJournal", "position_of", "spec_record"]
logger = logging.getLogger("gridmap_core.map.monitor")


_Method = TypeVar("_Method", bound=Callable[..., None])


def _guarded(method: _Method) -> _Method:
    """A write that a broken journal skips, and whose failure breaks it."""

    @functools.wraps(method)
    def guarded(self: MapJournal, *args: Any, **kwargs: Any) -> None:
        if self.broken is not None:
            return
        began, cpu = time.perf_counter(), time.thread_time()
        try:
            method(self, *args, **kwargs)
        except JournalError as error:
            self._failed(error)
        self.seconds += time.perf_counter() - began
        self.cpu_seconds += time.thread_time() - cpu

    return cast(_Method, guarded)


def position_of(batch: Batch, index: int, task_id: int) -> int:
    """Where a job stands in its map's order: the sink's ``positions`` when it has
    them (a map of prepared jobs, batched by request), else the task's id."""
    positions = getattr(batch.sink, "positions", None)
    return int(positions[index]) if positions is not None else task_id


def function_kept_apart(*args: Any, **kwargs: Any) -> Any:
    """The function of a spec read back from a journal: the real one is kept apart,
    pickled as the runners get it, and only they load it."""
    raise RuntimeError("this job's function is kept apart in the map's journal")


def spec_record(spec: JobSpec) -> bytes:
    """A spec as the journal keeps it: without its function, which is kept as the
    runners get it, so reading the spec back imports none of the user's modules."""
    return pickle.dumps(dataclasses.replace(spec, function=function_kept_apart))


class MapJournal:
    """The monitor's side of its map's journal (a
    :class:`~gridmap_core.map.tasks.Recorder`); every method is called with the
    table's tasks as they change."""

    def __init__(self, journal: Journal, directory: Path,
                 cancel_command: Sequence[str] | None) -> None:
        self.journal = journal
        self.directory = directory
        self._cancel = list(cancel_command) if cancel_command else None
        self._named = False
        self.broken: JournalError | None = None
        # Spent writing the journal, for the benchmarks: in all (waits for the disk and
        # for the interpreter's lock included), and on a CPU.
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def _failed(self, error: JournalError) -> None:
        """A write failed (a full disk, a damaged file): said once, loudly. The map
        goes on in this process, unrecorded from here: its jobs matter more than a
        record that could not be kept."""
        if self.broken is None:
            self.broken = error
            logger.error("%s. The map goes on, but from now on it is not recorded: it "
                         "cannot be attached again should this process end", error)

    def flush(self) -> None:
        """Write what was gathered, if a second has passed (the monitor's sweep)."""
        if self.broken is None:
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                self.journal.flush(every=1.0)
            except JournalError as error:
                self._failed(error)
            self.seconds += time.perf_counter() - began
            self.cpu_seconds += time.thread_time() - cpu

    @_guarded
    def added(self, batch: Batch, tasks: Sequence[Task], function: bytes) -> None:
        """New tasks of ``batch``, with their arguments, before they are launched."""
        spec = batch.spec
        if not self._named:
            self._named = True
            self.journal.later("UPDATE map SET name=? WHERE 1", (spec.name,))
        self.journal.add_spec(spec.key, spec_record(spec), function)
        kwargs = batch.kwargs
        namer = batch.sink.job_name
        self.journal.add_tasks(
            (task.id, spec.key, position_of(batch, task.index, task.id),
             namer(task.index) or f"{spec.name}{task.index}",
             dumps((batch.args[task.index],
                    kwargs[task.index] if kwargs is not None else None)))
            for task in tasks)

    @_guarded
    def launched(self, tasks: Sequence[Task]) -> None:
        self.journal.launched([(task.id, task.attempt, task.job_id) for task in tasks])
        try:
            beacon.record_launched(self.directory, [task.job_id for task in tasks],
                                   self._cancel)
        except OSError as error:  # only the runners' last resort needs it
            logger.debug("could not add to the list of launched jobs: %s", error)

    @_guarded
    def taken(self, task: Task) -> None:
        """A queued task taken on by the scheduler job of a runner that finished
        another (REUSE_RUNNERS): written with the next result, as that job is known."""
        self.journal.launched([(task.id, task.attempt, task.job_id)], at_once=False)

    @_guarded
    def started(self, task: Task, host: str) -> None:
        self.journal.started(task.id, task.attempt, task.job_id, host)

    @_guarded
    def result(self, task: Task, payload: Any, *, ok: bool, host: str) -> None:
        """Stage a result; kept for good by the :meth:`commit` that must come before
        its runner is answered."""
        self.journal.store_result(task.id, task.attempt, payload, ok=ok, host=host,
                                  commit=False)

    @_guarded
    def commit(self) -> None:
        """Keep the staged results (and every change gathered) for good."""
        self.journal.flush()

    @_guarded
    def resubmitted(self, task: Task, cause: str, kind: str) -> None:
        self.journal.resubmitted(task.id, task.attempt, cause, kind)

    @_guarded
    def dead(self, task: Task, cause: str, kind: str) -> None:
        self.journal.ended(task.id, task.attempt, "dead", cause, kind, task.host_name)

    @_guarded
    def cancelled(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            self.journal.ended(task.id, task.attempt, "cancelled", None, None)
