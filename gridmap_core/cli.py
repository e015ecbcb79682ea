"""The ``gridmap`` command: show effective settings and installed backends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import SETTINGS, ConfigError, load_settings, user_config_path
from .plugins import get_plugin_manager
from .selection import probe


def _config(args: argparse.Namespace) -> int:
    settings = load_settings({"BACKEND": args.backend})
    width = max(len(name) for name in SETTINGS)
    for name in SETTINGS:
        value = settings[name]
        shown = "(choose automatically)" if name == "BACKEND" and value is None else repr(value)
        print(f"{name:<{width}} = {shown:<28} # {settings.sources[name]}")
    backend = settings.backend
    if backend:
        for key, (value, source) in sorted(settings.backend_options(backend).items()):
            print(f"{backend}.{key:<{width - len(backend) - 1}} = {value!r:<28} # {source}")
    print(f"\n# user config file: {user_config_path()}")
    return 0


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
    for name, package, status, reason, description in rows:
        print(f"{name:<12} {package:<24} {status:<11} {description}")
        if reason:
            print(f"{'':<12} {'':<24} {'':<11} {reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gridmap`` console script."""
    parser = argparse.ArgumentParser(prog="gridmap", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="print every setting and where it came from")
    config.add_argument("--backend", help="show settings as they apply to this backend")
    config.set_defaults(run=_config)
    backends = commands.add_parser(
        "backends", help="list installed backends and whether each is usable here"
    )
    backends.set_defaults(run=_backends)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as error:
        print(f"gridmap: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
