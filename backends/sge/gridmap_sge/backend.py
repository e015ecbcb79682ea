"""The Grid Engine backend: each job runs as a runner that Grid Engine starts, watched
by the monitor (:class:`~gridmap_core.map.monitor.MonitoredSession`)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from gridmap_core.backend import Availability, JobSpec, SessionOptions
from gridmap_core.backend.drmaa import DrmaaConnection, library_problem
from gridmap_core.map.monitor import MonitoredSession, open_monitored
from gridmap_core.model.config import Settings
from gridmap_core.model.resources import ResourceError

from .native import NativeOptions, native_specification
from .plugin import SGE_SETTINGS
from .scheduler import SgeScheduler

__all__ = ["SgeBackend"]


@functools.lru_cache(maxsize=1)
def parallel_environments() -> tuple[str, ...] | None:
    """The cluster's parallel environments (``qconf -spl``); None when unknown."""
    try:
        done = subprocess.run(["qconf", "-spl"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return tuple(line.strip() for line in done.stdout.splitlines() if line.strip())


def native_options(settings: Settings, options: Mapping[str, Any]) -> NativeOptions:
    """The translation settings from the settings and ``[backends.sge]`` options, both
    declared in :mod:`gridmap_sge.plugin` and checked by the core."""
    return NativeOptions(
        use_mem_free=bool(settings.including(SGE_SETTINGS)["USE_MEM_FREE"]),
        gpu_resource=str(options.get("gpu_resource") or "gpu"),
        max_running=options.get("max_running"),
        extra=str(options.get("native_specification") or ""),
    )


class SgeBackend:
    """Grid Engine through DRMAA."""

    def availability(self) -> Availability:
        problem = library_problem(["SGE_ROOT"])
        if problem:
            return Availability(False, problem)
        if shutil.which("qstat") is None:
            return Availability(False, "qstat is not on PATH: add $SGE_ROOT/bin/<arch> to PATH "
                                "(gridmap polls job states with it)")
        cell = f"{os.environ['SGE_ROOT']}/{os.environ.get('SGE_CELL', 'default')}"
        return Availability(True, f"Grid Engine cell {cell}, "
                            f"libdrmaa {os.environ['DRMAA_LIBRARY_PATH']}")

    def check(self, spec: JobSpec) -> None:
        native_specification(spec, NativeOptions(), array=False)
        resources = spec.resources
        if resources.num_slots > 1 and resources.par_env:
            known = parallel_environments()
            if known is not None and resources.par_env not in known:
                raise ResourceError(
                    f"par_env={resources.par_env!r} is not a parallel environment of this "
                    f"cluster; it has: {', '.join(known) or 'none'} (qconf -spl). Set par_env= "
                    "or DEFAULT_PAR_ENV."
                )

    def open(self, options: SessionOptions) -> MonitoredSession:
        native = native_options(options.settings, options.options)
        python = options.options.get("python")
        connection = DrmaaConnection.acquire()
        return open_monitored(SgeScheduler(connection, native), options, python=python,
                              name="sge-monitor")
