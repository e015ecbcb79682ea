"""Choosing a backend: by argument, environment, config file, or the best usable one."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

from .backend import Availability
from .config import Settings
from .plugin_types import BackendSpec
from .plugins import PluginManager

__all__ = ["BackendUnavailableError", "ChosenBackend", "choose_backend"]
logger = logging.getLogger(__name__)


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run jobs on this machine."""


@dataclass(frozen=True)
class ChosenBackend:
    """The backend a map will use, and why."""

    spec: BackendSpec
    backend: Any
    reason: str


def probe(spec: BackendSpec) -> tuple[Any, Availability]:
    """Create the backend and ask whether it is usable; never raises."""
    try:
        backend = spec.create()
    except Exception as error:
        return None, Availability(False, str(error))
    try:
        return backend, backend.availability()
    except Exception as error:
        return backend, Availability(False, f"availability check failed: {error}")


def _fallback(manager: PluginManager, asked: str, why: str) -> ChosenBackend:
    local = manager.backends().get("local")
    if local is None:
        raise BackendUnavailableError(f"{why}; and no local backend is installed to fall back on")
    backend, availability = probe(local)
    if not availability.usable:
        raise BackendUnavailableError(f"{why}; local backend unusable too: {availability.reason}")
    warnings.warn(
        f"{why}; running jobs locally instead (pass require_cluster=True to make this an error).",
        RuntimeWarning,
        stacklevel=4,
    )
    return ChosenBackend(local, backend, f"fallback from {asked}")


def choose_backend(
    settings: Settings,
    manager: PluginManager,
    *,
    local: bool = False,
    require_cluster: bool = False,
) -> ChosenBackend:
    """Pick the backend for a map.

    ``local=True`` means the local backend. Otherwise the ``BACKEND`` setting
    (argument, ``GRIDMAP_BACKEND``, config file), else the usable backend with the
    highest priority. A cluster backend that cannot run here falls back to local with
    a warning, unless ``require_cluster``.
    """
    if local:
        if require_cluster:
            raise ValueError("local=True and require_cluster=True contradict each other")
        spec = manager.backend("local", "local=True")
        backend, availability = probe(spec)
        if not availability.usable:
            raise BackendUnavailableError(f"backend 'local' is not usable: {availability.reason}")
        return ChosenBackend(spec, backend, "local=True")

    name = settings.backend
    if name:
        where = settings.sources.get("BACKEND", "settings")
        spec = manager.backend(name, where)
        if require_cluster and not spec.is_cluster:
            raise BackendUnavailableError(
                f"require_cluster=True, but backend {name!r} (from {where}) runs jobs on "
                "this machine; choose a cluster backend"
            )
        backend, availability = probe(spec)
        if availability.usable:
            return ChosenBackend(spec, backend, where)
        why = f"backend {name!r} (from {where}) is not usable here: {availability.reason}"
        if require_cluster or not spec.is_cluster:
            raise BackendUnavailableError(why)
        return _fallback(manager, name, why)

    reasons = []
    candidates = sorted(manager.backends().values(), key=lambda s: -s.priority)
    for spec in candidates:
        if require_cluster and not spec.is_cluster:
            continue
        backend, availability = probe(spec)
        if availability.usable:
            return ChosenBackend(spec, backend, "automatic choice (no backend configured)")
        reasons.append(f"{spec.name}: {availability.reason}")
    detail = "; ".join(reasons) or "no backends are installed"
    if require_cluster:
        raise BackendUnavailableError(
            f"require_cluster=True, but no cluster backend is usable here ({detail})"
        )
    raise BackendUnavailableError(f"no backend is usable here ({detail})")
