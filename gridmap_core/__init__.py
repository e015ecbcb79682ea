"""gridmap: map Python functions onto compute clusters (SGE, Slurm) or local processes.

>>> from gridmap_core import grid_map
>>> grid_map(abs, [-1, -2], local=True)
[1, 2]
"""

# Names are imported on first use (PEP 562), so that a job's runner, which imports
# gridmap_core.runner, does not pay for the executor, the plugin manager and pluggy
# at every start: on a cluster that start-up is paid once per job.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridmap_core.api import grid_map, process_jobs
    from gridmap_core.backend import Availability, Backend, BackendSession, Batch, Failure, JobSpec, SessionOptions, Sink
    from gridmap_core.config import ConfigError, Settings, load_settings
    from gridmap_core.executor import GridMapExecutor
    from gridmap_core.job import JOB_NOT_FINISHED, Job, JobException, JobState, RemoteError
    from gridmap_core.plugin_types import BackendSpec, NotifierSpec, PluginLoadError, TransportSpec
    from gridmap_core.plugins import UnknownPluginError, get_plugin_manager, hookimpl
    from gridmap_core.resources import ResourceError, Resources, parse_memory, parse_runtime
    from gridmap_core.selection import BackendUnavailableError
    from gridmap_core.serialization import SerializationError, zdumps, zloads

__version__ = "0.1.0"

_WHERE = {
    "grid_map": "api",
    "process_jobs": "api",
    "Availability": "backend",
    "Backend": "backend",
    "BackendSession": "backend",
    "Batch": "backend",
    "Failure": "backend",
    "JobSpec": "backend",
    "SessionOptions": "backend",
    "Sink": "backend",
    "ConfigError": "config",
    "Settings": "config",
    "load_settings": "config",
    "GridMapExecutor": "executor",
    "JOB_NOT_FINISHED": "job",
    "Job": "job",
    "JobException": "job",
    "JobState": "job",
    "RemoteError": "job",
    "BackendSpec": "plugin_types",
    "NotifierSpec": "plugin_types",
    "PluginLoadError": "plugin_types",
    "TransportSpec": "plugin_types",
    "UnknownPluginError": "plugins",
    "GridMapError": "errors",
    "get_plugin_manager": "plugins",
    "hookimpl": "plugins",
    "ResourceError": "resources",
    "Resources": "resources",
    "parse_memory": "resources",
    "parse_runtime": "resources",
    "BackendUnavailableError": "selection",
    "SerializationError": "serialization",
    "zdumps": "serialization",
    "zloads": "serialization",
}

__all__ = [
    "JOB_NOT_FINISHED",
    "Availability",
    "Backend",
    "BackendSession",
    "BackendSpec",
    "BackendUnavailableError",
    "Batch",
    "ConfigError",
    "Failure",
    "GridMapError",
    "GridMapExecutor",
    "Job",
    "JobException",
    "JobSpec",
    "JobState",
    "NotifierSpec",
    "PluginLoadError",
    "RemoteError",
    "ResourceError",
    "Resources",
    "SerializationError",
    "SessionOptions",
    "Settings",
    "Sink",
    "TransportSpec",
    "UnknownPluginError",
    "__version__",
    "get_plugin_manager",
    "grid_map",
    "hookimpl",
    "load_settings",
    "parse_memory",
    "parse_runtime",
    "process_jobs",
    "zdumps",
    "zloads",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gridmap_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
