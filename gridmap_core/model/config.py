"""Settings, and where each value came from.

Precedence, highest first: a function argument, the environment (the original
GridMap's variable names), a file named by ``GRIDMAP_CONFIG``, the project's file
(``gridmap.toml`` in the working directory, else ``[tool.gridmap]`` in its
``pyproject.toml``), the user's file (``gridmap/config.toml`` in the platform's
configuration directory), and the built-in default. Within a file, a section
``[backends.NAME]`` overrides the file's top level while backend NAME is in use.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap_core.errors import GridMapError
from gridmap_core.transports import DEFAULT_TRANSPORT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["SETTINGS", "ConfigError", "Setting", "Settings", "load_settings"]


class ConfigError(GridMapError, ValueError):
    """A setting whose value, file or key is not understood."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("true or false (also 1/0, yes/no, on/off)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("a whole number") from None


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("a number") from None


def _to_seconds(value: Any) -> int | float:
    """A positive duration in seconds; whole numbers stay ints, as the original's were."""
    number = _to_float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError("a number of seconds above 0")
    return int(number) if number.is_integer() else number


def _to_seconds_or_off(value: Any) -> int | float:
    """A duration in seconds, or 0 for no limit."""
    if _to_float(value) == 0:
        return 0
    try:
        return _to_seconds(value)
    except ValueError:
        raise ValueError("a number of seconds above 0, or 0 for no limit") from None


def _to_optional_int(value: Any) -> int | None:
    return None if value is None or value == "" else _to_int(value)


def _to_str(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("a string")
    return str(value)


def _to_optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else _to_str(value)


def _default_smtp_server() -> str:
    return ".".join(socket.gethostname().split(".")[-3:])


def _default_recipient() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container: keep going
        user = os.environ.get("USER", "gridmap")
    return "{}@{}".format(user, ".".join(socket.gethostname().split(".")[-2:]))


@dataclass(frozen=True)
class Setting:
    """One setting: its canonical (environment variable) name, type and default."""

    name: str
    convert: Callable[[Any], Any]
    default: Any
    help: str
    env: str | None = None
    #: Never printed: ``gridmap config`` shows only whether it is set.
    secret: bool = False

    @property
    def env_var(self) -> str:
        """The environment variable that sets it."""
        return self.env or self.name

    @property
    def key(self) -> str:
        """Its key in a config file (lower case; upper case is accepted too)."""
        return self.name.lower()

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            "BACKEND",
            _to_optional_str,
            None,
            "backend to use; unset picks the best usable one (local when no cluster is configured)",
            env="GRIDMAP_BACKEND",
        ),
        Setting("USE_MEM_FREE", _to_bool, False, "does the cluster accept mem_free requests?"),
        Setting("DEFAULT_QUEUE", _to_str, "all.q", "default queue (partition on Slurm)"),
        Setting(
            "DEFAULT_TEMP_DIR",
            _to_str,
            "/scratch/",
            "directory for job logs; must be shared with compute nodes",
        ),
        Setting("DEFAULT_PAR_ENV", _to_str, "smp", "parallel environment for num_slots > 1"),
        Setting("CREATE_PLOTS", _to_bool, True, "attach CPU/memory plots to mails"),
        Setting("SEND_ERROR_MAIL", _to_bool, True, "mail when a job fails or dies"),
        Setting("SMTP_SERVER", _to_str, _default_smtp_server, "SMTP server for mails"),
        Setting("ERROR_MAIL_SENDER", _to_str, "error@gridmap.py", "sender of mails"),
        Setting("ERROR_MAIL_RECIPIENT", _to_str, _default_recipient,
                "recipient of mails (several: separated by commas)"),
        Setting("NOTIFIERS", _to_str, "email",
                "notifiers told of failures and finished maps, comma-separated (email, log; "
                "empty: none)", env="GRIDMAP_NOTIFIERS"),
        Setting("SMTP_SECURITY", _to_str, "none",
                "how mail is sent: none (plain SMTP), starttls, or ssl (SMTPS)"),
        Setting("SMTP_USER", _to_str, "", "user to log in to the SMTP server as (empty: none)"),
        Setting("SMTP_PASSWORD", _to_str, "", "password for SMTP_USER", secret=True),
        Setting("SMTP_TIMEOUT", _to_seconds, 10, "seconds a mail may take to send"),
        Setting("SMTP_CAFILE", _to_str, "",
                "CA certificates to trust for starttls/ssl besides the system's"),
        Setting("ERROR_MAIL_DIGEST", _to_int, 3,
                "more failures than this within ERROR_MAIL_WINDOW go out as one mail"),
        Setting("ERROR_MAIL_WINDOW", _to_seconds, 5,
                "seconds failures are gathered before their mails go out"),
        Setting("PROGRESS_INTERVAL", _to_seconds, 30,
                "seconds between progress lines of a map with quiet=False when its output "
                "is not a terminal", env="GRIDMAP_PROGRESS_INTERVAL"),
        Setting("STATUS_PAGE", _to_bool, False,
                "serve a live status page of each map (its address is printed as it starts)",
                env="GRIDMAP_STATUS_PAGE"),
        Setting("STATUS_PAGE_ADDRESS", _to_str, "127.0.0.1:0",
                "host:port the status page listens on (port 0: any free port)",
                env="GRIDMAP_STATUS_PAGE_ADDRESS"),
        Setting("REUSE_RUNNERS", _to_bool, True,
                "a runner that has finished its job takes another queued job of the same "
                "map and request (never one with h_rt), and the scheduler job that was to "
                "run it is cancelled: fewer interpreter starts for maps of short jobs",
                env="GRIDMAP_REUSE_RUNNERS"),
        Setting(
            "MAX_TIME_BETWEEN_HEARTBEATS",
            _to_seconds,
            90,
            "seconds without a heartbeat before a job counts as dead",
        ),
        Setting(
            "IDLE_THRESHOLD",
            _to_float,
            1.0,
            "CPU percent at or below which a sleeping job counts as idle",
        ),
        Setting(
            "MAX_IDLE_TIME",
            _to_seconds_or_off,
            3600,
            "seconds a job may stay idle (its processes together at or below "
            "IDLE_THRESHOLD CPU) before it counts as dead; 0: never",
            env="GRIDMAP_MAX_IDLE_TIME",
        ),
        Setting(
            "MAX_IDLE_HEARTBEATS",
            _to_optional_int,
            None,
            "the original's idle limit, in heartbeats: when set (and MAX_IDLE_TIME is "
            "not), the limit is this many HEARTBEAT_FREQUENCY seconds; 0: never",
        ),
        Setting("NUM_RESUBMITS", _to_int, 3, "times a dead job is resubmitted"),
        Setting("CHECK_FREQUENCY", _to_seconds, 15, "seconds between scheduler polls"),
        Setting("HEARTBEAT_FREQUENCY", _to_seconds, 10, "seconds between heartbeats of a job"),
        Setting(
            "TRANSPORT",
            _to_str,
            DEFAULT_TRANSPORT,
            "how jobs reach the submitting process: zmq (TCP) or filesystem (shared temp_dir)",
            env="GRIDMAP_TRANSPORT",
        ),
        Setting(
            "MONITOR_ADDRESS",
            _to_optional_str,
            None,
            "host or tcp://host:port that jobs dial to reach the submitting process "
            "(zmq); unset picks this host's cluster-facing address",
            env="GRIDMAP_MONITOR_ADDRESS",
        ),
        Setting(
            "MONITOR_INTERFACE",
            _to_str,
            "*",
            "interface or IP the monitor listens on (zmq)",
            env="GRIDMAP_MONITOR_INTERFACE",
        ),
        Setting(
            "MONITOR_PORTS",
            _to_optional_str,
            None,
            "port range the monitor listens on, e.g. 49152-65535 (zmq); unset: any free port",
            env="GRIDMAP_MONITOR_PORTS",
        ),
    ]
}
_BY_KEY = {s.key: s for s in SETTINGS.values()}


