"""Jobs for tests of suspended jobs. This module travels to the runners by value."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import cloudpickle


def freeze_once(marker: str) -> str:
    """The first attempt writes its process group to ``marker`` and stops it, runner
    and all, as ``kill -STOP -PGID`` does; it returns "resumed" once continued. A
    later attempt (a resubmission) returns "again"."""
    path = Path(marker)
    if path.exists():
        return "again"
    group = os.getpgid(0)
    path.with_suffix(".tmp").write_text(str(group))
    os.replace(path.with_suffix(".tmp"), path)
    os.killpg(group, signal.SIGSTOP)
    return "resumed"


cloudpickle.register_pickle_by_value(sys.modules[__name__])
