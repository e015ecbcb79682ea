"""Registers the built-in notifiers through the ``gridmap`` entry-point group.

Imported whenever gridmap reads its plugin registry, so the notifiers themselves (and
smtplib, matplotlib) are loaded only when a map uses them.
"""

from __future__ import annotations

from gridmap_core.plugins.manager import hookimpl
from gridmap_core.plugins.types import NotifierSpec


@hookimpl
def gridmap_notifiers() -> list[NotifierSpec]:
    """The built-in notifiers: ``email`` (the default) and ``log``."""
    return [
        NotifierSpec(
            name="email",
            factory="gridmap_core.notifiers.mailer:EmailNotifier",
            description="mail on failed and dead jobs (with CPU/memory plots) and, when "
            "asked, on completion",
        ),
        NotifierSpec(
            name="log",
            factory="gridmap_core.notifiers.log:LogNotifier",
            description="one log line per job event, through the logging module",
        ),
    ]
