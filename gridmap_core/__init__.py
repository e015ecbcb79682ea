"""gridmap: map Python functions onto compute clusters (SGE, Slurm) or local processes.

>>> from gridmap_core import grid_map
>>> grid_map(abs, [-1, -2], local=True)
[1, 2]
"""

from .api import grid_map, process_jobs
from .backend import (
    Availability,
    Backend,
    BackendSession,
    Batch,
    Failure,
    JobSpec,
    SessionOptions,
    Sink,
)
from .config import ConfigError, Settings, load_settings
from .executor import GridMapExecutor
from .job import JOB_NOT_FINISHED, Job, JobException, JobState, RemoteError
from .plugin_types import BackendSpec, NotifierSpec, PluginLoadError, TransportSpec
from .plugins import UnknownPluginError, get_plugin_manager, hookimpl
from .resources import ResourceError, Resources, parse_memory, parse_runtime
from .selection import BackendUnavailableError
from .serialization import SerializationError, zdumps, zloads

__version__ = "0.1.0"

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
