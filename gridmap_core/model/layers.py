"""Where settings come from: one :class:`Layer` per source (arguments, the environment,
each config file), which finds the raw value a source gives a setting and says where
it was given.

Config files are, highest precedence first: the file named by ``GRIDMAP_CONFIG``, the
project's file (``gridmap.toml`` in the working directory, else ``[tool.gridmap]`` in
its ``pyproject.toml``) and the user's file (``gridmap/config.toml`` in the
platform's configuration directory). A section ``[backends.NAME]`` overrides its
file's top level while backend NAME is in use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap_core.model.setting import ConfigError, Setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["ARGUMENT", "ENVIRONMENT", "Layer", "file_layers", "user_config_path"]

ARGUMENT, ENVIRONMENT = "argument", "environment"


@dataclass(frozen=True)
class Layer:
    """The values one source gives, with its label (a file's path, "argument", or
    "environment"). ``entries`` maps a setting's key (its name in lower case) to the
    key as written and its raw value; the environment layer reads ``environ``
    instead, so that a plugin's setting is found by its variable when asked for."""

    label: str
    entries: Mapping[str, tuple[str, Any]] = field(default_factory=dict)
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    environ: Mapping[str, str] | None = None

    def find(self, setting: Setting, backend: str | None) -> tuple[Any, str] | None:
        """The raw value this layer gives ``setting`` while ``backend`` is in use, and
        where it was given; None when it gives none."""
        if backend:
            for key, value in self.sections.get(backend, {}).items():
                if key.lower() == setting.key:
                    return value, f"{self.label} [backends.{backend}], key {key!r}"
        if self.environ is not None:
            if setting.env_var in self.environ:
                return self.environ[setting.env_var], f"environment variable {setting.env_var}"
            return None
        entry = self.entries.get(setting.key)
        if entry is None:
            return None
        key, value = entry
        if self.label == ARGUMENT:
            return value, f"argument {key.lower()}"
        return value, f"{self.label}, key {key!r}"


def user_config_path() -> Path:
    """The user's config file in the platform's configuration directory."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "gridmap" / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror}") from None


#: Finds the setting a config-file key names (None for none), and lists the keys.
Known = tuple[Callable[[str], Setting | None], Callable[[], list[str]]]


def _layer_from_table(table: Mapping[str, Any], label: str, known: Known) -> Layer:
    find, keys = known
    entries: dict[str, tuple[str, Any]] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key == "backends" and isinstance(value, Mapping):
            for name, section in value.items():
                if not isinstance(section, Mapping):
                    raise ConfigError(f"{label}: [backends.{name}] must be a table of settings")
                sections[name] = dict(section)
            continue
        setting = find(key)
        if setting is None:
            raise ConfigError(
                f"{label}: unknown key {key!r}. Accepted keys: "
                + ", ".join(sorted(keys()))
                + ", and [backends.NAME] tables."
            )
        entries[setting.key] = (key, value)
    return Layer(label, entries, sections)


def _file_layer(path: Path, known: Known, table_path: tuple[str, ...] = ()) -> Layer | None:
    data: Any = _read_toml(path)
    for part in table_path:
        data = data.get(part) if isinstance(data, Mapping) else None
        if data is None:
            return None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: [{'.'.join(table_path)}] must be a table")
    label = f"{path} [{'.'.join(table_path)}]" if table_path else str(path)
    return _layer_from_table(data, label, known)


def file_layers(cwd: Path, environ: Mapping[str, str], known: Known) -> list[Layer]:
    """Config-file layers, highest precedence first; every key is checked with
    ``known``."""
    layers: list[Layer | None] = []
    named = environ.get("GRIDMAP_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"GRIDMAP_CONFIG names {str(path)!r}, which is not a file. "
                "Point it at a TOML file or unset it."
            )
        layers.append(_file_layer(path, known))
    project = cwd / "gridmap.toml"
    pyproject = cwd / "pyproject.toml"
    if project.is_file():
        layers.append(_file_layer(project, known))
    elif pyproject.is_file():
        layers.append(_file_layer(pyproject, known, ("tool", "gridmap")))
    user = user_config_path()
    if user.is_file():
        layers.append(_file_layer(user, known))
    return [layer for layer in layers if layer]
