"""Importing a plugin's implementation from its dotted path: the one loader of the
monitor, the runner and every other part of gridmap.

It imports nothing but :mod:`importlib`, so that a runner on a compute node, which
loads its transport from the path on its command line, pays for neither pluggy nor
the plugin types.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gridmap_core.errors import GridMapError

__all__ = ["PluginLoadError", "load_factory"]


class PluginLoadError(GridMapError, ImportError):
    """A plugin's implementation could not be imported or created."""


def load_factory(kind: str, name: str, factory: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import a dotted ``module:attribute`` path, naming the plugin when it fails; an
    object given instead of a path is returned as it is."""
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
