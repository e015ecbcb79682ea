"""The local backend: jobs run on this machine, in long-lived worker processes fed
chunks of a batch (:mod:`gridmap_local.pool`), or, with the option ``mode = "runner"``,
each as a runner process of its own, through the monitor (see
:mod:`gridmap_local.processes`).
"""

from __future__ import annotations

import os
import tempfile

from gridmap_core.backend import Availability, JobSpec, SessionOptions
from gridmap_core.map.monitor import MonitoredSession, open_monitored

from .pool import LocalSession
from .processes import ProcessScheduler

__all__ = ["LocalBackend"]


class LocalBackend:
    """Runs jobs in worker processes on this machine; always usable."""

    def availability(self) -> Availability:
        return Availability(True, f"{os.cpu_count() or 1} CPUs on this machine")

    def check(self, spec: JobSpec) -> None:
        """Accept every request: cluster-only requests (queue, memory, slots) are
        ignored here, as in the original's local mode, so one script runs both ways."""

    def open(self, options: SessionOptions) -> LocalSession | MonitoredSession:
        # "workers" or "runner": declared in gridmap_local.plugin, checked by the core.
        if options.options.get("mode", "workers") == "workers":
            return LocalSession(options)
        # Local jobs share this host's file system, so any directory will do.
        work_dir = options.temp_dir if os.path.isdir(options.temp_dir) else tempfile.gettempdir()
        scheduler = ProcessScheduler(options.max_processes)
        python = options.options.get("python")
        session = open_monitored(scheduler, options, python=python, work_dir=work_dir,
                                 name="local-monitor")
        scheduler.poll_soon = session.poll_soon
        return session
