"""The original GridMap's import name: ``import gridmap`` works as it did.

Everything here comes from :mod:`gridmap_core`; new code may import either.
"""

from gridmap_core import GridMapExecutor, Job, JobException, grid_map, process_jobs
from gridmap_core import __version__ as __version__

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
from .job import DRMAANotPresentException

VERSION = __version__

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
    "GridMapExecutor",
    "Job",
    "JobException",
    "grid_map",
    "process_jobs",
]
