"""Jobs for tests of session directories. This module travels to the runners by value."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cloudpickle


def touch_then_sleep(marker: str, seconds: float) -> float:
    Path(marker).touch()
    time.sleep(seconds)
    return seconds


cloudpickle.register_pickle_by_value(sys.modules[__name__])