def _setting_for_key(key: str) -> Setting | None:
    return _BY_KEY.get(key.lower())


@dataclass(frozen=True)
class Layer:
    """Values from one source (a file, the environment, arguments) with its label."""

    label: str
    values: Mapping[str, Any]  # canonical setting name -> raw value
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    raw_keys: Mapping[str, str] = field(default_factory=dict)


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


def _layer_from_table(table: Mapping[str, Any], label: str) -> Layer:
    values: dict[str, Any] = {}
    raw_keys: dict[str, str] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key == "backends" and isinstance(value, Mapping):
            for name, section in value.items():
                if not isinstance(section, Mapping):
                    raise ConfigError(f"{label}: [backends.{name}] must be a table of settings")
                sections[name] = dict(section)
            continue
        setting = _setting_for_key(key)
        if setting is None:
            raise ConfigError(
                f"{label}: unknown key {key!r}. Accepted keys: "
                + ", ".join(sorted(_BY_KEY))
                + ", and [backends.NAME] tables."
            )
        values[setting.name] = value
        raw_keys[setting.name] = key
    return Layer(label, values, sections, raw_keys)


def _file_layer(path: Path, table_path: tuple[str, ...] = ()) -> Layer | None:
    data: Any = _read_toml(path)
    for part in table_path:
        data = data.get(part) if isinstance(data, Mapping) else None
        if data is None:
            return None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: [{'.'.join(table_path)}] must be a table")
    label = f"{path} [{'.'.join(table_path)}]" if table_path else str(path)
    return _layer_from_table(data, label)


