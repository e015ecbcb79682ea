"""gridmap: map Python functions onto compute clusters (SGE, Slurm) or local processes.

>>> from gridmap_core import grid_map
>>> grid_map(abs, [-1, -2], local=True)
[1, 2]
"""

# Names are imported on first use (PEP 562), so that a job's runner, which imports
# gridmap_core.node.runner, does not pay for the executor, the plugin manager and pluggy
# at every start: on a cluster that start-up is paid once per job.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridmap_core.backend import (
        Availability,
        Backend,
        BackendSession,
        Batch,
        Failure,
        JobSpec,
        SessionOptions,
        Sink,
    )
    from gridmap_core.face.api import grid_map, process_jobs
    from gridmap_core.face.attach import AttachError, attach
    from gridmap_core.face.executor import GridMapExecutor
    from gridmap_core.model.config import ConfigError, Settings, load_settings
    from gridmap_core.model.job import JOB_NOT_FINISHED, Job, JobException, JobState, RemoteError
    from gridmap_core.model.resources import ResourceError, Resources, parse_memory, parse_runtime
    from gridmap_core.model.serialization import SerializationError, zdumps, zloads
    from gridmap_core.model.setting import Option, Setting
    from gridmap_core.plugins.manager import UnknownPluginError, get_plugin_manager, hookimpl
    from gridmap_core.plugins.selection import BackendUnavailableError
    from gridmap_core.plugins.types import BackendSpec, NotifierSpec, PluginLoadError, TransportSpec

__version__ = "0.1.0"

_WHERE = {
    "grid_map": "face.api",
    "process_jobs": "face.api",
    "attach": "face.attach",
    "AttachError": "face.attach",
    "Availability": "backend",
    "Backend": "backend",
    "BackendSession": "backend",
    "Batch": "backend",
    "Failure": "backend",
    "JobSpec": "backend",
    "SessionOptions": "backend",
    "Sink": "backend",
    "ConfigError": "model.config",
    "Settings": "model.config",
    "load_settings": "model.config",
    "Option": "model.setting",
    "Setting": "model.setting",
    "GridMapExecutor": "face.executor",
    "JOB_NOT_FINISHED": "model.job",
    "Job": "model.job",
    "JobException": "model.job",
    "JobState": "model.job",
    "RemoteError": "model.job",
    "BackendSpec": "plugins.types",
    "NotifierSpec": "plugins.types",
    "PluginLoadError": "plugins.types",
    "TransportSpec": "plugins.types",
    "UnknownPluginError": "plugins.manager",
    "GridMapError": "errors",
    "get_plugin_manager": "plugins.manager",
    "hookimpl": "plugins.manager",
    "ResourceError": "model.resources",
    "Resources": "model.resources",
    "parse_memory": "model.resources",
    "parse_runtime": "model.resources",
    "BackendUnavailableError": "plugins.selection",
    "SerializationError": "model.serialization",
    "zdumps": "model.serialization",
    "zloads": "model.serialization",
}

__all__ = [
    "JOB_NOT_FINISHED",
    "AttachError",
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
    "Option",
    "PluginLoadError",
    "RemoteError",
    "ResourceError",
    "Resources",
    "SerializationError",
    "SessionOptions",
    "Setting",
    "Settings",
    "Sink",
    "TransportSpec",
    "UnknownPluginError",
    "__version__",
    "attach",
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
    value = getattr(importlib.import_module(f"gridmap_core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
