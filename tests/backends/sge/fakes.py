"""Fakes shared by the Grid Engine backend's unit tests: a DRMAA connection, qstat,
the scheduler module's clock, and a harness that drives the scheduler through them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from gridmap_sge.native import NativeOptions
from gridmap_sge.qstat import Snapshot
from gridmap_sge.scheduler import SgeScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.drmaa import DrmaaConnection, DrmaaError, Ending
from gridmap_core.backend.scheduler import JobStatus, Launch
from gridmap_core.model.resources import Resources


class FakeConnection:
    """DrmaaConnection's interface: numbers job ids from 100, hands out endings that a
    test put in ``ended`` once they are reaped."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.ended: dict[str, Ending] = {}
        self.reaped: dict[str, Ending] = {}
        self.terminated: list[str] = []
        self.releases = 0
        self.refuse: str | None = None
        self._next = 100

    def submit(self, **request: Any) -> list[str]:
        if self.refuse:
            raise DrmaaError(self.refuse)
        self.submitted.append(request)
        number = str(self._next)
        self._next += 1
        count = int(request["count"])
        return [number] if count == 1 else [f"{number}.{i}" for i in range(1, count + 1)]

    def reap(self) -> None:
        self.reaped.update(self.ended)
        self.ended.clear()

    def take(self, ids: Sequence[str]) -> dict[str, Ending]:
        return {i: self.reaped.pop(i) for i in ids if i in self.reaped}

    def terminate(self, target: str) -> None:
        self.terminated.append(target)

    def release(self) -> None:
        self.releases += 1


class FakeQstat:
    """qstat's answers: ``jobs`` and the queue instance of each running job (``places``)
    always, ``queues`` only when asked with ``full``; ``error`` is raised instead, when
    set."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, int | None], str] = {}
        self.places: dict[tuple[str, int | None], str] = {}
        self.queues: dict[str, str] = {}
        self.calls: list[bool] = []
        self.error: Exception | None = None

    def __call__(self, full: bool = False) -> Snapshot:
        self.calls.append(full)
        if self.error is not None:
            raise self.error
        snapshot: Snapshot = Snapshot(jobs=dict(self.jobs),
                                      queues=dict(self.queues) if full else {},
                                      places=dict(self.places))
        return snapshot


class Clock:
    """Stands in for the scheduler module's ``time``: a monotonic clock a test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Harness:
    def __init__(self, tmp_path: Path, options: NativeOptions | None = None) -> None:
        self.tmp_path = tmp_path
        self.connection = FakeConnection()
        self.qstat = FakeQstat()
        self.scheduler = SgeScheduler(cast(DrmaaConnection, self.connection),
                                      options or NativeOptions(), qstat=self.qstat)

    def launch_of(self, tasks: Sequence[int], *, add_env: Mapping[str, str] | None = None,
                  queue: str | None = None, name: str = "batch", attempt: int = 0) -> Launch:
        spec = JobSpec(function=print, resources=Resources.parse(queue=queue), name=name,
                       working_dir=str(self.tmp_path), copy_env=False,
                       add_env=dict(add_env or {}))
        return Launch(spec=spec, tasks=list(tasks), attempt=attempt,
                      log_dir=str(self.tmp_path),
                      runner=["python3", "-m", "gridmap_core.node.runner", "--address",
                              "tcp://head:5555"],
                      name=name)

    def launch(self, tasks: Sequence[int], **kwargs: Any) -> list[str]:
        ids: list[str] = self.scheduler.launch(self.launch_of(tasks, **kwargs))
        return ids

    def poll(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        return dict(self.scheduler.poll(ids))
