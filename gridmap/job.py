"""The original GridMap's ``gridmap.job`` module: jobs and the functions that run them."""

from gridmap_core.api import grid_map, process_jobs
from gridmap_core.job import JOB_NOT_FINISHED, Job, JobException
from gridmap_core.selection import BackendUnavailableError as DRMAANotPresentException

from .conf import DEFAULT_PAR_ENV, DEFAULT_QUEUE, DEFAULT_TEMP_DIR, USE_MEM_FREE

_JOB_NOT_FINISHED = JOB_NOT_FINISHED

__all__ = [
    "DEFAULT_PAR_ENV",
    "DEFAULT_QUEUE",
    "DEFAULT_TEMP_DIR",
    "USE_MEM_FREE",
    "DRMAANotPresentException",
    "Job",
    "JobException",
    "grid_map",
    "process_jobs",
]
