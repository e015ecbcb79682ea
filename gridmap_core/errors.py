"""The one base of every error gridmap raises, so that a caller can catch them all.

Each error keeps the builtin base it had (``ResourceError`` is still a ``ValueError``,
``BackendUnavailableError`` an ``ImportError``), so code that caught those goes on
working. This module imports nothing, so every part may import it.
"""

from __future__ import annotations

__all__ = ["GridMapError"]


class GridMapError(Exception):
    """Base of gridmap's errors: bad input, settings, plugins, transports, schedulers,
    and failed jobs (:class:`~gridmap_core.model.job.JobException`)."""
