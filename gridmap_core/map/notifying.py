"""The notifiers of one executor: made from the NOTIFIERS setting, told of every
lifecycle event, and kept from harming the map whatever they do.

A notifier that raises is logged once (later failures of the same notifier at debug
level, so a dead mail server does not flood the log) and keeps being called: it may
recover. Closing waits a bounded time for what notifiers still send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from gridmap_core.model.config import ConfigError
from gridmap_core.plugins.manager import PluginManager
from gridmap_core.plugins.types import load_factory

__all__ = ["EVERY_JOB_HOOKS", "FAILURE_HOOKS", "Notifiers"]
logger = logging.getLogger(__name__)

# Hooks heard for every job, and hooks heard only for jobs that fail or die: grid_map
# makes Job objects for every input only when someone listens to the first kind.
EVERY_JOB_HOOKS = ("gridmap_job_submitted", "gridmap_job_waiting", "gridmap_job_started",
                   "gridmap_job_heartbeat", "gridmap_job_finished")
FAILURE_HOOKS = ("gridmap_job_failed", "gridmap_job_died", "gridmap_job_resubmitted")


def notifier_names(value: str) -> list[str]:
    """The names in a NOTIFIERS value: comma- or space-separated, duplicates dropped."""
    names: list[str] = []
    for name in value.replace(",", " ").split():
        if name not in names:
            names.append(name)
    return names


class Notifiers:
    """The notifiers named by a NOTIFIERS setting, made with the map's settings."""

    def __init__(self, notifiers: Mapping[str, Any]) -> None:
        self.notifiers = dict(notifiers)
        self._failures: dict[str, int] = {}
        self._closed = False

    @classmethod
    def load(cls, settings: Any, plugins: PluginManager) -> Notifiers:
        """Make the notifiers NOTIFIERS names; an unknown name or a notifier refusing
        its settings is a :class:`ConfigError`, raised before anything is submitted."""
        names = notifier_names(str(settings["NOTIFIERS"]))
        if not names:
            return cls({})
        registered = plugins.notifiers()
        made: dict[str, Any] = {}
        for name in names:
            spec = registered.get(name)
            if spec is None:
                raise ConfigError(
                    f"NOTIFIERS names {name!r}, which is not a registered notifier. "
                    f"Registered: {', '.join(sorted(registered)) or 'none'} "
                    "(`gridmap plugins` lists them; empty NOTIFIERS turns notifying off)."
                )
            factory = load_factory("notifier", name, spec.factory)
            try:
                made[name] = factory(settings)
            except (ValueError, TypeError) as error:
                raise ConfigError(f"notifier {name!r}: {error}") from None
        return cls(made)

    def add(self, name: str, notifier: Any) -> None:
        """Tell ``notifier`` of every event too, under ``name`` in the log."""
        self.notifiers[name] = notifier

    def listens_to(self, hooks: tuple[str, ...]) -> bool:
        """Whether any notifier has a method for one of ``hooks``."""
        return any(callable(getattr(n, hook, None)) for n in self.notifiers.values()
                   for hook in hooks)

    def call(self, hook: str, kwargs: Mapping[str, Any]) -> None:
        """Tell every notifier that has a method for ``hook``; never raise."""
        for name, notifier in self.notifiers.items():
            method = getattr(notifier, hook, None)
            if method is None:
                continue
            try:
                method(**kwargs)
            except Exception:
                self._failed(name, f"in {hook}")

    def _failed(self, name: str, where: str) -> None:
        count = self._failures[name] = self._failures.get(name, 0) + 1
        if count == 1:
            logger.warning("notifier %r failed %s; the map goes on (further failures of "
                           "this notifier are logged at debug level)", name, where,
                           exc_info=True)
        else:
            logger.debug("notifier %r failed %s again", name, where, exc_info=True)

    def close(self, timeout: float) -> None:
        """Let every notifier finish within ``timeout`` seconds in all; idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for name, notifier in self.notifiers.items():
            close = getattr(notifier, "close", None)
            if close is None:
                continue
            try:
                close(max(0.0, deadline - time.monotonic()))
            except Exception:
                self._failed(name, "while closing")
