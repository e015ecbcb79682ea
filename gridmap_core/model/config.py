"""Settings, and where each value came from.

Precedence, highest first: a function argument, the environment (the original
GridMap's variable names), a file named by ``GRIDMAP_CONFIG``, the project's file
(``gridmap.toml`` in the working directory, else ``[tool.gridmap]`` in its
``pyproject.toml``), the user's file (``gridmap/config.toml`` in the platform's
configuration directory), and the built-in default. Within a file, a section
``[backends.NAME]`` overrides the file's top level while backend NAME is in use.

The core declares its settings in :mod:`gridmap_core.model.core_settings`; a plugin
declares its own in its contribution (``BackendSpec.settings`` and the like), and
they are read the same way. The core's are read at once. A plugin's is read when it
is first asked for (by name, or through :meth:`Settings.including`), or at once when
an argument or a file names it, so that settings alone never need the plugin
registry, and a process that has no plugin manager (or a map's own, fresh one) does
not build the process-wide one to read them. A backend's options are declared as
:class:`~gridmap_core.model.setting.Option` and checked by
:meth:`Settings.checked_backend_options`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gridmap_core.model.core_settings import SETTINGS
from gridmap_core.model.layers import ARGUMENT, ENVIRONMENT, Layer, file_layers, user_config_path
from gridmap_core.model.setting import UNSET, ConfigError, Option, Setting

__all__ = ["SETTINGS", "ConfigError", "Option", "Setting", "Settings", "load_settings",
           "plugin_settings", "user_config_path"]

_CORE_BY_KEY = {s.key: s for s in SETTINGS.values()}


def plugin_settings() -> dict[str, Setting]:
    """The settings the installed plugins declare, by name (read from the process-wide
    plugin manager, built here if no one has built it yet)."""
    from gridmap_core.plugins.manager import get_plugin_manager  # plugins import us

    return {name: setting for name, (setting, _) in
            get_plugin_manager().declared_settings().items()}


def _setting_for_key(key: str) -> Setting | None:
    """The setting a key names (any case), the core's first; the plugins' are looked up
    only for a key that is not the core's."""
    setting = _CORE_BY_KEY.get(key.lower())
    if setting is not None:
        return setting
    return next((s for s in plugin_settings().values() if s.key == key.lower()), None)


def _known_keys() -> list[str]:
    return [*_CORE_BY_KEY, *(s.key for s in plugin_settings().values())]


def _resolve(setting: Setting, layers: Sequence[Layer], backend: str | None
             ) -> tuple[Any, str]:
    """The value of ``setting`` from the first layer that gives it, and where it was
    given (``"default"`` for the default)."""
    for layer in layers:
        found = layer.find(setting, backend)
        if found is not None:
            raw, where = found
            try:
                return setting.convert(raw), where
            except ValueError as error:
                raise ConfigError(
                    f"{where}: {raw!r} is not valid for {setting.name}; expected {error}."
                ) from None
    return setting.default_value(), "default"


class _Resolved(Mapping[str, Any]):
    """The values (or sources) read so far; a plugin's setting is read on first use."""

    def __init__(self, settings: Settings, table: dict[str, Any]) -> None:
        self._settings = settings
        self._table = table

    def __getitem__(self, name: str) -> Any:
        if name not in self._table:
            self._settings._read_declared(name)
        return self._table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._table))

    def __len__(self) -> int:
        return len(self._table)


