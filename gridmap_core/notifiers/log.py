"""The ``log`` notifier: one structured line per job event and per finished map,
through the standard logging module (logger ``gridmap.events``).

Each line is ``event key=value …``, values quoted when they hold spaces, so it can
be read by people and by log tools alike. Heartbeats go out at debug level, the
rest at info level, failures and deaths at warning level.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from gridmap_core.model.job import Job

__all__ = ["LogNotifier", "format_event"]
logger = logging.getLogger("gridmap.events")


def format_event(event: str, fields: Mapping[str, Any]) -> str:
    """``event key=value …``, each value quoted for a shell when it needs it."""
    parts = [event]
    for key, value in fields.items():
        if value is None or value == "":
            continue
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shlex.quote(text)}")
    return " ".join(parts)


def _job_fields(job: Job) -> dict[str, Any]:
    return {"job": job.name, "id": "" if job.id in (-1, "") else job.id,
            "backend": job.backend, "host": job.host_name}


def _death_fields(job: Job) -> dict[str, Any]:
    kind = job.death_kind.value if job.death_kind is not None else ""
    return {**_job_fields(job), "kind": kind, "cause": job.cause_of_death,
            "resubmits": job.num_resubmits}


class LogNotifier:
    """Logs every lifecycle event (see the module's doc)."""

    def __init__(self, settings: Any = None) -> None:
        self.logger = logger

    def _log(self, level: int, event: str, fields: Mapping[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s", format_event(event, fields))

    def gridmap_job_submitted(self, job: Job) -> None:
        self._log(logging.INFO, "job_submitted", _job_fields(job))

    def gridmap_job_started(self, job: Job) -> None:
        self._log(logging.INFO, "job_started", _job_fields(job))

    def gridmap_job_heartbeat(self, job: Job, heartbeat: Mapping[str, Any]) -> None:
        self._log(logging.DEBUG, "job_heartbeat", {
            **_job_fields(job), "cpu": float(heartbeat.get("cpu", 0.0)),
            "memory_mb": float(heartbeat.get("memory", 0)) / 2**20})

    def gridmap_job_finished(self, job: Job) -> None:
        self._log(logging.INFO, "job_finished", _job_fields(job))

    def gridmap_job_failed(self, job: Job) -> None:
        error = job.ret
        self._log(logging.WARNING, "job_failed", {
            **_job_fields(job), "exception": type(error).__name__ if error is not None else "",
            "message": str(error)[:500] if error is not None else ""})

    def gridmap_job_died(self, job: Job) -> None:
        self._log(logging.WARNING, "job_died", _death_fields(job))

    def gridmap_job_resubmitted(self, job: Job) -> None:
        self._log(logging.WARNING, "job_resubmitted", _death_fields(job))

    def gridmap_map_finished(self, jobs: Sequence[Job], summary: Mapping[str, Any]) -> None:
        fields = {key: summary.get(key) for key in ("name", "backend", "total", "succeeded",
                                                    "failed", "cancelled", "wall_time")}
        self._log(logging.INFO, "map_finished", fields)
