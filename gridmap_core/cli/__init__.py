"""The ``gridmap`` command: show effective settings and installed backends, check
that jobs can run and report back, and list, show, cancel, take on and tidy away this
user's maps (docs/maps.md). The commands about maps are in ``maps.py``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from gridmap_core import __version__

# The map commands live in maps.py; each of its names is still importable from here,
# as when the command was one module (F401: those main does not use).
from gridmap_core.cli.maps import (
    _ALIVE,  # noqa: F401
    _SHOWN_FAILURES,  # noqa: F401
    _age,  # noqa: F401
    _attach,  # noqa: F401
    _cancel,  # noqa: F401
    _clean,
    _failure_json,  # noqa: F401
    _files_lines,  # noqa: F401
    _logs,  # noqa: F401
    _map_command,  # noqa: F401
    _map_commands,
    _map_key,  # noqa: F401
    _maps,  # noqa: F401
    _roots,  # noqa: F401
    _status,  # noqa: F401
    _status_damaged,  # noqa: F401
    _temp_dir_option,
    _watch,  # noqa: F401
)
from gridmap_core.doctor import checks as doctor
from gridmap_core.errors import GridMapError
from gridmap_core.face.executor import GridMapExecutor
from gridmap_core.model.config import (
    SETTINGS,
    ConfigError,
    Settings,
    load_settings,
    user_config_path,
)
from gridmap_core.model.setting import UNSET, Option, Setting
from gridmap_core.plugins.manager import PluginManager, UnknownPluginError, get_plugin_manager
from gridmap_core.plugins.selection import BackendUnavailableError, probe
from gridmap_core.plugins.types import BackendSpec, PluginLoadError

# What ``gridmap --help`` says (the docstring's markup would show as is).
DESCRIPTION = ("Show gridmap's effective settings and installed backends, check that "
               "jobs can run and report back, and list, show, cancel, take on and tidy "
               "away your maps.")
# A value wider than this pushes its own comment right, not every row's.
_VALUE_COLUMN = 40


def _shown(settings: Settings, setting: Setting) -> str:
    value = settings[setting.name]
    if setting.secret:
        return "(set, not shown)" if value else "(not set)"
    if setting.name == "BACKEND" and value is None:
        return "(choose automatically)"
    return repr(value)


# A row is (key, shown value, source); a heading (a comment line) is a plain string.
Row = tuple[str, str, str]


def _setting_rows(settings: Settings, manager: PluginManager) -> list[Row | str]:
    """The core's settings, then each plugin's under a heading naming it."""
    rows: list[Row | str] = [(name, _shown(settings, setting), settings.sources[name])
                             for name, setting in SETTINGS.items()]
    groups: dict[str, list[Setting]] = {}
    for setting, owner in manager.declared_settings().values():
        groups.setdefault(owner, []).append(setting)
    for owner, declared in sorted(groups.items()):
        kind, _, name = owner.partition(" ")
        package = manager.distribution_of(name, kind)[0]
        settings.including(declared)
        rows.append(f"settings of {owner} (package {package}):")
        rows += [(s.name, _shown(settings, s), settings.sources[s.name]) for s in declared]
    return rows


def _option_rows(settings: Settings, backend: str, spec: BackendSpec | None) -> list[Row | str]:
    """The options of ``backend``: each declared one's value (given or default) and
    where it came from, and the keys its sections give that it does not declare."""
    given = settings.backend_options(backend)
    rows: list[Row | str] = [f"options of backend {backend}:"]
    for option in (spec.options if spec else ()):
        if not isinstance(option, Option):
            continue  # always an Option once the spec exists
        if option.name in given:
            raw, source = given.pop(option.name)
            try:
                value = option.convert(raw)
            except ValueError:
                value = raw  # the error is reported below the table
            rows.append((f"{backend}.{option.name}", repr(value), source))
        elif option.default is not UNSET:
            rows.append((f"{backend}.{option.name}", repr(option.default), "default"))
    rows += [(f"{backend}.{key}", repr(value), source)
             for key, (value, source) in sorted(given.items())]
    return rows


def _config(args: argparse.Namespace) -> int:
    settings = load_settings({"BACKEND": args.backend})
    manager = get_plugin_manager()
    installed = manager.backends()
    rows = _setting_rows(settings, manager)
    backend = settings.backend
    if backend:
        rows += _option_rows(settings, backend, installed.get(backend))
    table = [row for row in rows if not isinstance(row, str)]
    width = max(len(key) for key, _, _ in table)
    room = min(_VALUE_COLUMN, max(len(shown) for _, shown, _ in table))
    for row in rows:
        if isinstance(row, str):
            print(f"# {row}")
            continue
        key, shown, source = row
        print(f"{key:<{width}} = {shown:<{room}} # {source}")
    user = user_config_path()
    print(f"\n# user config file: {user} "
          f"({'exists' if user.is_file() else 'does not exist'})")
    for name in settings.backend_sections():
        if name not in installed:
            print(f"# [backends.{name}]: no backend called {name!r} is installed here, so "
                  "its settings apply to no map")
    problem = _check_as_a_map_would(settings, args.backend)
    if problem:
        print(f"gridmap: configuration error: {problem}", file=sys.stderr)
        return 2
    return 0


def _check_as_a_map_would(settings: Settings, backend: str | None) -> str | None:
    """What a map with these settings would refuse, or None: the backend is chosen,
    its options and the notifiers are checked, as by GridMapExecutor (which submits
    nothing until a job is given). Every other [backends.NAME] section of an
    installed backend is checked as a map on that backend would check it."""
    try:
        with GridMapExecutor(backend):
            pass
        manager = get_plugin_manager()
        installed = manager.backends()
        for name in settings.backend_sections():
            if name in installed:
                settings.for_backend(name).checked_backend_options(name, installed[name].options)
    except (ConfigError, UnknownPluginError, PluginLoadError, BackendUnavailableError,
            ValueError) as error:
        return str(error)
    return None


def _backends(args: argparse.Namespace) -> int:
    manager = get_plugin_manager()
    specs = manager.backends()
    rows = []
    for name, spec in specs.items():
        package, version = manager.distribution_of(name, "backend")
        _, availability = probe(spec)
        status = "usable" if availability.usable else "not usable"
        rows.append(
            (name, f"{package} {version}".strip(), status, availability.reason, spec.description)
        )
    for name, (package, error) in sorted(manager.broken.items()):
        rows.append((name, package, "broken", f"failed to load: {error}", ""))
    if not rows:
        print("no backends installed; install gridmap-local or a cluster backend")
        return 1
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for name, package, status, reason, description in rows:
        left = "  ".join(text.ljust(width) for text, width in zip(
            (name, package, status), widths, strict=True))
        print(f"{left}  {description}".rstrip())
        if reason:
            print(f"{'':<{len(left)}}  {reason}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    root = logging.getLogger()
    if not root.handlers:
        # The report says what went wrong; the monitor's warnings about the doctor's
        # own job would only say it again, out of order. Errors still show.
        shown = logging.StreamHandler()
        shown.setLevel(logging.ERROR)
        shown.setFormatter(logging.Formatter("gridmap doctor: %(name)s: %(message)s"))
        root.addHandler(shown)
    checks = []
    for check in doctor.diagnose(args.backend, args.temp_dir, args.timeout):
        checks.append(check)
        if not args.json:
            print(doctor.render(check), flush=True)
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=2))
    else:
        print(doctor.summary(checks))
    return doctor.exit_status(checks)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gridmap`` console script."""
    parser = argparse.ArgumentParser(prog="gridmap", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="print every setting and where it came from")
    config.add_argument("--backend", help="show settings as they apply to this backend")
    config.set_defaults(run=_config)
    backends = commands.add_parser(
        "backends", help="list installed backends and whether each is usable here"
    )
    backends.set_defaults(run=_backends)
    check = commands.add_parser(
        "doctor", help="check that jobs can run on a backend and report back, before a big map"
    )
    check.add_argument("--backend", help="the backend to check (default: as a map chooses)")
    check.add_argument("--temp-dir", help="the temp_dir to check (default: DEFAULT_TEMP_DIR)")
    check.add_argument("--timeout", type=_seconds, default=120.0,
                       help="seconds the trivial job may take (default: 120)")
    check.add_argument("--json", action="store_true", help="print the checks as JSON")
    check.set_defaults(run=_doctor)
    tidy = commands.add_parser(
        "clean", help="remove the session directories of maps that ended or were "
        "abandoned more than MAP_KEEP_TIME ago, and of older maps whose submitting "
        "process on this host is gone"
    )
    _temp_dir_option(tidy)
    tidy.add_argument("--logs", action="store_true",
                      help="also remove the logs that ended maps kept (failed jobs)")
    tidy.add_argument("--dry-run", action="store_true", help="only say what would go")
    tidy.set_defaults(run=_clean)
    _map_commands(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as error:
        print(f"gridmap: configuration error: {error}", file=sys.stderr)
        return 2
    except GridMapError as error:  # a map not found, a journal that cannot be read
        print(f"gridmap: {error}", file=sys.stderr)
        return 1

