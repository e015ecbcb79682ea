"""A plugin that records the lifecycle events observers hear, for the conformance suite
and the tests of observers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from gridmap_core.model.job import Job
from gridmap_core.plugins.manager import get_plugin_manager, hookimpl

__all__ = ["EventRecorder"]


class EventRecorder:
    """A plugin that records every lifecycle event it hears, as (event, job name, the
    job's scheduler id at that moment). Register it with :meth:`listening`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | int | None]] = []
        self.summaries: list[dict[str, Any]] = []

    def _add(self, event: str, job: Job) -> None:
        self.events.append((event, job.name, job.id))

    @hookimpl
    def gridmap_job_submitted(self, job: Job) -> None:
        self._add("submitted", job)

    @hookimpl
    def gridmap_job_started(self, job: Job) -> None:
        self._add("started", job)

    @hookimpl
    def gridmap_job_heartbeat(self, job: Job, heartbeat: dict[str, Any]) -> None:
        self._add("heartbeat", job)

    @hookimpl
    def gridmap_job_finished(self, job: Job) -> None:
        self._add("finished", job)

    @hookimpl
    def gridmap_job_failed(self, job: Job) -> None:
        self._add("failed", job)

    @hookimpl
    def gridmap_job_died(self, job: Job) -> None:
        self._add("died", job)

    @hookimpl
    def gridmap_job_resubmitted(self, job: Job) -> None:
        self._add("resubmitted", job)

    @hookimpl
    def gridmap_map_finished(self, jobs: list[Job], summary: dict[str, Any]) -> None:
        self.summaries.append(summary)
        self.events.append(("map_finished", f"{summary['succeeded']}/{summary['total']}",
                            None))

    def of(self, name: str) -> list[str]:
        """The events of the job called ``name``, each run of heartbeats as one."""
        seen: list[str] = []
        for event, job, _ in self.events:
            if job == name and not (event == "heartbeat" and seen[-1:] == ["heartbeat"]):
                seen.append(event)
        return seen

    def ids(self, name: str) -> list[str | int | None]:
        """The job's scheduler id at each of its events."""
        return [job_id for _, job, job_id in self.events if job == name]

    @contextlib.contextmanager
    def listening(self) -> Iterator[EventRecorder]:
        """Registered with gridmap's plugin manager for the block's duration."""
        manager = get_plugin_manager()
        name = f"event-recorder-{id(self)}"
        manager.register(self, name=name)
        try:
            yield self
        finally:
            manager.unregister(name=name)
