"""The original GridMap's settings as module constants, read once at import.

Each can be set by the environment variable of the same name, or in a gridmap config
file; maps read the settings afresh each time, so these constants are for reading.
Their types and defaults are the original's: whole numbers of seconds stay ints,
``CREATE_PLOTS`` is False where matplotlib cannot be imported, and ``DRMAA_PRESENT``
says whether a DRMAA library loads (checked when first read: loading it is not free).
"""

from __future__ import annotations

import math
from importlib.util import find_spec
from typing import Any

from gridmap_core.model.config import load_settings
from gridmap_core.model.setting import Setting, boolean

_settings = load_settings()


def _use_mem_free() -> bool:
    # The sge backend declares USE_MEM_FREE; where it is not installed the constant is
    # still read, from the same variable, with the original's default.
    try:
        return bool(_settings["USE_MEM_FREE"])
    except KeyError:
        fallback = Setting("USE_MEM_FREE", boolean, False, "the original's USE_MEM_FREE")
        return bool(_settings.including([fallback])["USE_MEM_FREE"])


USE_MEM_FREE: bool = _use_mem_free()
DEFAULT_QUEUE: str = _settings["DEFAULT_QUEUE"]
DEFAULT_TEMP_DIR: str = _settings["DEFAULT_TEMP_DIR"]
DEFAULT_PAR_ENV: str = _settings["DEFAULT_PAR_ENV"]
# The original turned plots off when matplotlib could not be imported.
CREATE_PLOTS: bool = bool(_settings["CREATE_PLOTS"]) and find_spec("matplotlib") is not None
SEND_ERROR_MAIL: bool = _settings["SEND_ERROR_MAIL"]
SMTP_SERVER: str = _settings["SMTP_SERVER"]
ERROR_MAIL_SENDER: str = _settings["ERROR_MAIL_SENDER"]
ERROR_MAIL_RECIPIENT: str = _settings["ERROR_MAIL_RECIPIENT"]
MAX_TIME_BETWEEN_HEARTBEATS: int | float = _settings["MAX_TIME_BETWEEN_HEARTBEATS"]
IDLE_THRESHOLD: float = _settings["IDLE_THRESHOLD"]
NUM_RESUBMITS: int = _settings["NUM_RESUBMITS"]
CHECK_FREQUENCY: int | float = _settings["CHECK_FREQUENCY"]
HEARTBEAT_FREQUENCY: int | float = _settings["HEARTBEAT_FREQUENCY"]


def _idle_heartbeats() -> int:
    """Idle heartbeats in a row after which a job counts as dead (0: never), as the
    original counted them. The limit is held in seconds (MAX_IDLE_TIME) unless only
    MAX_IDLE_HEARTBEATS was set, the rule of gridmap_core.map.monitor.idle_limits."""
    beats = _settings["MAX_IDLE_HEARTBEATS"]
    if beats is not None and _settings.sources.get("MAX_IDLE_TIME") == "default":
        return max(0, int(beats))
    return math.ceil(float(_settings["MAX_IDLE_TIME"]) / float(HEARTBEAT_FREQUENCY))


MAX_IDLE_HEARTBEATS: int = _idle_heartbeats()


def __getattr__(name: str) -> Any:
    # PEP 562: DRMAA_PRESENT loads libdrmaa to find out, so only when asked for.
    if name == "DRMAA_PRESENT":
        from gridmap_core.backend.drmaa import library_problem

        value = library_problem() is None
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
