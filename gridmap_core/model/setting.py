"""What a setting or a backend option is: its name, type, default and help.

The core declares its settings with :class:`Setting` (in
:mod:`gridmap_core.model.core_settings`); a plugin declares its own in its contribution
(``BackendSpec.settings``, ``TransportSpec.settings``, ``NotifierSpec.settings``), and a
backend its options with :class:`Option` (``BackendSpec.options``). Both are read and
checked by :mod:`gridmap_core.model.config`, with the same precedence and provenance.

A type is ``bool``, ``int``, ``float`` or ``str``, or a converter: a function from
what was given (a string from the environment, a TOML value, a Python value) to the
value, raising ValueError with what it expects ("a whole number"). The converters
below are the core's own. This module imports nothing heavy: the plugin types, which
a runner on a node imports, use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gridmap_core.errors import GridMapError

__all__ = [
    "UNSET",
    "ConfigError",
    "Option",
    "Setting",
    "boolean",
    "choice",
    "converter",
    "count",
    "duration",
    "number",
    "optional",
    "path",
    "seconds",
    "seconds_or_off",
    "text",
    "whole",
]


class ConfigError(GridMapError, ValueError):
    """A setting whose value, file or key is not understood."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def boolean(value: Any) -> bool:
    """True or false; from text also 1/0, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("true or false (also 1/0, yes/no, on/off)")


def whole(value: Any) -> int:
    """A whole number."""
    if isinstance(value, bool):
        raise ValueError("a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("a whole number") from None


def count(value: Any) -> int:
    """A whole number of at least 1."""
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
        raise ValueError("a whole number of at least 1")
    return int(value)


def number(value: Any) -> float:
    """A number."""
    if isinstance(value, bool):
        raise ValueError("a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("a number") from None


def seconds(value: Any) -> int | float:
    """A positive duration in seconds; whole numbers stay ints, as the original's were."""
    amount = number(value)
    if not amount > 0 or amount == float("inf"):
        raise ValueError("a number of seconds above 0")
    return int(amount) if amount.is_integer() else amount


def duration(value: Any) -> int | float:
    """A duration in seconds, 0 or more."""
    amount = number(value)
    if not 0 <= amount < float("inf"):
        raise ValueError("a number of seconds, 0 or more")
    return int(amount) if amount.is_integer() else amount


def seconds_or_off(value: Any) -> int | float:
    """A duration in seconds, or 0 for no limit."""
    if number(value) == 0:
        return 0
    try:
        return seconds(value)
    except ValueError:
        raise ValueError("a number of seconds above 0, or 0 for no limit") from None


def text(value: Any) -> str:
    """A string (numbers are taken as written)."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("a string")
    return str(value)


def path(value: Any) -> str:
    """A file's path: a string or a path object."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError("a path")
    return value


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert``, with None and the empty string meaning unset (None)."""

    def convert_or_none(value: Any) -> Any:
        return None if value is None or value == "" else convert(value)

    convert_or_none.__name__ = f"optional_{getattr(convert, '__name__', 'value')}"
    return convert_or_none


def choice(*values: str) -> Callable[[Any], str]:
    """One of ``values`` (any case)."""
    allowed = {value.lower(): value for value in values}

    def one_of(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in allowed:
            return allowed[value.strip().lower()]
        raise ValueError("one of " + ", ".join(repr(v) for v in values))

    return one_of


def _as_is(value: Any) -> Any:
    return value


_BY_TYPE: dict[Any, Callable[[Any], Any]] = {bool: boolean, int: whole, float: number,
                                              str: text, None: _as_is}


def converter(kind: Any) -> Callable[[Any], Any]:
    """The converter for a declared type: ``bool``, ``int``, ``float``, ``str``, None (any
    value, as given) or a converter function."""
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    if callable(kind) and not isinstance(kind, type):
        return kind  # type: ignore[no-any-return]
    raise ValueError(f"type {kind!r} must be bool, int, float, str or a converter function")


@dataclass(frozen=True)
class Setting:
    """One setting: its canonical (environment variable) name, type, default and help.

    Set in code by name (``settings={"NAME": …}``), in the environment as ``env`` (by
    default the name itself), and in a config file as the name in lower case, at the
    top level or in a ``[backends.NAME]`` section. ``default`` may be a function of
    no arguments, called when the default is used. A ``secret`` one is never printed.
    """

    name: str
    type: Any
    default: Any
    help: str
    env: str | None = None
    secret: bool = False
    convert: Callable[[Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SETTING_NAME.match(self.name):
            raise ValueError(f"setting name {self.name!r} must be upper case letters, digits "
                             "and '_', starting with a letter")
        if not self.help or not isinstance(self.help, str):
            raise ValueError(f"setting {self.name!r}: give a one-line help")
        object.__setattr__(self, "convert", converter(self.type))

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


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: The default of an option that is absent from ``SessionOptions.options`` unless given.
UNSET: Any = _Unset()


@dataclass(frozen=True)
class Option:
    """One option of a backend: a key of its ``[backends.NAME]`` config sections and of
    ``backend_options=``, which reaches it in ``SessionOptions.options``.

    The core converts what is given with ``type`` and fills in ``default`` when nothing
    is; an option whose default is :data:`UNSET` (the default) is left out instead. A
    plain name in ``BackendSpec.options`` is an option of any type, left out unless given.
    """

    name: str
    type: Any = None
    default: Any = UNSET
    help: str = ""
    convert: Callable[[Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _OPTION_NAME.match(self.name):
            raise ValueError(f"option name {self.name!r} must be lower case letters, digits "
                             "and '_', starting with a letter")
        object.__setattr__(self, "convert", converter(self.type))
