"""Opening a monitored session over a scheduler: what every ``Backend.open`` of a
backend that runs jobs through the monitor protocol ends with."""

from __future__ import annotations

from gridmap_core.backend import SessionOptions
from gridmap_core.backend.scheduler import Scheduler
from gridmap_core.map.monitor import MonitoredSession

__all__ = ["open_monitored"]


def open_monitored(scheduler: Scheduler, options: SessionOptions, *, name: str,
                   python: object = None, work_dir: str | None = None) -> MonitoredSession:
    """A :class:`MonitoredSession` over ``scheduler``, named ``name`` (its thread's name).

    ``python`` is the interpreter the runners start with (the backend's ``python``
    option; empty or None for this one's), ``work_dir`` where the session's private
    directory goes (``options.temp_dir`` by default: it must be visible to the nodes).
    When the session cannot start (a bad transport, a port in use), the scheduler is
    closed before the error goes on, since no session will ever close it: its
    connection or threads would otherwise outlive the failed ``open``.
    """
    try:
        return MonitoredSession(scheduler, options,
                                work_dir=options.temp_dir if work_dir is None else work_dir,
                                python=str(python) if python else None, name=name)
    except BaseException:
        scheduler.close()
        raise