def file_layers(cwd: Path, environ: Mapping[str, str]) -> list[Layer]:
    """Config-file layers, highest precedence first."""
    layers: list[Layer] = []
    named = environ.get("GRIDMAP_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"GRIDMAP_CONFIG names {str(path)!r}, which is not a file. "
                "Point it at a TOML file or unset it."
            )
        layer = _file_layer(path)
        if layer:
            layers.append(layer)
    project = cwd / "gridmap.toml"
    pyproject = cwd / "pyproject.toml"
    if project.is_file():
        layer = _file_layer(project)
    elif pyproject.is_file():
        layer = _file_layer(pyproject, ("tool", "gridmap"))
    else:
        layer = None
    if layer:
        layers.append(layer)
    user = user_config_path()
    if user.is_file():
        layer = _file_layer(user)
        if layer:
            layers.append(layer)
    return layers


def _environment_layer(environ: Mapping[str, str]) -> Layer:
    values = {s.name: environ[s.env_var] for s in SETTINGS.values() if s.env_var in environ}
    return Layer("environment", values, raw_keys={s: SETTINGS[s].env_var for s in values})


@dataclass(frozen=True)
class Settings:
    """Effective settings: each value and the source it came from.

    Read a value as ``settings["NUM_RESUBMITS"]``, or as an attribute in lower case
    (``settings.num_resubmits``). ``backend_options(name)`` holds the keys of a
    ``[backends.NAME]`` section that are not general settings: options a backend
    declares for itself.
    """

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    layers: tuple[Layer, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def backend(self) -> str | None:
        """The backend named in the settings, or None to pick one automatically."""
        value: str | None = self.values["BACKEND"]
        return value

    def for_backend(self, name: str) -> Settings:
        """The same settings with ``[backends.NAME]`` sections applied."""
        return resolve(self.layers, name)

    def backend_options(self, name: str) -> dict[str, tuple[Any, str]]:
        """Backend-specific options from ``[backends.NAME]`` sections: value and source."""
        options: dict[str, tuple[Any, str]] = {}
        for layer in reversed(self.layers):  # lowest precedence first, higher overwrite
            for key, value in layer.sections.get(name, {}).items():
                if _setting_for_key(key) is None:
                    options[key] = (value, f"{layer.label} [backends.{name}]")
        return options

    def checked_backend_options(self, name: str, accepted: Sequence[str],
                                given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options of backend ``name``: ``given`` (the argument
        ``backend_options``) over its ``[backends.NAME]`` sections, each key checked
        against the keys the backend declares (``accepted``); ConfigError names the
        first unknown key, where it was given, and what is accepted."""
        found = self.backend_options(name)
        found.update({key: (value, "argument backend_options")
                      for key, value in (given or {}).items()})
        options = {}
        for key, (value, source) in found.items():
            if key not in accepted:
                raise ConfigError(
                    f"{source}: unknown key {key!r} for backend {name!r}. "
                    f"Accepted: general settings, and {', '.join(accepted) or 'no others'}."
                )
            options[key] = value
        return options

    def backend_sections(self) -> list[str]:
        """The backend names of every ``[backends.NAME]`` section, in the order found."""
        return list(dict.fromkeys(name for layer in self.layers for name in layer.sections))


def _describe(label: str, key: str) -> str:
    if label == "environment":
        return f"environment variable {key}"
    if label == "argument":
        return f"argument {key.lower()}"
    return f"{label}, key {key!r}"


def resolve(layers: tuple[Layer, ...], backend: str | None = None) -> Settings:
    """Apply ``layers`` (highest precedence first) over the defaults."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS.values():
        for layer in layers:
            candidates: list[tuple[Any, str, str]] = []
            section = layer.sections.get(backend or "", {}) if backend else {}
            for key, value in section.items():
                if _setting_for_key(key) is setting:
                    candidates.append((value, key, f"{layer.label} [backends.{backend}]"))
            if setting.name in layer.values:
                key = layer.raw_keys.get(setting.name, setting.name)
                candidates.append((layer.values[setting.name], key, layer.label))
            if candidates:
                raw, key, label = candidates[0]
                where = _describe(label, key)
                try:
                    values[setting.name] = setting.convert(raw)
                except ValueError as error:
                    raise ConfigError(
                        f"{where}: {raw!r} is not valid for {setting.name}; expected {error}."
                    ) from None
                sources[setting.name] = where
                break
        else:
            values[setting.name] = setting.default_value()
            sources[setting.name] = "default"
    return Settings(values, sources, layers)


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
    given: dict[str, Any] = {}
    for key, value in (arguments or {}).items():
        if value is None:
            continue
        setting = _setting_for_key(key)
        if setting is None:
            raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(SETTINGS)}")
        given[setting.name] = value
    layers = (
        Layer("argument", given),
        _environment_layer(environ),
        *file_layers(cwd, environ),
    )
    settings = resolve(layers)
    if settings.backend:
        settings = resolve(layers, settings.backend)
    return settings
