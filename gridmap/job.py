"""The original GridMap's ``gridmap.job`` module: jobs and the functions that run them,
with the settings it imported from ``gridmap.conf``."""

from typing import Any

from gridmap_core.face.api import grid_map, process_jobs
from gridmap_core.model.job import JOB_NOT_FINISHED, Job, JobException
from gridmap_core.plugins.selection import BackendUnavailableError as DRMAANotPresentException

from . import conf
from .conf import (
    CHECK_FREQUENCY,
    CREATE_PLOTS,
    DEFAULT_PAR_ENV,
    DEFAULT_QUEUE,
    DEFAULT_TEMP_DIR,
    ERROR_MAIL_RECIPIENT,
    ERROR_MAIL_SENDER,
    HEARTBEAT_FREQUENCY,
    IDLE_THRESHOLD,
    MAX_IDLE_HEARTBEATS,
    MAX_TIME_BETWEEN_HEARTBEATS,
    NUM_RESUBMITS,
    SEND_ERROR_MAIL,
    SMTP_SERVER,
    USE_MEM_FREE,
)
from .data import zdumps, zloads

_JOB_NOT_FINISHED = JOB_NOT_FINISHED

__all__ = [
    "CHECK_FREQUENCY",
    "CREATE_PLOTS",
    "DEFAULT_PAR_ENV",
    "DEFAULT_QUEUE",
    "DEFAULT_TEMP_DIR",
    "ERROR_MAIL_RECIPIENT",
    "ERROR_MAIL_SENDER",
    "HEARTBEAT_FREQUENCY",
    "IDLE_THRESHOLD",
    "MAX_IDLE_HEARTBEATS",
    "MAX_TIME_BETWEEN_HEARTBEATS",
    "NUM_RESUBMITS",
    "SEND_ERROR_MAIL",
    "SMTP_SERVER",
    "USE_MEM_FREE",
    "DRMAANotPresentException",
    "Job",
    "JobException",
    "grid_map",
    "process_jobs",
    "zdumps",
    "zloads",
]


def __getattr__(name: str) -> Any:
    # DRMAA_PRESENT, as gridmap.conf gives it: looked up only when asked for.
    if name == "DRMAA_PRESENT":
        return conf.DRMAA_PRESENT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
