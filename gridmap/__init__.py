"""The original GridMap's import name: ``import gridmap`` works as it did.

Everything here comes from :mod:`gridmap_core`; new code may import either. The
original's public names keep their meaning: the settings of :mod:`gridmap.conf`,
``Job``, ``JobException``, ``grid_map``, ``process_jobs``,
``DRMAANotPresentException`` (still an ImportError), ``__version__`` and ``VERSION``
(a tuple of numbers), and the modules ``gridmap.conf``, ``gridmap.job``,
``gridmap.data`` (``zdumps``, ``zloads``) and ``gridmap.version``.
"""

from gridmap_core import GridMapExecutor, Job, JobException, grid_map, process_jobs

from . import conf, data, job, version
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
from .job import DRMAANotPresentException
from .version import VERSION, __version__

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
    "VERSION",
    "DRMAANotPresentException",
    "GridMapExecutor",
    "Job",
    "JobException",
    "__version__",
    "conf",
    "data",
    "grid_map",
    "job",
    "process_jobs",
    "version",
    "zdumps",
    "zloads",
]
