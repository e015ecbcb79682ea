"""The filesystem transport's options, with their defaults, as both its sides read them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridmap_core.transports import TransportError

__all__ = [
    "DEFAULT_DIRECTORY", "DEFAULT_POLL_INTERVAL", "DEFAULT_STALE_AFTER", "FASTEST_POLL",
    "OPTIONS", "bool_option", "float_option",
]

#: Options of a ``[transports.filesystem]`` section.
OPTIONS = ("directory", "poll_interval", "fsync", "stale_after", "max_bytes")
DEFAULT_DIRECTORY = Path.home() / ".gridmap" / "transport"
DEFAULT_POLL_INTERVAL = 0.02
DEFAULT_STALE_AFTER = 600.0
# The first wait between looks for a file, doubled up to poll_interval while none comes:
# messages that flow are picked up within a millisecond.
FASTEST_POLL = 0.001


def float_option(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0:
        raise TransportError(f"filesystem option {name}={value!r} must be a positive number")
    return number


def bool_option(options: Mapping[str, Any], name: str) -> bool:
    value = options.get(name, False)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                      "no", "off", ""):
        return value.lower() in ("1", "true", "yes", "on")
    if not isinstance(value, bool):
        raise TransportError(f"filesystem option {name}={value!r} must be true or false")
    return value
