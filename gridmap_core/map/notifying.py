"""The notifiers of one executor: made from the NOTIFIERS setting, registered as the
plugins of the executor's own plugin manager for its lifetime, told of every lifecycle
event, and kept from harming the map whatever they do.

Their lifecycle methods (``gridmap_job_failed(job)``, ``gridmap_event(event)``, …) are
hook implementations whether or not they are marked with ``@hookimpl``. Each executor
has a manager of its own, not the process-wide one (:func:`get_plugin_manager`), which
several executors may share at once: so a notifier hears its own executor's jobs only.

A notifier that raises is logged once (later failures of the same notifier at debug
level, so a dead mail server does not flood the log) and keeps being called: it may
recover. Closing unregisters them and waits a bounded time for what they still send.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

import pluggy

from gridmap_core.model.config import ConfigError
from gridmap_core.model.events import EVENTS, TYPED_HOOK, Event
from gridmap_core.plugins import hookspecs
from gridmap_core.plugins.manager import PluginManager, deliver, hooks_of
from gridmap_core.plugins.types import load_factory

__all__ = ["LIFECYCLE_HOOKS", "NotifierManager", "Notifiers"]
logger = logging.getLogger(__name__)

#: The hooks a notifier's methods implement: the typed one and every event's own.
LIFECYCLE_HOOKS = frozenset({TYPED_HOOK, *(event.hook for event in EVENTS)})


def notifier_names(value: str) -> list[str]:
    """The names in a NOTIFIERS value: comma- or space-separated, duplicates dropped."""
    names: list[str] = []
    for name in value.replace(",", " ").split():
        if name not in names:
            names.append(name)
    return names


class NotifierManager(pluggy.PluginManager):
    """One executor's plugin manager for its notifiers and its status board: gridmap's
    hooks, with a notifier's unmarked lifecycle methods taken as implementations."""

    def __init__(self) -> None:
        super().__init__("gridmap")
        self.add_hookspecs(hookspecs)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in LIFECYCLE_HOOKS \
                and inspect.isroutine(getattr(plugin, name, None)):
            opts = pluggy.HookimplOpts(wrapper=False, hookwrapper=False, optionalhook=False,
                                       tryfirst=False, trylast=False, specname=None)
        return opts


class Notifiers:
    """The notifiers named by a NOTIFIERS setting, made with the map's settings."""

    def __init__(self, notifiers: Mapping[str, Any]) -> None:
        self.manager = NotifierManager()
        self.notifiers: dict[str, Any] = {}
        self._failures: dict[str, int] = {}
        self._closed = False
        for name, notifier in notifiers.items():
            self.add(name, notifier)

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
        """Register ``notifier`` under ``name`` (in the log too), to hear every event
        until :meth:`close`; a method of a hook's name that does not take that hook's
        arguments is a :class:`ConfigError`."""
        try:
            self.manager.register(notifier, name=name)
        except pluggy.PluginValidationError as error:
            what = "; ".join(line.strip() for line in str(error).splitlines())
            raise ConfigError(
                f"notifier {name!r} cannot be used: {what}. Its lifecycle methods must "
                "take the arguments of the hooks they are named after (docs/plugins.md)"
            ) from None
        self.notifiers[name] = notifier

    def listens_to(self, hooks: tuple[str, ...]) -> bool:
        """Whether any notifier implements one of ``hooks``, or hears every event."""
        return hooks_of(self.manager, hooks)

    def tell(self, event: Event) -> None:
        """Tell every notifier that implements the event's hook; never raise."""
        deliver(self.manager, event, self._failed_in)

    def _failed_in(self, name: str, hook: str) -> None:
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
        """Unregister every notifier and let each finish within ``timeout`` seconds in
        all; idempotent."""
        if self._closed:
            return
        self._closed = True
        for name in self.notifiers:  # from now on they hear nothing
            self.manager.unregister(name=name)
        deadline = time.monotonic() + timeout
        for name, notifier in self.notifiers.items():
            close = getattr(notifier, "close", None)
            if close is None:
                continue
            try:
                close(max(0.0, deadline - time.monotonic()))
            except Exception:
                self._failed(name, "while closing")
