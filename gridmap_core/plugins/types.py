"""What a plugin contributes: one frozen dataclass per plugin kind, checked on creation.

A contribution names its implementation as an object or as a dotted path
(``"package.module:Name"``), so heavy imports such as a DRMAA library wait until
someone asks for that plugin. Each may declare ``settings`` of its own
(:class:`~gridmap_core.model.setting.Setting`), which are read, shown and checked as
the core's are; a backend also declares its ``options``
(:class:`~gridmap_core.model.setting.Option`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gridmap_core.model.setting import Option, Setting
from gridmap_core.plugins.loading import PluginLoadError, load_factory

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["BackendSpec", "NotifierSpec", "PluginLoadError", "TransportSpec", "load_factory"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PATH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _check(kind: str, name: str, factory: object, description: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{kind} name {name!r} must be lower case letters, digits and '_', "
            "starting with a letter"
        )
    if isinstance(factory, str):
        if not _PATH_RE.match(factory):
            raise ValueError(f"{kind} {name!r}: factory {factory!r} must be 'package.module:Name'")
    elif not callable(factory):
        raise ValueError(f"{kind} {name!r}: factory must be callable or a dotted path")
    if not description or not isinstance(description, str):
        raise ValueError(f"{kind} {name!r}: give a one-line description")


def _check_settings(kind: str, name: str, declared: Any) -> tuple[Setting, ...]:
    settings = tuple(declared)
    for setting in settings:
        if not isinstance(setting, Setting):
            raise ValueError(f"{kind} {name!r}: settings must be Setting objects, not "
                             f"{type(setting).__name__}")
    names = [setting.name for setting in settings]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{kind} {name!r} declares setting {twice[0]!r} twice")
    return settings


def _check_options(name: str, options: Any) -> tuple[Option, ...]:
    """Options as :class:`Option` objects; a plain name is an option of any type."""
    checked = tuple(Option(o) if isinstance(o, str) else o for o in options)
    for option in checked:
        if not isinstance(option, Option):
            raise ValueError(f"backend {name!r}: options must be names or Option objects, "
                             f"not {type(option).__name__}")
    names = [option.name for option in checked]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"backend {name!r} declares option {twice[0]!r} twice")
    return checked


@dataclass(frozen=True)
class BackendSpec:
    """A scheduler backend.

    ``factory`` returns a :class:`~gridmap_core.backend.Backend`. ``priority`` ranks
    usable backends when none is chosen; ``is_cluster`` says whether it needs a
    scheduler (and so whether ``require_cluster`` accepts it). ``options`` declares
    the backend's own keys of a ``[backends.NAME]`` config section and of
    ``backend_options=``, as :class:`Option` objects (name, type, default, help) or
    plain names; ``settings`` declares settings of its own.
    """

    name: str
    factory: str | Callable[[], Any]
    description: str
    priority: int = 0
    is_cluster: bool = True
    options: tuple[Option | str, ...] = ()
    settings: tuple[Setting, ...] = ()

    def __post_init__(self) -> None:
        _check("backend", self.name, self.factory, self.description)
        object.__setattr__(self, "options", _check_options(self.name, self.options))
        object.__setattr__(self, "settings", _check_settings("backend", self.name,
                                                             self.settings))

    @property
    def option_names(self) -> tuple[str, ...]:
        """The names of its options, in the order declared."""
        return tuple(o.name if isinstance(o, Option) else o for o in self.options)

    def create(self) -> Any:
        """Import the implementation and create the backend object."""
        factory = load_factory("backend", self.name, self.factory)
        try:
            return factory()
        except Exception as error:
            raise PluginLoadError(
                f"backend {self.name!r} failed to start: {type(error).__name__}: {error}"
            ) from error


@dataclass(frozen=True)
class TransportSpec:
    """A way for runners on compute nodes to reach the submitting process.

    ``factory`` returns a :class:`~gridmap_core.transports.Transport`.
    ``serve_options(directory, settings, peers)`` returns the options its ``serve``
    takes for a map, from the map's settings, the map's private ``directory`` (shared
    with the nodes) and ``peers``, the hosts that will run the map's runners as the
    scheduler names them (empty when it does not say); without it, ``serve`` gets
    none. ``advice`` is what ``gridmap
    doctor`` says about it: a :class:`~gridmap_core.transports.advice.TransportAdvice`.
    Both may be given as ``"package.module:name"``, imported when first used.
    """

    name: str
    factory: str | Callable[[], Any]
    description: str
    needs_shared_filesystem: bool = False
    serve_options: (str | Callable[[Path, Any, Sequence[str]], Mapping[str, Any]]
                    | None) = None
    advice: Any = None
    settings: tuple[Setting, ...] = ()

    def __post_init__(self) -> None:
        _check("transport", self.name, self.factory, self.description)
        object.__setattr__(self, "settings", _check_settings("transport", self.name,
                                                             self.settings))
        if isinstance(self.serve_options, str) and not _PATH_RE.match(self.serve_options):
            raise ValueError(f"transport {self.name!r}: serve_options {self.serve_options!r} "
                             "must be 'package.module:name' or the function itself")
        if isinstance(self.advice, str) and not _PATH_RE.match(self.advice):
            raise ValueError(f"transport {self.name!r}: advice {self.advice!r} must be "
                             "'package.module:name' or the object itself")

    def options_for(self, directory: Path, settings: Any,
                    peers: Sequence[str] = ()) -> dict[str, Any]:
        """The options of ``serve`` for a map whose private directory is ``directory``
        and whose runners run on ``peers``."""
        if self.serve_options is None:
            return {}
        build = load_factory("transport", self.name, self.serve_options)
        return dict(build(directory, settings.including(self.settings), tuple(peers)))


@dataclass(frozen=True)
class NotifierSpec:
    """Something that hears about failures and finished maps (mail, logs, …).

    ``factory(settings)`` makes one for an executor: an object with any of the
    lifecycle hook methods (``gridmap_job_failed(job)``, ``gridmap_map_finished(jobs,
    summary)``, …) and optionally ``close(timeout)``; it raises ValueError when the
    settings will not do. ``settings`` declares settings of its own: the factory
    reads them from the map's settings by name, as the core's.
    """

    name: str
    factory: str | Callable[..., Any]
    description: str
    settings: tuple[Setting, ...] = ()

    def __post_init__(self) -> None:
        _check("notifier", self.name, self.factory, self.description)
        object.__setattr__(self, "settings", _check_settings("notifier", self.name,
                                                             self.settings))
