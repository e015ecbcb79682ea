"""Jobs that tests/node/test_runner.py hands to ``python -m gridmap_core.node.runner``.

This module travels to the runner by value, so the runner need not import ``tests``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle


def add(x: int, y: int = 0) -> int:
    return x + y


def working_directory() -> str:
    return os.getcwd()


def unpicklable_value() -> Any:
    return threading.Lock()


def print_and_wait(marker: str, go_file: str, value: int) -> int:
    """Print ``marker`` to the job's log, then wait (at most 60 s) for ``go_file``."""
    print(marker, flush=True)
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            return -1
        time.sleep(0.02)
    return value


def start_child_and_sleep(pid_file: str) -> int:
    """Start a child process, write its pid to ``pid_file``, then wait to be stopped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path(pid_file + ".tmp").write_text(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(60)
    return child.pid


cloudpickle.register_pickle_by_value(sys.modules[__name__])
