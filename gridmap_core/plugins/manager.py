"""The plugin manager: entry-point loading, and typed getters for each plugin kind.

Built-in backends register through the entry-point group ``gridmap`` exactly like a
third party's. A plugin that fails to import is remembered, logged at debug level,
and its error raised only when someone asks for it by name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pluggy

from gridmap_core.errors import GridMapError
from gridmap_core.model.events import TYPED_HOOK, Event
from gridmap_core.model.setting import ConfigError, Setting
from gridmap_core.plugins import hookspecs
from gridmap_core.plugins.types import BackendSpec, NotifierSpec, PluginLoadError, TransportSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginManager",
    "UnknownPluginError",
    "call_each",
    "deliver",
    "get_plugin_manager",
    "hookimpl",
    "hooks_of",
    "plugin_failed",
]

ENTRY_POINT_GROUP = "gridmap"
hookimpl = pluggy.HookimplMarker("gridmap")
logger = logging.getLogger(__name__)

_Spec = TypeVar("_Spec", BackendSpec, TransportSpec, NotifierSpec)


class UnknownPluginError(GridMapError, LookupError):
    """A plugin name that no installed plugin registered."""


def call_each(caller: pluggy.HookCaller, arguments: Mapping[str, Any],
              failed: Callable[[str], None]) -> None:
    """Call every implementation of a hook, each with the ``arguments`` it takes. One
    that raises does not keep the others from being called: ``failed(plugin_name)``
    is called instead, in the ``except`` block (so it may log the traceback)."""
    for impl in caller.get_hookimpls():
        try:
            impl.function(*(arguments[name] for name in impl.argnames))
        except Exception:
            failed(impl.plugin_name)


def plugin_failed(plugin_name: str, hook: str) -> None:
    """How a plugin that raised in a lifecycle hook is logged: every time, with its
    traceback; the map goes on."""
    logger.exception("a gridmap plugin failed in %s (plugin %r); continuing", hook,
                     plugin_name)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with gridmap's hooks and typed getters."""

    def __init__(self) -> None:
        super().__init__("gridmap")
        self.add_hookspecs(hookspecs)
        # entry-point name -> (distribution, error) for plugins that failed to import
        self.broken: dict[str, tuple[str, BaseException]] = {}
        self._distributions: dict[str, tuple[str, str]] = {}
        self._loaded: set[tuple[str, str]] = set()

    def load_entry_points(self) -> None:
        """Import and register every plugin of the ``gridmap`` entry-point group.

        A plugin that fails to import or to register is remembered in ``broken``
        (entry-point name -> package, error) and does not stop the others.
        """
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            package = (dist.name, dist.version) if dist is not None else ("?", "?")
            if (package[0], entry_point.name) in self._loaded:
                continue
            self._loaded.add((package[0], entry_point.name))
            # Two packages may use one entry-point name; both register, so a clash of
            # backend names is reported with both packages rather than one dropped.
            plugin_name = entry_point.name
            if self.get_plugin(plugin_name) is not None or plugin_name in self.broken:
                plugin_name = f"{entry_point.name} ({package[0]})"
            try:
                plugin = entry_point.load()
                self.register(plugin, name=plugin_name)
            except Exception as error:
                logger.debug("gridmap plugin %r failed to load", plugin_name, exc_info=True)
                self.broken[plugin_name] = (package[0], error)
                continue
            self._distributions[plugin_name] = package

    def broadcast(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of a lifecycle hook; log, never raise, failures.

        Unlike ``self.hook.NAME(...)``, an observer that raises does not keep the
        observers after it from hearing the event. (The core tells its events through
        :func:`deliver`, which calls hooks the same way.)
        """
        call_each(getattr(self.hook, hook), kwargs,
                  lambda plugin_name: plugin_failed(plugin_name, hook))

    def package_of(self, plugin_name: str) -> str:
        """The package (distribution) that installed a plugin, or the plugin's name."""
        return self._distributions.get(plugin_name, (plugin_name, ""))[0]

    def distribution_of(self, spec_name: str, kind: str) -> tuple[str, str]:
        """(package, version) of the plugin that registered ``spec_name``."""
        for plugin_name, plugin in self.list_name_plugin():
            for spec in self._specs_from(plugin_name, plugin, kind):
                if spec.name == spec_name:
                    return self._distributions.get(plugin_name or "", (plugin_name or "?", ""))
        return ("?", "")

    def _specs_from(self, plugin_name: str, plugin: Any, kind: str) -> Iterable[Any]:
        hook = getattr(plugin, f"gridmap_{kind}s", None)
        if not callable(hook):
            return ()
        try:
            return list(hook() or ())
        except Exception as error:
            # One plugin that cannot list its backends must not take the others down.
            logger.warning("gridmap plugin %r failed in gridmap_%ss: %s", plugin_name, kind, error)
            self.broken.setdefault(plugin_name, (self.package_of(plugin_name), error))
            return ()

    def _collect(self, kind: str, spec_type: type[_Spec]) -> dict[str, _Spec]:
        found: dict[str, _Spec] = {}
        owners: dict[str, str] = {}
        for plugin_name, plugin in self.list_name_plugin():
            for spec in self._specs_from(plugin_name, plugin, kind):
                if not isinstance(spec, spec_type):
                    raise TypeError(
                        f"plugin {plugin_name!r}: gridmap_{kind}s must return "
                        f"{spec_type.__name__} objects, not {type(spec).__name__}"
                    )
                owner = f"{plugin_name!r} of package {self.package_of(plugin_name)!r}"
                if spec.name in found:
                    raise ValueError(
                        f"{kind} {spec.name!r} is registered twice: by plugin "
                        f"{owners[spec.name]} and by plugin {owner}; uninstall one of them"
                    )
                found[spec.name] = spec
                owners[spec.name] = owner
        return dict(sorted(found.items()))

    def backends(self) -> dict[str, BackendSpec]:
        """Every registered backend, by name."""
        return self._collect("backend", BackendSpec)

    def transports(self) -> dict[str, TransportSpec]:
        """Every registered transport, by name."""
        return self._collect("transport", TransportSpec)

    def notifiers(self) -> dict[str, NotifierSpec]:
        """Every registered notifier, by name."""
        return self._collect("notifier", NotifierSpec)

    def declared_settings(self) -> dict[str, tuple[Setting, str]]:
        """Every setting a registered backend, transport or notifier declares, by name,
        with what declares it ("notifier email"). A setting declared differently by
        two of them, or named as one of the core's, is an error naming both."""
        from gridmap_core.model.core_settings import SETTINGS

        found: dict[str, tuple[Setting, str]] = {}
        kinds: tuple[tuple[str, dict[str, Any]], ...] = (
            ("backend", self.backends()), ("transport", self.transports()),
            ("notifier", self.notifiers()))
        for kind, specs in kinds:
            for spec in specs.values():
                owner = f"{kind} {spec.name}"
                for setting in spec.settings:
                    if setting.name in SETTINGS:
                        raise ConfigError(
                            f"{owner} (package {self.distribution_of(spec.name, kind)[0]!r}) "
                            f"declares the setting {setting.name!r}, which is gridmap's own; "
                            "the plugin must name its setting otherwise")
                    if setting.name in found and found[setting.name][0] != setting:
                        raise ConfigError(
                            f"setting {setting.name!r} is declared twice: by "
                            f"{found[setting.name][1]} and by {owner}; uninstall one of them")
                    found.setdefault(setting.name, (setting, owner))
        return found

    def backend(self, name: str, where: str = "argument backend") -> BackendSpec:
        """The backend called ``name``; ``where`` says who asked, for the error."""
        backends = self.backends()
        if name in backends:
            return backends[name]
        if name in self.broken:
            package, error = self.broken[name]
            raise PluginLoadError(
                f"backend {name!r} (asked for by {where}) is installed by package "
                f"{package!r} but failed to load: {type(error).__name__}: {error}"
            ) from error
        available = ", ".join(backends) or "none"
        broken = "".join(
            f" Plugins that failed to load: {plugin!r} of package {package!r}: "
            f"{type(error).__name__}: {error}."
            for plugin, (package, error) in sorted(self.broken.items())
        )
        raise UnknownPluginError(
            f"no backend called {name!r} (asked for by {where}). Installed backends: "
            f"{available}.{broken} Choose an installed backend, or install the package "
            f"that provides {name!r} (plugin may not be installed)."
        )


_manager: PluginManager | None = None
_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _manager
    with _lock:
        if _manager is None:
            manager = PluginManager()
            manager.load_entry_points()
            _manager = manager
        return _manager


def hooks_of(manager: pluggy.PluginManager, hooks: Sequence[str]) -> bool:
    """Whether any plugin of ``manager`` implements one of ``hooks`` or the typed hook
    (which hears every event)."""
    return any(getattr(manager.hook, hook).get_hookimpls() for hook in (TYPED_HOOK, *hooks))


def deliver(manager: pluggy.PluginManager, event: Event,
            failed: Callable[[str, str], None]) -> None:
    """Tell ``event`` to every implementation of the typed hook, then of its named hook.

    Unlike ``manager.hook.NAME(...)``, one that raises does not keep the others from
    hearing it: ``failed(plugin_name, hook)`` is called instead, in the ``except``
    block (so it may log the traceback), and delivery goes on.
    """
    call_each(getattr(manager.hook, TYPED_HOOK), {"event": event},
              lambda plugin_name: failed(plugin_name, TYPED_HOOK))
    call_each(getattr(manager.hook, event.hook), event.arguments(),
              lambda plugin_name: failed(plugin_name, event.hook))
