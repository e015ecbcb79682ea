"""Choosing a backend: by argument, environment, config file, or the best usable one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gridmap_core.backend import Availability
from gridmap_core.errors import GridMapError
from gridmap_core.model.config import Settings
from gridmap_core.plugins.manager import PluginManager
from gridmap_core.plugins.types import BackendSpec

__all__ = ["BackendUnavailableError", "ChosenBackend", "choose_backend"]
logger = logging.getLogger(__name__)


class BackendUnavailableError(GridMapError, RuntimeError, ImportError):
    """The chosen backend cannot run jobs on this machine.

    Also an ImportError: it is the original GridMap's DRMAANotPresentException
    (``gridmap.DRMAANotPresentException``), which was one."""


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
    highest priority. A backend that was named but cannot run here is an error, raised
    before anything is submitted: jobs meant for a cluster never run on this machine
    unasked. Only a map that names no backend, and does not require a cluster, may
    end up on the local backend, as the original's did.
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
        raise BackendUnavailableError(
            f"backend {name!r} (from {where}) is not usable here: {availability.reason}. "
            "Fix that, or name another backend (`gridmap backends` lists them and says "
            "why each is usable or not), or name none to let gridmap choose the best "
            "usable one"
        )

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
