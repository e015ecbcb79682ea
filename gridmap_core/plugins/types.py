"""What a plugin contributes: one frozen dataclass per plugin kind, checked on creation.

A contribution names its implementation as an object or as a dotted path
(``"package.module:Name"``), so heavy imports such as a DRMAA library wait until
someone asks for that plugin.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gridmap_core.errors import GridMapError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["BackendSpec", "NotifierSpec", "PluginLoadError", "TransportSpec"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PATH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PluginLoadError(GridMapError, ImportError):
    """A plugin's implementation could not be imported or created."""


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


def load_factory(kind: str, name: str, factory: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import a dotted ``module:attribute`` path, naming the plugin when it fails."""
    if not isinstance(factory, str):
        return factory
    module_name, _, attribute = factory.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as error:
        raise PluginLoadError(
            f"{kind} {name!r} could not be loaded from {factory!r}: {type(error).__name__}: {error}"
        ) from error
    return target  # type: ignore[no-any-return]


@dataclass(frozen=True)
class BackendSpec:
    """A scheduler backend.

    ``factory`` returns a :class:`~gridmap_core.backend.Backend`. ``priority`` ranks
    usable backends when none is chosen; ``is_cluster`` says whether it needs a
    scheduler (and so whether ``require_cluster`` accepts it). ``options`` names the
    backend's own keys accepted in a ``[backends.NAME]`` config section.
    """

    name: str
    factory: str | Callable[[], Any]
    description: str
    priority: int = 0
    is_cluster: bool = True
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check("backend", self.name, self.factory, self.description)

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
    ``serve_options(directory, settings)`` returns the options its ``serve`` takes
    for a map, from the map's settings and the map's private ``directory`` (shared
    with the nodes); without it, ``serve`` gets none. ``advice`` is what ``gridmap
    doctor`` says about it: a :class:`~gridmap_core.transports.advice.TransportAdvice`.
    Both may be given as ``"package.module:name"``, imported when first used.
    """

    name: str
    factory: str | Callable[[], Any]
    description: str
    needs_shared_filesystem: bool = False
    serve_options: str | Callable[[Path, Any], Mapping[str, Any]] | None = None
    advice: Any = None

    def __post_init__(self) -> None:
        _check("transport", self.name, self.factory, self.description)
        if isinstance(self.serve_options, str) and not _PATH_RE.match(self.serve_options):
            raise ValueError(f"transport {self.name!r}: serve_options {self.serve_options!r} "
                             "must be 'package.module:name' or the function itself")
        if isinstance(self.advice, str) and not _PATH_RE.match(self.advice):
            raise ValueError(f"transport {self.name!r}: advice {self.advice!r} must be "
                             "'package.module:name' or the object itself")

    def options_for(self, directory: Path, settings: Any) -> dict[str, Any]:
        """The options of ``serve`` for a map whose private directory is ``directory``."""
        if self.serve_options is None:
            return {}
        build = load_factory("transport", self.name, self.serve_options)
        return dict(build(directory, settings))

    def advice_for_doctor(self) -> Any:
        """Its :class:`~gridmap_core.transports.advice.TransportAdvice`, imported now; the
        general advice when it gives none."""
        from gridmap_core.transports.advice import TransportAdvice

        if self.advice is None:
            return TransportAdvice()
        return load_factory("transport", self.name, self.advice)


@dataclass(frozen=True)
class NotifierSpec:
    """Something that hears about failures and finished maps (mail, logs, …).

    ``factory(settings)`` makes one for an executor: an object with any of the
    lifecycle hook methods (``gridmap_job_failed(job)``, ``gridmap_map_finished(jobs,
    summary)``, …) and optionally ``close(timeout)``; it raises ValueError when the
    settings will not do.
    """

    name: str
    factory: str | Callable[..., Any]
    description: str

    def __post_init__(self) -> None:
        _check("notifier", self.name, self.factory, self.description)