class Settings:
    """Effective settings: each value and the source it came from.

    Read a value as ``settings["NUM_RESUBMITS"]``, or as an attribute in lower case
    (``settings.num_resubmits``); ``settings.sources[NAME]`` says where it came from.
    ``backend_options(name)`` holds the keys of a ``[backends.NAME]`` section that are
    not settings: options a backend declares for itself.
    """

    def __init__(self, layers: Sequence[Layer] = (), backend: str | None = None) -> None:
        self.layers = tuple(layers)
        #: The backend whose ``[backends.NAME]`` sections apply, if any.
        self.section = backend
        self._values: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        self.values: Mapping[str, Any] = _Resolved(self, self._values)
        self.sources: Mapping[str, str] = _Resolved(self, self._sources)

    def including(self, declared: Iterable[Setting]) -> Settings:
        """These settings read too (a plugin's own, from its contribution), without the
        plugin registry; returns the same settings. A name already read keeps its value."""
        for setting in declared:
            if setting.name not in self._values:
                value, source = _resolve(setting, self.layers, self.section)
                self._values[setting.name] = value
                self._sources[setting.name] = source
        return self

    def _read_declared(self, name: str) -> None:
        """Read the setting ``name`` that some installed plugin declares."""
        setting = plugin_settings().get(name)
        if setting is None:
            raise KeyError(name)
        self.including([setting])

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("layers", "section", "values", "sources"):
            raise AttributeError(name)  # not set yet (while unpickling): no recursion
        try:
            return self.values[name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Settings({dict(self._values)!r})"

    @property
    def backend(self) -> str | None:
        """The backend named in the settings, or None to pick one automatically."""
        value: str | None = self.values["BACKEND"]
        return value

    def for_backend(self, name: str) -> Settings:
        """The same settings with ``[backends.NAME]`` sections applied."""
        return _settings(self.layers, name)

    def _is_setting(self, key: str) -> bool:
        return _setting_for_key(key) is not None

    def backend_options(self, name: str) -> dict[str, tuple[Any, str]]:
        """Backend-specific options from ``[backends.NAME]`` sections: value and source."""
        options: dict[str, tuple[Any, str]] = {}
        for layer in reversed(self.layers):  # lowest precedence first, higher overwrite
            for key, value in layer.sections.get(name, {}).items():
                if not self._is_setting(key):
                    options[key] = (value, f"{layer.label} [backends.{name}]")
        return options

    def checked_backend_options(self, name: str, accepted: Sequence[str | Option],
                                given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options of backend ``name``: ``given`` (the argument ``backend_options``)
        over its ``[backends.NAME]`` sections, each converted by the type the backend
        declares (``accepted``), and the declared defaults for the rest. ConfigError
        names the first unknown key or bad value, where it was given, and what to do."""
        declared = {o.name: o for o in (Option(o) if isinstance(o, str) else o
                                        for o in accepted)}
        found: dict[str, tuple[Any, str]] = {}
        for layer in reversed(self.layers):  # lowest precedence first, higher overwrite
            for key, value in layer.sections.get(name, {}).items():
                # A declared option first: a key that is neither is checked against
                # the plugins' settings only then.
                if key in declared or not self._is_setting(key):
                    found[key] = (value, f"{layer.label} [backends.{name}]")
        found.update({key: (value, "argument backend_options")
                      for key, value in (given or {}).items()})
        options: dict[str, Any] = {}
        for key, (value, source) in found.items():
            option = declared.get(key)
            if option is None:
                raise ConfigError(
                    f"{source}: unknown key {key!r} for backend {name!r}. "
                    f"Accepted: general settings, and {', '.join(declared) or 'no others'}."
                )
            options[key] = _checked_option(name, option, value, source)
        for option in declared.values():
            if option.name not in options and option.default is not UNSET:
                options[option.name] = option.default
        return options

    def backend_sections(self) -> list[str]:
        """The backend names of every ``[backends.NAME]`` section, in the order found."""
        return list(dict.fromkeys(name for layer in self.layers for name in layer.sections))


def _checked_option(backend: str, option: Option, value: Any, source: str) -> Any:
    try:
        return option.convert(value)
    except ValueError as error:
        where = ("in backend_options=" if source.startswith(ARGUMENT)
                 else f"in the [backends.{backend}] section of that file")
        default = ("" if option.default is UNSET or option.default is None
                   else f" ({option.default!r})")
        raise ConfigError(
            f"{source}: {option.name} = {value!r} is not a valid value of option "
            f"{option.name!r} of backend {backend!r}: expected {error}. Correct it "
            f"{where}, or leave it out for the default{default}."
        ) from None


def _settings(layers: Sequence[Layer], backend: str | None = None) -> Settings:
    """The core's settings read from ``layers``, and the plugins' settings that an
    argument, a file or the backend's section names (so their values are checked now)."""
    settings = Settings(layers, backend).including(SETTINGS.values())
    named = {key for layer in layers for key in layer.entries if key not in _CORE_BY_KEY}
    if backend:
        named |= {key.lower() for layer in layers for key in layer.sections.get(backend, {})
                  if key.lower() not in _CORE_BY_KEY}
    if named:
        settings.including(s for s in plugin_settings().values() if s.key in named)
    return settings


def load_settings(
    arguments: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> Settings:
    """Read settings from arguments, the environment and config files.

    ``arguments`` maps setting names (any case) to values given in code; None values
    count as not given.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else Path(cwd)
    given: dict[str, tuple[str, Any]] = {}
    for key, value in (arguments or {}).items():
        if value is None:
            continue
        setting = _setting_for_key(key)
        if setting is None:
            known = [*SETTINGS, *plugin_settings()]
            raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(known)}")
        given[setting.key] = (setting.name, value)
    layers = (
        Layer(ARGUMENT, given),
        Layer(ENVIRONMENT, environ=dict(environ)),
        *file_layers(cwd, environ, (_setting_for_key, _known_keys)),
    )
    settings = _settings(layers)
    if settings.backend:
        settings = _settings(layers, settings.backend)
    return settings
