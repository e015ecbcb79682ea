"""The original GridMap's settings as module constants, read once at import.

Each can be set by the environment variable of the same name, or in a gridmap config
file; maps read the settings afresh each time, so these constants are for reading.
"""

from gridmap_core.config import load_settings

_settings = load_settings()

USE_MEM_FREE: bool = _settings["USE_MEM_FREE"]
DEFAULT_QUEUE: str = _settings["DEFAULT_QUEUE"]
DEFAULT_TEMP_DIR: str = _settings["DEFAULT_TEMP_DIR"]
DEFAULT_PAR_ENV: str = _settings["DEFAULT_PAR_ENV"]
CREATE_PLOTS: bool = _settings["CREATE_PLOTS"]
SEND_ERROR_MAIL: bool = _settings["SEND_ERROR_MAIL"]
SMTP_SERVER: str = _settings["SMTP_SERVER"]
ERROR_MAIL_SENDER: str = _settings["ERROR_MAIL_SENDER"]
ERROR_MAIL_RECIPIENT: str = _settings["ERROR_MAIL_RECIPIENT"]
MAX_TIME_BETWEEN_HEARTBEATS: float = _settings["MAX_TIME_BETWEEN_HEARTBEATS"]
IDLE_THRESHOLD: float = _settings["IDLE_THRESHOLD"]
MAX_IDLE_HEARTBEATS: int = _settings["MAX_IDLE_HEARTBEATS"]
NUM_RESUBMITS: int = _settings["NUM_RESUBMITS"]
CHECK_FREQUENCY: float = _settings["CHECK_FREQUENCY"]
HEARTBEAT_FREQUENCY: float = _settings["HEARTBEAT_FREQUENCY"]
