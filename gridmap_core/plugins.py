"""The plugin manager: entry-point loading, and typed getters for each plugin kind.

Built-in backends register through the entry-point group ``gridmap`` exactly like a
third party's. A plugin that fails to import is remembered, logged at debug level,
and its error raised only when someone asks for it by name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pluggy

from . import hookspecs
from .plugin_types import BackendSpec, NotifierSpec, PluginLoadError, TransportSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginManager",
    "UnknownPluginError",
    "get_plugin_manager",
    "hookimpl",
]

ENTRY_POINT_GROUP = "gridmap"
hookimpl = pluggy.HookimplMarker("gridmap")
logger = logging.getLogger(__name__)

_Spec = TypeVar("_Spec", BackendSpec, TransportSpec, NotifierSpec)


class UnknownPluginError(LookupError):
    """A plugin name that no installed plugin registered."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with gridmap's hooks and typed getters."""

    def __init__(self) -> None:
        super().__init__("gridmap")
        self.add_hookspecs(hookspecs)
        # entry-point name -> (distribution, error) for plugins that failed to import
        self.broken: dict[str, tuple[str, BaseException]] = {}
        self._distributions: dict[str, tuple[str, str]] = {}

    def load_entry_points(self) -> None:
        """Import and register every plugin of the ``gridmap`` entry-point group."""
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            package = (dist.name, dist.version) if dist is not None else ("?", "?")
            if self.get_plugin(entry_point.name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:
                logger.debug("gridmap plugin %r failed to load", entry_point.name, exc_info=True)
                self.broken[entry_point.name] = (package[0], error)
                continue
            self.register(plugin, name=entry_point.name)
            self._distributions[entry_point.name] = package

    def distribution_of(self, spec_name: str, kind: str) -> tuple[str, str]:
        """(package, version) of the plugin that registered ``spec_name``."""
        for plugin_name, plugin in self.list_name_plugin():
            for spec in self._specs_from(plugin, kind):
                if spec.name == spec_name:
                    return self._distributions.get(plugin_name or "", (plugin_name or "?", ""))
        return ("?", "")

    def _specs_from(self, plugin: Any, kind: str) -> Iterable[Any]:
        hook = getattr(plugin, f"gridmap_{kind}s", None)
        return hook() or () if callable(hook) else ()

    def _collect(self, kind: str, spec_type: type[_Spec]) -> dict[str, _Spec]:
        found: dict[str, _Spec] = {}
        owners: dict[str, str] = {}
        for plugin_name, plugin in self.list_name_plugin():
            for spec in self._specs_from(plugin, kind):
                if not isinstance(spec, spec_type):
                    raise TypeError(
                        f"plugin {plugin_name!r}: gridmap_{kind}s must return "
                        f"{spec_type.__name__} objects, not {type(spec).__name__}"
                    )
                if spec.name in found:
                    raise ValueError(
                        f"{kind} {spec.name!r} is registered twice: by plugin "
                        f"{owners[spec.name]!r} and by plugin {plugin_name!r}"
                    )
                found[spec.name] = spec
                owners[spec.name] = plugin_name or "?"
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
        raise UnknownPluginError(
            f"no backend called {name!r} (asked for by {where}). Installed backends: "
            f"{available}. Choose one of those, or install the package that provides "
            f"{name!r} (plugin may not be installed)."
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
